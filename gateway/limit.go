package gateway

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Defaults of the gateway's limits (Config).
const (
	DefaultMaxConns       = 4096
	DefaultMaxConnsPerIP  = 256
	DefaultAnonymousRate  = 20
	DefaultAnonymousBurst = 40
	DefaultPrincipalRate  = 50
	DefaultPrincipalBurst = 100
	DefaultMaxLimiters    = 65536
)

// defaultMaxConns is the connection cap when none is configured:
// DefaultMaxConns, or a quarter of the open-file limit when that is less,
// so that HTTP clients can never take the descriptors that NATS, its
// JetStream files and the gateway's own NATS connection need in the same
// process. limit 0: unknown.
func defaultMaxConns(limit int) int {
	if limit <= 0 {
		return DefaultMaxConns
	}
	return min(DefaultMaxConns, max(limit/4, 16))
}

// clientKey is the address a client is counted by, for connection caps
// and anonymous rate limits: its IP, or for IPv6 its /64, since one host
// commonly holds a whole /64 and could otherwise step around any per-IP
// limit. Not a forwarded header: the gateway trusts only the TCP peer.
func clientKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// connLimiter caps the connections a listener hands out: in total and per
// client address. The gateway often shares its process with an embedded
// NATS server, and a flood of HTTP connections must never take the file
// descriptors NATS needs. A connection over a cap is accepted and closed
// at once, unread and unanswered: answering would cost a write that a
// slow client could hold, and the accept loop must never block.
type connLimiter struct {
	net.Listener
	max, perIP int // < 0: no cap
	onRefuse   func(addr string, total bool)

	mu    sync.Mutex
	total int
	byIP  map[string]int
}

func newConnLimiter(ln net.Listener, max, perIP int, onRefuse func(string, bool)) *connLimiter {
	return &connLimiter{Listener: ln, max: max, perIP: perIP, onRefuse: onRefuse, byIP: map[string]int{}}
}

// Accept returns the next connection within the caps, closing those over.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr().String())
		l.mu.Lock()
		overTotal := l.max >= 0 && l.total >= l.max
		overIP := l.perIP >= 0 && l.byIP[key] >= l.perIP
		if !overTotal && !overIP {
			l.total++
			l.byIP[key]++
		}
		l.mu.Unlock()
		if overTotal || overIP {
			_ = c.Close()
			if l.onRefuse != nil {
				l.onRefuse(key, overTotal)
			}
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	l.total--
	if l.byIP[key]--; l.byIP[key] <= 0 {
		delete(l.byIP, key)
	}
	l.mu.Unlock()
}

// open is the number of connections counted, for tests.
func (l *connLimiter) open() (total int, byIP map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.byIP))
	for k, v := range l.byIP {
		m[k] = v
	}
	return l.total, m
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// rateLimiters holds one token bucket per identity (key, token subject,
// client address). The map is bounded: at MaxLimiters entries, the idle
// ones (whose bucket has refilled, so a fresh one is the same) are
// dropped, and if that is not enough, arbitrary ones until a quarter is
// free; a flood of addresses can reset some buckets but never grow memory
// without bound.
type rateLimiters struct {
	mu  sync.Mutex
	m   map[string]*limiterEntry
	max int
	now func() time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
	full time.Duration // how long an idle bucket takes to refill
}

func newRateLimiters(max int) *rateLimiters {
	return &rateLimiters{m: map[string]*limiterEntry{}, max: max, now: time.Now}
}

