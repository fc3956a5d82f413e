// Package gateway is Switchyard's HTTP front door. It turns POST /fn/{name}
// into a NATS request on fn.<name>, after checking everything it can without
// the function: the name, the body's size, media type and JSON syntax, and
// the input against the function's live JSON Schema. Replies and errors come
// back as JSON and RFC 9457 problem documents.
//
// Lifecycle: New connects the gateway to the registry and blocks until the
// schema cache holds every function's spec; a KV watch keeps it fresh until
// Close. Handler is the http.Handler; ListenAndServe wraps it in a hardened
// http.Server.
//
// The gateway never imports the SDK: it speaks the protocol through
// runtime/wire, as any other client would.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/switchyard-dev/switchyard/gateway/console"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/callback"
	"github.com/switchyard-dev/switchyard/internal/fdlimit"
	"github.com/switchyard-dev/switchyard/internal/metrics"
	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Defaults.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxDepth     = 64
	DefaultTimeout      = 30 * time.Second
	DefaultRetryAfter   = time.Second
)

const (
	logKeyRequestID = "request_id"
	logKeyErr       = "err"
	logKeyFn        = "fn"
)

// Config tunes a gateway. Zero values take the defaults above.
type Config struct {
	Addr         string
	MaxBodyBytes int64
	MaxDepth     int
	// Timeout applies to functions whose spec names none.
	Timeout time.Duration
	// RetryAfter is what 503 answers tell clients to wait.
	RetryAfter time.Duration
	// AllowPrivateCallbacks accepts and delivers Yard-Callback-Url targets
	// on loopback, private, link-local and metadata addresses (local
	// development); by default they are refused.
	AllowPrivateCallbacks bool
	// CallbackAckWait is how soon another gateway takes over a callback
	// whose deliverer went silent; default DefaultCallbackAckWait.
	CallbackAckWait time.Duration
	Logger          *slog.Logger

	// CORSOrigins are the browser origins (scheme://host[:port], matched
	// exactly) allowed to call the gateway. Empty: no CORS headers at all.
	CORSOrigins []string
	// MaxConns caps the open HTTP connections, MaxConnsPerIP those of one
	// client address (an IPv6 client: its /64). A connection over a cap
	// is closed at once. 0 takes DefaultMaxConns (or a quarter of the
	// process's open-file limit when that is less) and DefaultMaxConnsPerIP
	// (at most MaxConns); negative: no cap.
	MaxConns      int
	MaxConnsPerIP int
	// AnonymousRate (requests per second) and AnonymousBurst limit each
	// client address that sends no credentials; PrincipalRate and
	// PrincipalBurst each API key or token that names no rate of its own.
	// 0 takes the Default… constants; a negative rate: no limit.
	AnonymousRate  float64
	AnonymousBurst int
	PrincipalRate  float64
	PrincipalBurst int
	// MaxLimiters bounds how many identities' rate buckets are kept;
	// default DefaultMaxLimiters.
	MaxLimiters int
	// OIDC checks bearer tokens that are not API keys; nil: such tokens
	// are refused (401), never taken for no credentials.
	OIDC *OIDC
	// Metrics, when set, records the function requests the gateway
	// answers (yard_gateway_…).
	Metrics *metrics.Metrics
	// TLS, when set, makes Serve speak HTTPS (HTTP/2 and HTTP/1.1) with
	// its certificates; nil: plain HTTP. It needs a certificate
	// (Certificates, GetCertificate or GetConfigForClient); versions
	// below TLS 1.2 are never offered.
	TLS *tls.Config
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultMaxDepth
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CallbackAckWait == 0 {
		c.CallbackAckWait = DefaultCallbackAckWait
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns(fdlimit.Open())
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
		if c.MaxConns > 0 {
			c.MaxConnsPerIP = min(c.MaxConnsPerIP, c.MaxConns)
		}
	}
	if c.AnonymousRate == 0 {
		c.AnonymousRate = DefaultAnonymousRate
	}
	if c.AnonymousBurst <= 0 {
		c.AnonymousBurst = max(DefaultAnonymousBurst, int(2*c.AnonymousRate))
	}
	if c.PrincipalRate == 0 {
		c.PrincipalRate = DefaultPrincipalRate
	}
	if c.PrincipalBurst <= 0 {
		c.PrincipalBurst = max(DefaultPrincipalBurst, int(2*c.PrincipalRate))
	}
	if c.MaxLimiters <= 0 {
		c.MaxLimiters = DefaultMaxLimiters
	}
}

