// Package loadgen is a small HTTP load generator for benchmarks on one
// machine. It only ever talks to loopback: a target whose host is not a
// loopback IP or localhost is refused before anything is sent, and every
// connection is checked again when it is dialled.
//
// It has two modes. Closed runs a fixed number of workers that each send
// the next request as soon as the previous one is answered, which measures
// throughput. Open sends at a fixed rate whatever the server does, which
// measures latency under a given load; each latency is taken from the time
// the request was due to be sent, not from when it was sent, so a server
// that stalls is charged for the requests it held up (no coordinated
// omission).
//
// Every run is bounded by a request count and by time, and stops by
// itself. Requests that fail (transport errors and non-2xx answers) are
// counted, never retried; Result.Err reports a run that had any.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds applied when a run names only one of its two limits.
const (
	DefaultMaxDuration = 10 * time.Minute
	DefaultMaxRequests = 10_000_000
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 256
)

// ErrNotLoopback is wrapped by the error returned for a target, or a
// resolved address, that is not on loopback.
var ErrNotLoopback = errors.New("not a loopback address")

var errBehind = errors.New("not sent: the run fell too far behind its schedule")

// Target is the request every request of a run repeats.
type Target struct {
	// URL is an http or https URL whose host is localhost or a loopback IP.
	URL string
	// Method defaults to POST.
	Method string
	Header http.Header
	Body   []byte
	// Timeout bounds one request, response body included; default 10s.
	Timeout time.Duration
}

// Closed is a closed-loop run: Workers clients sending back to back.
type Closed struct {
	Workers int
	// The run ends after Duration or after Requests requests, whichever
	// comes first. At least one must be set; the other then defaults to
	// DefaultMaxDuration or DefaultMaxRequests.
	Duration time.Duration
	Requests int
}

// Open is an open-loop run: requests sent at Rate per second, each on its
// schedule whether or not earlier ones were answered.
type Open struct {
	// Rate is the number of requests per second.
	Rate float64
	// The run schedules min(Requests, Rate×Duration) requests. At least
	// one must be set; the other then defaults to DefaultMaxDuration or
	// DefaultMaxRequests. Requests still unsent a Timeout after the
	// schedule ends are not sent but counted as errors, so a run lasts at
	// most about Duration plus twice the Timeout.
	Duration time.Duration
	Requests int
	// MaxInFlight bounds concurrent requests (and so connections); default
	// 256. A request due while all are busy waits, and its wait counts in
	// its latency.
	MaxInFlight int
}

// RunClosed runs a closed-loop load against t and returns once every worker
// has stopped. The error is about the run itself (a bad target or config, or
// ctx ending); failed requests are counted in the Result (see Result.Err).
func RunClosed(ctx context.Context, t Target, c Closed) (*Result, error) {
	if c.Workers < 1 {
		return nil, fmt.Errorf("loadgen: closed loop needs at least 1 worker, got %d", c.Workers)
	}
	duration, requests, err := bounds(c.Duration, c.Requests)
	if err != nil {
		return nil, err
	}
	cl, err := newClient(t, c.Workers)
	if err != nil {
		return nil, err
	}
	defer cl.close()

	start := time.Now()
	end := start.Add(duration)
	var issued atomic.Int64
	tally := make([]tally, c.Workers)
	var wg sync.WaitGroup
	for w := range c.Workers {
		wg.Go(func() {
			tl := &tally[w]
			for ctx.Err() == nil && time.Now().Before(end) && issued.Add(1) <= int64(requests) {
				sent := time.Now()
				tl.record(cl.do(ctx), sent, sent)
			}
		})
	}
	wg.Wait()
	r := merge(tally, time.Since(start))
	r.Mode, r.Workers = "closed", c.Workers
	return r, ctx.Err()
}

