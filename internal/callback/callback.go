// Package callback delivers completion notices of asynchronous invocations
// to user-supplied URLs. When an async invocation finishes, the platform
// POSTs its result record (JSON) to the URL the client gave in
// Yard-Callback-Url (or X-Callback-Url).
//
// Those URLs are untrusted, so the package refuses server-side request
// forgery targets in two places. The gateway calls Policy.CheckURL when it
// accepts the invocation, so a bad URL is a 400 at once rather than a
// silent failure later. The instance that completes the invocation calls
// Client.Post, which checks the URL again and then checks every address
// it connects to, after DNS resolution and just before connect, so that a
// name which resolves to a private address (now or after a DNS change)
// is refused too.
//
// A Client is safe for concurrent use and meant to live as long as the
// process; it keeps idle connections for reuse.
package callback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero Config.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultUserAgent = "switchyard-callback/1"
)

// defaultBackoff is the wait between attempts when Config.Backoff is nil:
// four attempts in all.
var defaultBackoff = []time.Duration{1 * time.Second, 5 * time.Second, 30 * time.Second}

// maxResponseBytes bounds what is read of a target's answer; its content
// is never used, reading some of it only lets the connection be reused.
const maxResponseBytes = 64 << 10

// Config tunes a Client.
type Config struct {
	Policy Policy
	// Timeout bounds one attempt, from dial to the end of the response
	// body; default 10s.
	Timeout time.Duration
	// Backoff holds the waits between attempts, so there are
	// len(Backoff)+1 attempts. Nil means 1s, 5s, 30s; an empty non-nil
	// slice means a single attempt.
	Backoff []time.Duration
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
}

// Client posts callbacks.
type Client struct {
	policy    Policy
	timeout   time.Duration
	backoff   []time.Duration
	userAgent string
	http      *http.Client

	// Test hooks, nil in production. hosts maps host names to IP literals
	// ahead of DNS; onWait sees every wait between attempts before it
	// starts.
	hosts  map[string]string
	onWait func(time.Duration)
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		policy:    cfg.Policy,
		timeout:   cfg.Timeout,
		backoff:   slices.Clone(cfg.Backoff),
		userAgent: cfg.UserAgent,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if cfg.Backoff == nil {
		c.backoff = slices.Clone(defaultBackoff)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	dialer := &net.Dialer{
		Timeout:   c.timeout,
		KeepAlive: 30 * time.Second,
		Control:   c.policy.control,
	}
	transport := &http.Transport{
		// A proxy would be the address dialled and checked, not the target.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil {
				if ip, ok := c.hosts[host]; ok {
					addr = net.JoinHostPort(ip, port)
				}
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    c.timeout,
		MaxResponseHeaderBytes: maxResponseBytes,
	}
	c.http = &http.Client{
		Transport: transport,
		// A redirect could point anywhere, and the target is not trusted
		// to choose where the platform sends its requests.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c
}

// StatusError reports an answer from the callback target that was not 2xx.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	// The target's own reason phrase is not repeated: it is untrusted text.
	s := strings.TrimSpace(fmt.Sprintf("answered %d %s", e.StatusCode, strings.ToLower(http.StatusText(e.StatusCode))))
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		s += "; redirects are not followed"
	}
	return s
}

// Temporary reports whether the same request may succeed later: 429 and
// 5xx.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Post delivers body, a JSON document, to rawURL with Content-Type
// application/json, User-Agent, and then the given extra headers (such as
// Yard-Invocation-Id), which may override the first two. It returns nil on
// any 2xx answer.
//
// Network errors, 429 and 5xx are retried after the configured backoff;
// a Retry-After header (seconds or HTTP date) is honoured instead when it
// is at most four times the backoff it replaces. Other answers, including
// redirects, which are never followed, and forbidden targets are final.
// Otherwise the error of the last attempt is returned. Cancelling ctx ends
// the delivery at once, during an attempt or between two.
//
// Errors name the target by scheme and host only, since the path and
// query of a callback URL often hold a secret.
func (c *Client) Post(ctx context.Context, rawURL string, body []byte, headers map[string]string) error {
	u, err := c.policy.CheckURL(rawURL)
	if err != nil {
		return err
	}
	if err := checkHeaders(headers); err != nil {
		return err
	}
	target := u.Scheme + "://" + u.Host
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.attempt(ctx, u, body, headers)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("callback to %s: %w", target, ctx.Err())
		case !retryable(err):
			return fmt.Errorf("callback to %s: %w", target, err)
		case attempt > len(c.backoff):
			return fmt.Errorf("callback to %s: %w (gave up after %d attempts)", target, err, attempt)
		}
		delay := c.backoff[attempt-1]
		if retryAfter >= 0 && retryAfter <= 4*delay {
			delay = retryAfter
		}
		if c.onWait != nil {
			c.onWait(delay)
		}
		if werr := sleep(ctx, delay); werr != nil {
			return fmt.Errorf("callback to %s: %w while waiting to retry (attempt %d: %v)", target, werr, attempt, err)
		}
	}
}

// attempt makes one request. It returns the Retry-After delay of the
// answer, or -1 when there was none.
func (c *Client) attempt(ctx context.Context, u *url.URL, body []byte, headers map[string]string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats the whole URL; Post names only the target.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return -1, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return -1, nil
	}
	return parseRetryAfter(resp.Header.Get("Retry-After")), &StatusError{StatusCode: resp.StatusCode}
}

func retryable(err error) bool {
	if se, ok := errors.AsType[*StatusError](err); ok {
		return se.Temporary()
	}
	if errors.Is(err, ErrForbiddenURL) {
		return false
	}
	// A certificate that does not verify now will not verify in a minute.
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return false
	}
	return true
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxRetryAfter keeps absurd Retry-After values from overflowing.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP
// date; it returns -1 when there is none or it cannot be read.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return -1
}

// checkHeaders refuses header names and values that net/http would refuse
// at send time, so they fail once instead of on every attempt.
func checkHeaders(headers map[string]string) error {
	for k, v := range headers {
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return fmt.Errorf("callback: invalid header name %q", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("callback: invalid value for header %s", k)
		}
	}
	return nil
}

func isTokenChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}
