package callback

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var dev = Policy{AllowPrivate: true}

// newClient returns a Client for cfg and the waits between its attempts,
// which Post records as it goes and the test reads once Post returns.
func newClient(t *testing.T, cfg Config) (*Client, *[]time.Duration) {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	}
	c := New(cfg)
	t.Cleanup(c.http.CloseIdleConnections)
	var waits []time.Duration
	c.onWait = func(d time.Duration) { waits = append(waits, d) }
	return c, &waits
}

// server answers the n-th request (from 1) with status(n) and counts them.
func server(t *testing.T, status func(n int32) int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status(count.Add(1)))
	}))
	t.Cleanup(srv.Close)
	return srv, &count
}

func always(code int) func(int32) int { return func(int32) int { return code } }

// refuseOnce answers the first request with code and a Retry-After header,
// and every later one with 200; it counts them.
func refuseOnce(t *testing.T, code int, retryAfter string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var count atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) == 1 {
			w.Header().Set("Retry-After", retryAfter)
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &count
}

func TestPostDelivers(t *testing.T) {
	type received struct {
		method, path string
		header       http.Header
		body         string
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Method, r.URL.RequestURI(), r.Header, string(b)}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	c, waits := newClient(t, Config{Policy: dev})
	body := `{"id":"inv-1","status":"succeeded","result":{"greeting":"Hello, Ada"}}`
	err := c.Post(t.Context(), srv.URL+"/hook?token=abc", []byte(body), map[string]string{
		"Yard-Invocation-Id": "inv-1",
		"yard-request-id":    "req-9",
	})
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	r := <-got
	if r.method != http.MethodPost || r.path != "/hook?token=abc" {
		t.Errorf("request line = %s %s, want POST /hook?token=abc", r.method, r.path)
	}
	for k, want := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         DefaultUserAgent,
		"Yard-Invocation-Id": "inv-1",
		"Yard-Request-Id":    "req-9",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if r.body != body {
		t.Errorf("body = %q, want %q", r.body, body)
	}
	if len(*waits) != 0 {
		t.Errorf("waited %v before succeeding on the first attempt", *waits)
	}
}

func TestPostRetriesServerErrors(t *testing.T) {
	srv, count := server(t, func(n int32) int {
		if n < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	c, waits := newClient(t, Config{Policy: dev})
	if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); err != nil {
		t.Fatalf("Post: %v", err)
	}
	if n := count.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}
	if want := []time.Duration{time.Millisecond, time.Millisecond}; !slices.Equal(*waits, want) {
		t.Errorf("waits = %v, want %v", *waits, want)
	}
}

func TestPostGivesUp(t *testing.T) {
	srv, count := server(t, always(http.StatusServiceUnavailable))
	c, _ := newClient(t, Config{Policy: dev})
	err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Post = %v, want a 503 StatusError", err)
	}
	if n := count.Load(); n != 4 {
		t.Errorf("server saw %d requests, want 4", n)
	}
	if !strings.Contains(err.Error(), "after 4 attempts") {
		t.Errorf("error %q does not say how many attempts were made", err)
	}
}

func TestPostDoesNotRetryClientErrors(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone} {
		srv, count := server(t, always(code))
		c, _ := newClient(t, Config{Policy: dev})
		err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil)
		if se, ok := errors.AsType[*StatusError](err); !ok || se.StatusCode != code {
			t.Errorf("Post = %v, want a %d StatusError", err, code)
		}
		if n := count.Load(); n != 1 {
			t.Errorf("%d: server saw %d requests, want 1", code, n)
		}
	}
}

func TestPostDoesNotFollowRedirects(t *testing.T) {
	target, targetCount := server(t, always(http.StatusOK))
	var count atomic.Int32
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	c, _ := newClient(t, Config{Policy: dev})
	err := c.Post(t.Context(), redirect.URL, []byte(`{}`), nil)
	if se, ok := errors.AsType[*StatusError](err); !ok || se.StatusCode != http.StatusFound {
		t.Fatalf("Post = %v, want a 302 StatusError", err)
	}
	if n := count.Load(); n != 1 {
		t.Errorf("redirecting server saw %d requests, want 1", n)
	}
	if n := targetCount.Load(); n != 0 {
		t.Errorf("redirect target saw %d requests, want 0", n)
	}
}

