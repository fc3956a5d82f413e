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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/callback"
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
	log         *slog.Logger
	cache       *schemaCache
	invocations *invocation.Store
	callbacks   callback.Policy
	cancel      context.CancelFunc
	done        chan struct{}
	delivered   chan struct{}
}

var _ http.Handler = (*Gateway)(nil)

// New starts a gateway on nc. It opens the registry, starts the schema
// watch and returns once the cache holds the current specs (or ctx ends).
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Gateway, error) {
	cfg.setDefaults()
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
	g := &Gateway{cfg: cfg, nc: nc, log: cfg.Logger.With("component", "gateway"), done: make(chan struct{}),
		delivered: make(chan struct{}), invocations: inv, callbacks: callback.Policy{AllowPrivate: cfg.AllowPrivateCallbacks}}
	g.cache = newSchemaCache(func(name string, err error) {
		g.log.Error("function spec unusable", logKeyFn, name, logKeyErr, err)
	})
	wctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	w, err := reg.Watch(wctx)
	if err != nil {
		cancel()
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

// Close stops the registry watch and the callback deliveries.
func (g *Gateway) Close() {
	g.cancel()
	<-g.done
	<-g.delivered
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
	var err error
	switch {
	case idErr != nil:
		err = idErr
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
	case r.URL.Path == "/fn" || r.URL.Path == "/fn/":
		err = onlyMethods(r, http.MethodGet, http.MethodHead)
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"functions": g.cache.list()})
		}
	case strings.HasPrefix(r.URL.Path, "/fn/"):
		err = g.function(w, r, reqID)
	case strings.HasPrefix(r.URL.Path, "/invocations/"):
		err = g.invocationStatus(w, r)
	default:
		err = errorf(wire.CodeNotFound, "no route for %s; try POST /fn/{name} or GET /fn", r.URL.Path)
	}
	if err != nil {
		g.writeError(w, r, reqID, err)
	}
}

func (g *Gateway) function(w http.ResponseWriter, r *http.Request, reqID string) error {
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	switch r.Method {
	case http.MethodPost:
		return g.invoke(w, r, name, reqID)
	case http.MethodGet, http.MethodHead:
		f, ok := g.cache.get(name)
		if !ok {
			return errorf(wire.CodeNotFound, "function %q not found", name)
		}
		writeJSON(w, http.StatusOK, f.spec)
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
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Server wraps the gateway in an http.Server hardened for the open
// internet: bounded header size and read times, and a write deadline set per
// request from the function's own timeout (see invoke).
func (g *Gateway) Server() *http.Server {
	return &http.Server{
		Addr:              g.cfg.Addr,
		Handler:           g,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
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
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := g.Server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
