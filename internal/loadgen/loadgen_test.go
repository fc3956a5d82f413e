package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// counter is a loopback server that counts the requests it answers and
// checks that each carries the target's method, header and body.
type counter struct {
	*httptest.Server
	n, bad atomic.Int64
}

func newCounter(t *testing.T, answer func(n int64, w http.ResponseWriter)) *counter {
	t.Helper()
	c := &counter{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.n.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || string(body) != `{"x":1}` {
			c.bad.Add(1)
		}
		answer(n, w)
	}))
	t.Cleanup(c.Close)
	return c
}

func ok(_ int64, w http.ResponseWriter) { _, _ = io.WriteString(w, `{"ok":true}`) }

func (c *counter) target() Target {
	return Target{
		URL:    c.URL + "/fn/x",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"x":1}`),
	}
}

// check compares what the server saw with what the result says.
func (c *counter) check(t *testing.T, r *Result, wantRequests int) {
	t.Helper()
	if got := int(c.n.Load()); got != r.Requests() {
		t.Errorf("server answered %d requests, result counts %d", got, r.Requests())
	}
	if wantRequests >= 0 && r.Requests() != wantRequests {
		t.Errorf("result counts %d requests, want %d", r.Requests(), wantRequests)
	}
	if c.bad.Load() != 0 {
		t.Errorf("%d requests arrived without the target's method, header or body", c.bad.Load())
	}
	if r.Latency.N != r.Requests() || r.Service.N != r.Requests() {
		t.Errorf("latencies recorded: %d and %d, want %d", r.Latency.N, r.Service.N, r.Requests())
	}
}

func TestClosedStopsAtCount(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, ok)
	r, err := RunClosed(t.Context(), srv.target(), Closed{Workers: 4, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 200)
	if r.OK != 200 || r.Err() != nil {
		t.Errorf("got %d ok, err %v; want 200 ok and no error", r.OK, r.Err())
	}
	if !strings.HasPrefix(r.String(), "closed 4 workers: 200 req in ") || !strings.HasSuffix(r.String(), "; ok") {
		t.Errorf("String() = %q", r.String())
	}
}

func TestClosedStopsAtDuration(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, ok)
	r, err := RunClosed(t.Context(), srv.target(), Closed{Workers: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, -1)
	if r.OK == 0 || r.Failed() != 0 {
		t.Errorf("got %d ok and %d failed, want some ok and none failed", r.OK, r.Failed())
	}
}

func TestOpenSendsRateTimesDuration(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, ok)
	r, err := RunOpen(t.Context(), srv.target(), Open{Rate: 500, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 150)
	if r.OK != 150 || r.Err() != nil {
		t.Errorf("got %d ok, err %v; want 150 ok and no error", r.OK, r.Err())
	}
	if !strings.HasPrefix(r.String(), "open 500 req/s: 150 req in ") {
		t.Errorf("String() = %q", r.String())
	}
}

func TestOpenStopsAtCount(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, ok)
	r, err := RunOpen(t.Context(), srv.target(), Open{Rate: 1000, Duration: time.Minute, Requests: 40})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 40)
}

// A server that holds up requests is charged for the ones that were due
// meanwhile: latency counts from the schedule, not from the send.
func TestOpenMeasuresFromSchedule(t *testing.T) {
	t.Parallel()
	const delay = 20 * time.Millisecond
	srv := newCounter(t, func(n int64, w http.ResponseWriter) {
		time.Sleep(delay)
		ok(n, w)
	})
	// One request at a time, due every 2ms, each taking at least 20ms: the
	// tenth is due at 18ms but cannot be sent before 180ms.
	r, err := RunOpen(t.Context(), srv.target(), Open{Rate: 500, Requests: 10, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 10)
	if floor := 9*delay - 9*2*time.Millisecond + delay; r.Latency.Max < floor {
		t.Errorf("max latency %s, want at least %s (queueing behind slow requests must count)", r.Latency.Max, floor)
	}
	if r.Service.Max > r.Latency.Max || r.Service.P50 > r.Latency.P50 {
		t.Errorf("service time %v above latency %v", r.Service, r.Latency)
	}
}

func TestNon2xxCounted(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, func(n int64, w http.ResponseWriter) {
		if n%4 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		ok(n, w)
	})
	r, err := RunClosed(t.Context(), srv.target(), Closed{Workers: 1, Requests: 40})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 40)
	if r.OK != 30 || r.Non2xx != 10 || r.Errors != 0 {
		t.Errorf("got ok %d, non-2xx %d, errors %d; want 30, 10, 0", r.OK, r.Non2xx, r.Errors)
	}
	if r.Err() == nil || !strings.Contains(r.Err().Error(), "HTTP 500: boom") {
		t.Errorf("Err() = %v, want the first failure", r.Err())
	}
	if !strings.Contains(r.String(), "FAILED 10") {
		t.Errorf("String() = %q, want it to say FAILED", r.String())
	}
}

func TestTransportErrorsCounted(t *testing.T) {
	t.Parallel()
	// A port nothing listens on any more: every dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()

	tests := []struct {
		name string
		run  func(Target) (*Result, error)
	}{
		{"closed", func(tg Target) (*Result, error) {
			return RunClosed(t.Context(), tg, Closed{Workers: 2, Requests: 10})
		}},
		{"open", func(tg Target) (*Result, error) {
			return RunOpen(t.Context(), tg, Open{Rate: 1000, Requests: 10})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := tt.run(Target{URL: url, Body: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors != 10 || r.OK != 0 || r.Err() == nil {
				t.Errorf("got %d errors, %d ok, Err %v; want 10 errors", r.Errors, r.OK, r.Err())
			}
		})
	}
}

// A connection the server drops mid-request is an error, not a success.
func TestDroppedConnectionCounted(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, func(n int64, w http.ResponseWriter) {
		if n%2 == 0 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		ok(n, w)
	})
	r, err := RunClosed(t.Context(), srv.target(), Closed{Workers: 1, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors == 0 || r.OK == 0 || r.Err() == nil {
		t.Errorf("got %d errors, %d ok, Err %v; want both errors and successes", r.Errors, r.OK, r.Err())
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080/fn/greet", true},
		{"http://127.3.2.1/", true},
		{"http://localhost:1234", true},
		{"https://LOCALHOST/", true},
		{"http://[::1]:8080/", true},
		{"http://10.0.0.1/", false},
		{"http://192.0.2.1:80/", false},
		{"http://0.0.0.0:8080/", false},
		{"http://[::]:8080/", false},
		{"http://example.com/", false},
		{"http://localhost.example.com/", false},
		{"http://127.0.0.1.nip.io/", false},
		{"ftp://127.0.0.1/", false},
		{"127.0.0.1:8080", false},
		{"", false},
	}
	for _, tt := range tests {
		err := CheckLoopback(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
	for _, url := range []string{"http://192.0.2.1/", "http://example.com/"} {
		if _, err := RunClosed(t.Context(), Target{URL: url}, Closed{Workers: 1, Requests: 1}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("RunClosed(%s): %v, want ErrNotLoopback", url, err)
		}
		if _, err := RunOpen(t.Context(), Target{URL: url}, Open{Rate: 1, Requests: 1}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("RunOpen(%s): %v, want ErrNotLoopback", url, err)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, func(_ int64, w http.ResponseWriter) {
		w.Header().Set("Location", "http://192.0.2.1/")
		w.WriteHeader(http.StatusFound)
	})
	r, err := RunClosed(t.Context(), srv.target(), Closed{Workers: 1, Requests: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv.check(t, r, 3)
	if r.Non2xx != 3 {
		t.Errorf("got %d non-2xx, want 3 (redirects are answers, not followed)", r.Non2xx)
	}
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	tg := Target{URL: "http://127.0.0.1:1/"}
	ctx := t.Context()
	for name, run := range map[string]func() (*Result, error){
		"no workers":      func() (*Result, error) { return RunClosed(ctx, tg, Closed{Requests: 1}) },
		"closed no bound": func() (*Result, error) { return RunClosed(ctx, tg, Closed{Workers: 1}) },
		"negative count":  func() (*Result, error) { return RunClosed(ctx, tg, Closed{Workers: 1, Requests: -1}) },
		"no rate":         func() (*Result, error) { return RunOpen(ctx, tg, Open{Requests: 1}) },
		"open no bound":   func() (*Result, error) { return RunOpen(ctx, tg, Open{Rate: 1}) },
		"no in-flight":    func() (*Result, error) { return RunOpen(ctx, tg, Open{Rate: 1, Requests: 1, MaxInFlight: -1}) },
	} {
		if _, err := run(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCanceledContextStops(t *testing.T) {
	t.Parallel()
	srv := newCounter(t, ok)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r, err := RunClosed(ctx, srv.target(), Closed{Workers: 2, Duration: time.Hour})
	if !errors.Is(err, context.Canceled) || r.Requests() != 0 {
		t.Errorf("closed: %d requests, err %v; want 0 and context.Canceled", r.Requests(), err)
	}
	r, err = RunOpen(ctx, srv.target(), Open{Rate: 10, Duration: time.Hour})
	if !errors.Is(err, context.Canceled) || r.Requests() != 0 {
		t.Errorf("open: %d requests, err %v; want 0 and context.Canceled", r.Requests(), err)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := Summarize(ds)
	want := Percentiles{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond,
		P999: 100 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if p != want {
		t.Errorf("Summarize(1..100ms) = %+v, want %+v", p, want)
	}
	if p := Summarize([]time.Duration{7}); p.P50 != 7 || p.P99 != 7 || p.Max != 7 {
		t.Errorf("Summarize of one value = %+v", p)
	}
	if p := Summarize(nil); p != (Percentiles{}) || p.String() != "none" {
		t.Errorf("Summarize(nil) = %+v", p)
	}
}