func TestPostRetryAfter(t *testing.T) {
	t.Run("honoured", func(t *testing.T) {
		srv, count := refuseOnce(t, http.StatusTooManyRequests, "0")
		// Were Retry-After ignored, the test would wait an hour.
		c, waits := newClient(t, Config{Policy: dev, Backoff: []time.Duration{time.Hour}})
		if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); err != nil {
			t.Fatalf("Post: %v", err)
		}
		if n := count.Load(); n != 2 {
			t.Errorf("server saw %d requests, want 2", n)
		}
		if want := []time.Duration{0}; !slices.Equal(*waits, want) {
			t.Errorf("waits = %v, want %v", *waits, want)
		}
	})
	t.Run("too long", func(t *testing.T) {
		srv, _ := refuseOnce(t, http.StatusServiceUnavailable, "3600")
		c, waits := newClient(t, Config{Policy: dev})
		if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); err != nil {
			t.Fatalf("Post: %v", err)
		}
		if want := []time.Duration{time.Millisecond}; !slices.Equal(*waits, want) {
			t.Errorf("waits = %v, want %v (backoff, not Retry-After)", *waits, want)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"":                              -1,
		"0":                             0,
		" 120 ":                         120 * time.Second,
		"-1":                            -1,
		"soon":                          -1,
		"99999999999999999999":          -1,
		"999999999":                     maxRetryAfter,
		"Wed, 21 Oct 2015 07:28:00 GMT": 0,
	} {
		if got := parseRetryAfter(v); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestPostCancelDuringBackoff(t *testing.T) {
	srv, count := server(t, always(http.StatusInternalServerError))
	c, _ := newClient(t, Config{Policy: dev, Backoff: []time.Duration{time.Hour}})
	ctx, cancel := context.WithCancel(t.Context())
	c.onWait = func(time.Duration) { cancel() }
	err := c.Post(ctx, srv.URL, []byte(`{}`), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Post = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q does not report the last attempt", err)
	}
	if n := count.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestPostCancelDuringAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, waits := newClient(t, Config{Policy: dev})
	if err := c.Post(ctx, srv.URL, []byte(`{}`), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Post = %v, want context.Canceled", err)
	}
	if len(*waits) != 0 {
		t.Errorf("waited %v after the context was cancelled", *waits)
	}
}

func TestPostTimeoutThenRetry(t *testing.T) {
	var count atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) == 1 {
			// Hang until the client gives up on this attempt.
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c, waits := newClient(t, Config{Policy: dev, Timeout: 100 * time.Millisecond})
	if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); err != nil {
		t.Fatalf("Post: %v", err)
	}
	// Two on an idle machine; a slow one may time out the second as well.
	if n := count.Load(); n < 2 || int(n) != len(*waits)+1 {
		t.Errorf("server saw %d requests after %d waits, want at least 2 and one more than the waits", n, len(*waits))
	}
}

func TestPostRetriesNetworkErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now

	c, waits := newClient(t, Config{Policy: dev, Backoff: []time.Duration{time.Millisecond}})
	err := c.Post(t.Context(), addr+"/hook/s3cret?token=s3cret", []byte(`{}`), nil)
	if err == nil {
		t.Fatal("Post to a closed port succeeded")
	}
	if len(*waits) != 1 {
		t.Errorf("waits = %v, want one retry", *waits)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the URL's path or query", err)
	}
}

func TestPostRefusesForbiddenTargets(t *testing.T) {
	srv, count := server(t, always(http.StatusOK))
	u, _ := url.Parse(srv.URL)

	t.Run("ip literal", func(t *testing.T) {
		c, _ := newClient(t, Config{})
		if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); !errors.Is(err, ErrForbiddenURL) {
			t.Errorf("Post = %v, want ErrForbiddenURL", err)
		}
	})
	t.Run("name resolving to loopback", func(t *testing.T) {
		// CheckURL passes a host name; only the dialer sees 127.0.0.1.
		c, waits := newClient(t, Config{})
		c.hosts = map[string]string{"callback.test": "127.0.0.1"}
		err := c.Post(t.Context(), "http://callback.test:"+u.Port()+"/hook", []byte(`{}`), nil)
		if !errors.Is(err, ErrForbiddenURL) {
			t.Fatalf("Post = %v, want ErrForbiddenURL", err)
		}
		if len(*waits) != 0 {
			t.Errorf("a forbidden target was retried: waits %v", *waits)
		}
		t.Log(err)
	})
	if n := count.Load(); n != 0 {
		t.Fatalf("server saw %d requests from refused posts, want 0", n)
	}
	t.Run("same name allowed for development", func(t *testing.T) {
		c, _ := newClient(t, Config{Policy: dev})
		c.hosts = map[string]string{"callback.test": "127.0.0.1"}
		if err := c.Post(t.Context(), "http://callback.test:"+u.Port()+"/hook", []byte(`{}`), nil); err != nil {
			t.Fatalf("Post: %v", err)
		}
		if n := count.Load(); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
}

func TestPostRefusesBadHeaders(t *testing.T) {
	srv, count := server(t, always(http.StatusOK))
	c, _ := newClient(t, Config{Policy: dev})
	for _, h := range []map[string]string{
		{"Yard-Invocation-Id": "a\r\nX-Injected: 1"},
		{"Bad Name": "x"},
		{"": "x"},
	} {
		if err := c.Post(t.Context(), srv.URL, []byte(`{}`), h); err == nil {
			t.Errorf("Post with headers %q succeeded", h)
		}
	}
	if n := count.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestPostBoundsResponseBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			select {
			case <-release:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, _ := newClient(t, Config{Policy: dev})
	// The body never ends; Post must stop reading it and still succeed.
	if err := c.Post(t.Context(), srv.URL, []byte(`{}`), nil); err != nil {
		t.Fatalf("Post: %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	c := New(Config{})
	if c.timeout != DefaultTimeout || c.userAgent != DefaultUserAgent || !slices.Equal(c.backoff, defaultBackoff) {
		t.Errorf("New(Config{}) = timeout %v, user agent %q, backoff %v", c.timeout, c.userAgent, c.backoff)
	}
	if c := New(Config{Backoff: []time.Duration{}}); len(c.backoff) != 0 {
		t.Errorf("empty Backoff became %v, want a single attempt", c.backoff)
	}
}
