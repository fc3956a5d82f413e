package fn

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyLogger
	keyConn
	keyTrace
	keyDecl
	keyEvent
)

// RequestID returns the Yard-Request-Id of the invocation ctx belongs to.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(keyRequestID).(string)
	return s
}

// Logger returns a logger that tags each line with the function and the
// request id of the invocation ctx belongs to. It is built on demand, so a
// handler that does not log pays nothing for it.
func Logger(ctx context.Context) *slog.Logger {
	l, ok := ctx.Value(keyLogger).(*slog.Logger)
	if !ok {
		l = slog.Default()
	}
	if id := RequestID(ctx); id != "" {
		return l.With(logKeyRequestID, id)
	}
	return l
}

// WithConn lets Invoke run outside a handler (a test, a program that is
// not a function): calls from ctx go over nc. Inside a handler the
// instance's own connection is already there.
func WithConn(ctx context.Context, nc *nats.Conn) context.Context {
	return context.WithValue(ctx, keyConn, nc)
}

func connFrom(ctx context.Context) *nats.Conn {
	nc, _ := ctx.Value(keyConn).(*nats.Conn)
	return nc
}

// breakerLog receives circuit-breaker changes; a package-level logger,
// because breakers are shared by every handler of the process.
var breakerLog = slog.Default().With("component", "fn")