// Conn is what the gateway needs of a NATS connection.
type Conn interface {
	RequestMsgWithContext(ctx context.Context, msg *nats.Msg) (*nats.Msg, error)
	Status() nats.Status
}

// Gateway is the HTTP front door. It is an http.Handler.
type Gateway struct {
	cfg         Config
	nc          Conn
	conn        *nats.Conn // for micro discovery (the /ops routes)
	reg         *registry.Registry
	log         *slog.Logger
	cache       *schemaCache
	invocations *invocation.Store
	callbacks   callback.Policy
	cancel      context.CancelFunc
	done        chan struct{}
	delivered   chan struct{}

	js       jetstream.JetStream
	keys     *apikeys.Cache
	tokens   tokenVerifier // nil: bearer tokens other than API keys are refused
	limiters *rateLimiters
	// pub publishes audit events with core NATS.
	pub          func(subject string, data []byte) error
	auditLim     *rate.Limiter
	auditDropped atomic.Int64
	readiness    readiness
	connLogLim   *rate.Limiter
	conns        atomic.Pointer[connLimiter] // the listener Serve counts on
	openAPIDocs  openAPIDocs
}

var _ http.Handler = (*Gateway)(nil)

// New starts a gateway on nc. It opens the registry, starts the schema
// watch and returns once the cache holds the current specs (or ctx ends).
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Gateway, error) {
	cfg.setDefaults()
	if t := cfg.TLS; t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
		return nil, errors.New("gateway: the TLS configuration has no certificate")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("gateway: jetstream: %w", err)
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	inv, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	log := cfg.Logger.With("component", "gateway")
	keys, err := apikeys.NewCache(ctx, js, func(key string, err error) {
		log.Error("API keys", "key_id", key, logKeyErr, err)
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{cfg: cfg, nc: nc, conn: nc, reg: reg, log: log, done: make(chan struct{}),
		delivered: make(chan struct{}), invocations: inv, callbacks: callback.Policy{AllowPrivate: cfg.AllowPrivateCallbacks},
		js: js, keys: keys, limiters: newRateLimiters(cfg.MaxLimiters), pub: nc.Publish, auditLim: newAuditLimiter(),
		connLogLim: rate.NewLimiter(1, 1)}
	if cfg.OIDC != nil {
		g.tokens = cfg.OIDC
	}
	g.cache = newSchemaCache(func(name string, err error) {
		g.log.Error("function spec unusable", logKeyFn, name, logKeyErr, err)
	})
	// A removed function's series leave the scrapes with it.
	g.cache.onRemove = cfg.Metrics.ForgetRemoved
	wctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	w, err := reg.Watch(wctx)
	if err != nil {
		cancel()
		keys.Close()
		return nil, fmt.Errorf("gateway: watch registry: %w", err)
	}
	go func() {
		defer close(g.done)
		g.cache.watch(wctx, w)
	}()
	go func() {
		defer close(g.delivered)
		client := callback.New(callback.Config{Policy: g.callbacks})
		if err := deliverCallbacks(wctx, js, client, cfg.CallbackAckWait, g.log); err != nil && wctx.Err() == nil {
			g.log.Error("callbacks are not delivered", logKeyErr, err)
		}
	}()
	for !g.cache.ready.Load() {
		select {
		case <-ctx.Done():
			g.Close()
			return nil, fmt.Errorf("gateway: waiting for the registry: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return g, nil
}

// Close stops the registry and key watches and the callback deliveries.
func (g *Gateway) Close() {
	g.cancel()
	<-g.done
	<-g.delivered
	g.keys.Close()
}

// ServeHTTP routes a request. The routes are few and fixed, so they are
// matched by hand: that keeps every answer, 404 and 405 included, a
// problem document, and lets the function name be checked after
// URL-decoding rather than rejected or rewritten by a router first.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every answer gets a write deadline, so a client that never reads
	// cannot hold a handler; invoke extends it to the function's timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(g.cfg.Timeout))
	reqID, idErr := requestID(r)
	w.Header().Set(wire.HeaderRequestID, reqID)
	answered, err := g.cors(w, r)
	if answered {
		return
	}
	if err == nil {
		err = idErr
	}
	var p *Principal
	switch {
	case err != nil:
	case r.URL.Path == "/healthz":
		err = onlyMethods(r, http.MethodGet, http.MethodHead)
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}
	case r.URL.Path == "/readyz":
		err = onlyMethods(r, http.MethodGet, http.MethodHead)
		if err == nil {
			err = g.ready(w)
		}
	case r.URL.Path == "/console" || strings.HasPrefix(r.URL.Path, console.Prefix):
		// The console's pages are static and public; what they show comes
		// from the API below, with the key the user signs in with.
		console.Handler().ServeHTTP(w, r)
		return
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		http.Redirect(w, r, console.Prefix, http.StatusFound)
		return
	default:
		// Everything else is on behalf of someone: check the credentials,
		// then that identity's rate, then the route's policy.
		p, err = g.authenticateLimited(r)
		if err == nil {
			err = g.rateLimit(p)
		}
		if err == nil {
			err = g.route(w, r, p, reqID)
		}
	}
	if err != nil {
		if he, ok := err.(*httpError); ok && he.denied != "" {
			g.auditDenied(p, r, he.denied)
		}
		g.writeError(w, r, reqID, err)
	}
}

func (g *Gateway) route(w http.ResponseWriter, r *http.Request, p *Principal, reqID string) error {
	switch {
	case r.URL.Path == "/fn" || r.URL.Path == "/fn/":
		if err := onlyMethods(r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"functions": g.visible(p)})
		return nil
	case strings.HasPrefix(r.URL.Path, "/fn/"):
		return g.function(w, r, p, reqID)
	case strings.HasPrefix(r.URL.Path, "/invocations/"):
		return g.invocationStatus(w, r, p)
	case r.URL.Path == "/openapi.json":
		return g.openAPI(w, r, p)
	case strings.HasPrefix(r.URL.Path, OpsPrefix):
		return g.ops(w, r, p)
	default:
		return errorf(wire.CodeNotFound, "no route for %s; try POST /fn/{name}, GET /fn or GET /openapi.json", r.URL.Path)
	}
}

func (g *Gateway) function(w http.ResponseWriter, r *http.Request, p *Principal, reqID string) error {
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodPost:
		done := g.observeInvoke(r, name)
		var span trace.Span
		if otelx.Enabled() {
			r, span = startSpan(r, name, reqID)
		}
		f, err := g.authorize(p, name)
		if err == nil {
			err = g.invoke(w, r, p, f, name, reqID)
		}
		done(err)
		if span != nil {
			endSpan(r, span, err)
		}
		return err
	case http.MethodGet, http.MethodHead:
		f, err := g.authorize(p, name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, viewOf(f.spec))
		return nil
	default:
		return &httpError{e: wire.Errorf(wire.CodeMethodNotAllowed, "method %s not allowed on /fn/{name}", r.Method), allow: "GET, HEAD, POST"}
	}
}

// nameFromPath takes the function name from an escaped /fn/{name} path and
// checks it after URL-decoding, so that %2E or %2F can never smuggle a dot
// or a slash into a subject.
func nameFromPath(escaped string) (string, error) {
	raw := strings.TrimPrefix(escaped, "/fn/")
	name, err := url.PathUnescape(raw)
	if err != nil {
		return "", invalid("", "the function name in the path is not valid URL encoding", "invalid function name")
	}
	if err := wire.ValidateName(name); err != nil {
		return "", invalid("", err.Error(), "invalid function name")
	}
	return name, nil
}

func onlyMethods(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	return &httpError{
		e:     wire.Errorf(wire.CodeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path),
		allow: strings.Join(methods, ", "),
	}
}

func (g *Gateway) ready(w http.ResponseWriter) error {
	if st := g.nc.Status(); st != nats.CONNECTED {
		return &httpError{e: wire.Errorf(wire.CodeUnavailable, "NATS connection is %s", st), retryAfter: g.cfg.RetryAfter}
	}
	if !g.cache.ready.Load() {
		return &httpError{e: wire.Errorf(wire.CodeUnavailable, "function registry not loaded yet"), retryAfter: g.cfg.RetryAfter}
	}
	if err := g.readiness.check(g.js); err != nil {
		return &httpError{e: wire.Errorf(wire.CodeUnavailable, "JetStream cannot store: %v", err), retryAfter: g.cfg.RetryAfter}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Server wraps the gateway in an http.Server hardened for the open
// internet: bounded header size and read times (the TLS handshake too),
// and a write deadline set per request from the function's own timeout
// (see invoke). With Config.TLS its TLSConfig is a copy of it, TLS 1.2 at
// least.
func (g *Gateway) Server() *http.Server {
	return &http.Server{
		Addr:              g.cfg.Addr,
		Handler:           g,
		TLSConfig:         g.tlsConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

// tlsConfig is a copy of Config.TLS that offers TLS 1.2 at least; nil
// without one.
func (g *Gateway) tlsConfig() *tls.Config {
	if g.cfg.TLS == nil {
		return nil
	}
	c := g.cfg.TLS.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
	return c
}

// AddrInUseError reports that the gateway's listen address is taken.
type AddrInUseError struct {
	Addr string
	Err  error
}

func (e *AddrInUseError) Error() string { return fmt.Sprintf("address %s is already in use", e.Addr) }
func (e *AddrInUseError) Unwrap() error { return e.Err }

// Listen opens the gateway's listener, reporting a taken port as
// *AddrInUseError.
func (g *Gateway) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, &AddrInUseError{Addr: g.cfg.Addr, Err: err}
		}
		return nil, fmt.Errorf("gateway: listen on %s: %w", g.cfg.Addr, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully, letting
// in-flight requests finish for up to the default function timeout.
//
// Serve caps the connections it accepts (Config.MaxConns, MaxConnsPerIP);
// over a cap a connection is closed as soon as it is accepted. The caps
// count TCP connections: with Config.TLS, ln is the plain listener and the
// TLS handshake happens on the connections the caps let through.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := g.Server()
	cl := newConnLimiter(ln, g.cfg.MaxConns, g.cfg.MaxConnsPerIP, g.refusedConn)
	g.conns.Store(cl)
	ln = cl
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			// The certificates are in TLSConfig; ServeTLS wraps the
			// capped listener and offers h2 as well as http/1.1.
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// readinessTTL is how long a JetStream check of /readyz is reused, so that
// /readyz cannot be used to flood NATS.
const readinessTTL = time.Second

// readiness asks JetStream for the account's information ($JS.API.INFO):
// a cheap request every JetStream-enabled server answers, which fails when
// JetStream is down or disabled, and whose usage says when the account's
// storage is full. One answer serves every /readyz for readinessTTL.
type readiness struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

func (r *readiness) check(js jetstream.JetStream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < readinessTTL {
		return r.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := js.AccountInfo(ctx)
	if err == nil {
		if max := info.Limits.MaxStore; max > 0 && info.Store >= uint64(max) {
			err = fmt.Errorf("the account's storage is full (%d of %d bytes)", info.Store, max)
		}
	}
	if err == nil {
		// A real write: a stream can refuse writes (a full disk, no
		// descriptors left) while the account still answers.
		_, err = js.Publish(ctx, probeSubject, nil)
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			// No YARD_PROBE on a bare server: the account is all there is
			// to ask. A probe stream that exists and does not answer (it
			// failed to recover, say) is not ready.
			if _, serr := js.Stream(ctx, wire.StreamProbe); errors.Is(serr, jetstream.ErrStreamNotFound) {
				err = nil
			}
		}
	}
	r.at, r.err = time.Now(), err
	return err
}

// refusedConn logs connections closed over a cap, at most one line a
// second, since a flood of them is what the cap is for.
func (g *Gateway) refusedConn(addr string, total bool) {
	if !g.connLogLim.Allow() {
		return
	}
	if total {
		g.log.Warn("connection refused: the gateway holds its maximum of open connections", "client", addr, "max_conns", g.cfg.MaxConns)
	} else {
		g.log.Warn("connection refused: the client holds its maximum of open connections", "client", addr, "max_conns_per_ip", g.cfg.MaxConnsPerIP)
	}
}