// RunOpen runs an open-loop load against t and returns once the last
// request due has been answered or has timed out. Errors are as for
// RunClosed.
func RunOpen(ctx context.Context, t Target, o Open) (*Result, error) {
	if !(o.Rate > 0) || o.Rate > 1e7 {
		return nil, fmt.Errorf("loadgen: open loop rate must be in (0, 1e7] per second, got %g", o.Rate)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxInFlight < 1 {
		return nil, fmt.Errorf("loadgen: MaxInFlight must be at least 1, got %d", o.MaxInFlight)
	}
	duration, requests, err := bounds(o.Duration, o.Requests)
	if err != nil {
		return nil, err
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
	if n := max(int(o.Rate*duration.Seconds()), 1); n < requests {
		requests = n
	}
	cl, err := newClient(t, o.MaxInFlight)
	if err != nil {
		return nil, err
	}
	defer cl.close()

	// due carries each request's scheduled send time. Its buffer holds a
	// backlog of requests that are due while every worker is busy; the
	// scheduler never waits on it for longer than the backlog takes to
	// drain, and intended times never slip, so the rate holds on average.
	due := make(chan time.Time, min(requests, 1<<16))
	tally := make([]tally, o.MaxInFlight)
	start := time.Now()
	// A server that falls far behind would leave a backlog that takes
	// arbitrarily long to drain; what is still unsent this long after the
	// schedule ends fails instead.
	giveUp := start.Add(duration + cl.t.Timeout)
	var wg sync.WaitGroup
	for w := range o.MaxInFlight {
		wg.Go(func() {
			tl := &tally[w]
			for at := range due {
				sent := time.Now()
				if sent.After(giveUp) {
					tl.record(outcome{err: errBehind, done: sent}, at, sent)
					continue
				}
				tl.record(cl.do(ctx), at, sent)
			}
		})
	}
	// Reset on a fired, undrained timer is safe since Go 1.23: no stale tick.
	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for i := range requests {
		if ctx.Err() != nil {
			break
		}
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break schedule
			}
		}
		select {
		case due <- at:
		case <-ctx.Done():
			break schedule
		}
	}
	close(due)
	wg.Wait()
	r := merge(tally, time.Since(start))
	r.Mode, r.Workers, r.Rate = "open", o.MaxInFlight, o.Rate
	return r, ctx.Err()
}

// record adds the outcome of one request, due at and sent at sent.
func (tl *tally) record(o outcome, due, sent time.Time) {
	switch {
	case o.err != nil:
		tl.errors++
		if tl.firstFailure == "" {
			tl.firstFailure = o.err.Error()
		}
	case o.status < 200 || o.status > 299:
		tl.non2xx++
		if tl.firstFailure == "" {
			tl.firstFailure = fmt.Sprintf("HTTP %d: %s", o.status, o.snippet)
		}
	default:
		tl.ok++
	}
	tl.latency = append(tl.latency, o.done.Sub(due))
	tl.service = append(tl.service, o.done.Sub(sent))
}

// tally is what one worker saw; merged at the end, so workers share nothing.
type tally struct {
	ok, non2xx, errors int
	firstFailure       string
	latency, service   []time.Duration
}

func bounds(d time.Duration, n int) (time.Duration, int, error) {
	if d < 0 || n < 0 || (d == 0 && n == 0) {
		return 0, 0, fmt.Errorf("loadgen: a run needs a positive Duration or Requests (got %s and %d)", d, n)
	}
	if d == 0 {
		d = DefaultMaxDuration
	}
	if n == 0 {
		n = DefaultMaxRequests
	}
	return d, n, nil
}

// client sends the target's request on keep-alive connections to loopback.
type client struct {
	t   Target
	url *url.URL
	hc  *http.Client
	tr  *http.Transport
}

// CheckLoopback returns an error wrapping ErrNotLoopback unless rawURL is an
// http or https URL whose host is localhost or a loopback IP.
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("loadgen: target: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("loadgen: target %q: scheme must be http or https", rawURL)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("loadgen: target host %q: %w", host, ErrNotLoopback)
}

func newClient(t Target, conns int) (*client, error) {
	if err := CheckLoopback(t.URL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(t.URL)
	if t.Method == "" {
		t.Method = http.MethodPost
	}
	if t.Timeout == 0 {
		t.Timeout = DefaultTimeout
	}
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		// localhost is resolved by the system; make sure what it resolved
		// to is loopback too.
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("loadgen: dial %s: %w", address, ErrNotLoopback)
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	hc := &http.Client{
		Transport: tr,
		Timeout:   t.Timeout,
		// A redirect could lead off loopback; count it as a non-2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &client{t: t, url: u, hc: hc, tr: tr}, nil
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// outcome is one request's result: a status, or the transport error.
type outcome struct {
	status  int
	snippet string // start of a non-2xx body
	err     error
	done    time.Time
}

// header returns a copy of the target's header for one request, which the
// transport may read while another request is built.
func (c *client) header() http.Header {
	if c.t.Header == nil {
		return http.Header{}
	}
	return c.t.Header.Clone()
}

func (c *client) do(ctx context.Context) outcome {
	req := (&http.Request{
		Method:     c.t.Method,
		URL:        c.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     c.header(),
		Host:       c.url.Host,
	}).WithContext(ctx)
	if c.t.Body != nil {
		req.Body = io.NopCloser(bytes.NewReader(c.t.Body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(c.t.Body)), nil }
		req.ContentLength = int64(len(c.t.Body))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return outcome{err: err, done: time.Now()}
	}
	var snippet string
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		snippet = string(b)
	}
	// Read to the end so the connection is reused.
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	o := outcome{status: resp.StatusCode, snippet: snippet, err: err, done: time.Now()}
	if err != nil {
		o.err = fmt.Errorf("reading the response body: %w", err)
	}
	return o
}
