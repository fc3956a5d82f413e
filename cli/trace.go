package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchyard-dev/switchyard/internal/otelx"
)

// startTracing sets up trace export from the OTEL_* variables (nothing
// without OTEL_EXPORTER_OTLP_ENDPOINT) under the service name service,
// which OTEL_SERVICE_NAME overrides, and returns what flushes it at stop.
func startTracing(service string, log *slog.Logger) (flush func()) {
	shutdown, err := otelx.Setup(context.Background(), service)
	if err != nil {
		log.Warn("tracing is off", "err", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}
}