// allow takes one token from id's bucket (made with r and burst when
// new). It returns 0, or how long to wait before a retry can succeed.
// A bucket's rate is fixed when it is made; a changed key rate applies
// once the idle bucket was dropped.
func (l *rateLimiters) allow(id string, r float64, burst int) time.Duration {
	if r < 0 {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[id]
	if !ok {
		if len(l.m) >= l.max {
			l.sweep(now)
		}
		burst = max(burst, 1)
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(r), burst)}
		if r > 0 {
			e.full = time.Duration(float64(burst) / r * float64(time.Second))
		} else {
			e.full = time.Duration(math.MaxInt64)
		}
		l.m[id] = e
	}
	e.last = now
	res := e.lim.ReserveN(now, 1)
	if !res.OK() {
		// Rate 0 with a spent burst: nothing refills.
		return time.Hour
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

func (l *rateLimiters) sweep(now time.Time) {
	for k, e := range l.m {
		if now.Sub(e.last) >= e.full {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) <= l.max*3/4 {
			break
		}
		delete(l.m, k)
	}
}

// waiting is how long until bucket id has a whole token again, without
// taking one; 0 when it has one or does not exist.
func (l *rateLimiters) waiting(id string) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[id]
	if !ok {
		return 0
	}
	missing := 1 - e.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	if e.lim.Limit() <= 0 {
		return time.Hour
	}
	return time.Duration(missing / float64(e.lim.Limit()) * float64(time.Second))
}

func (l *rateLimiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// rateLimit applies p's bucket: its own rate when it has one, else the
// default of its kind. Over the limit it answers 429 resource_exhausted,
// reason rate_limited, with Retry-After in whole seconds (rounded up) from
// the bucket's own reservation.
func (g *Gateway) rateLimit(p *Principal) error {
	r, burst, id := g.cfg.AnonymousRate, g.cfg.AnonymousBurst, "ip:"+p.Addr
	if p.Kind != PrincipalAnonymous {
		r, burst, id = g.cfg.PrincipalRate, g.cfg.PrincipalBurst, p.Owner()
		if p.Rate > 0 {
			r, burst = p.Rate, p.Burst
			if burst <= 0 {
				burst = max(1, int(math.Ceil(2*p.Rate)))
			}
		}
	}
	d := g.limiters.allow(id, r, burst)
	if d == 0 {
		return nil
	}
	secs := time.Duration(math.Ceil(d.Seconds())) * time.Second
	return &httpError{
		e:          &wire.Error{Code: wire.CodeResourceExhausted, Reason: ReasonRateLimited, Message: "too many requests; retry after the time in Retry-After"},
		retryAfter: secs,
		denied:     ReasonRateLimited,
	}
}

// authenticateLimited authenticates r unless its address has spent its
// failed attempts: each refused credential takes a token from the
// address's failure bucket (the anonymous rate), and while that bucket is
// empty a request with credentials is answered 429 before any key lookup
// or signature check, so a flood of bad keys or tokens costs little and
// cannot fill the audit log.
func (g *Gateway) authenticateLimited(r *http.Request) (*Principal, error) {
	bucket := "fail:" + clientKey(r.RemoteAddr)
	// An API key is checked however many refusals there were (a hash and
	// a map lookup), so a neighbour behind the same address guessing keys
	// does not lock real keys out; tokens cost a signature check and wait.
	if auth := r.Header.Values("Authorization"); len(auth) > 0 && !strings.Contains(auth[0], " "+apikeys.Prefix) {
		if d := g.limiters.waiting(bucket); d > 0 {
			return &Principal{Kind: PrincipalAnonymous, Addr: clientKey(r.RemoteAddr)}, &httpError{
				e: &wire.Error{Code: wire.CodeResourceExhausted, Reason: ReasonRateLimited,
					Message: "too many refused credentials from this address; retry after the time in Retry-After"},
				retryAfter: time.Duration(math.Ceil(d.Seconds())) * time.Second,
			}
		}
	}
	p, err := g.authenticate(r)
	if he, ok := err.(*httpError); ok && he.e.Code == wire.CodeUnauthenticated && !he.keysUnavailable {
		g.limiters.allow(bucket, g.cfg.AnonymousRate, g.cfg.AnonymousBurst)
	}
	return p, err
}

// ReasonRateLimited is the reason of a 429 from the gateway's own rate
// limits (the code is resource_exhausted, as for a full work queue).
const ReasonRateLimited = "rate_limited"
