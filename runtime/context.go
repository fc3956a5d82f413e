package fn

import (
	"context"
	"log/slog"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyLogger
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
