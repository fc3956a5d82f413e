package otelx

import (
	"net/http"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Hooks for the external tests.

var (
	ParseHeaders        = parseHeaders
	ParseExportResponse = parseExportResponse
	ParseRetryAfter     = parseRetryAfter
	Sanitize            = sanitize
)

// ConfigFrom is what loadConfig makes of getenv, flattened.
type ConfigFrom struct {
	URL     string
	Headers http.Header
	Timeout time.Duration
	Gzip    bool
	TLS     bool
}

func LoadConfig(getenv func(string) string) (ConfigFrom, error) {
	cfg, err := loadConfig(getenv, os.ReadFile)
	if err != nil {
		return ConfigFrom{}, err
	}
	return ConfigFrom{cfg.url.String(), cfg.headers, cfg.timeout, cfg.gzip, cfg.tls != nil}, nil
}

// NewExporter is the exporter Setup would make from getenv.
func NewExporter(getenv func(string) string) (sdktrace.SpanExporter, error) {
	cfg, err := loadConfig(getenv, os.ReadFile)
	if err != nil {
		return nil, err
	}
	return newExporter(cfg), nil
}

// FastRetries shortens the retry pacing until the returned func runs.
func FastRetries(initial, most time.Duration) (restore func()) {
	i, m := retryInitial, retryMax
	retryInitial, retryMax = initial, most
	return func() { retryInitial, retryMax = i, m }
}
