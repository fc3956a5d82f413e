// Package otelx sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and carries W3C trace context in NATS headers.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set: then Setup leaves the global
// tracer provider alone, starts nothing, and Enabled reports false, so
// callers skip span work entirely and pass traceparent on as they
// received it. When an endpoint is set, Setup installs an SDK tracer
// provider with a batch span processor, the sampler of
// OTEL_TRACES_SAMPLER (default: parent-based, always on) and a resource
// from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, exporting over
// OTLP/HTTP (protobuf) with the package's own exporter (exporter.go),
// configured by the OTEL_EXPORTER_OTLP_* variables of the OTLP exporter
// specification (config.go). OTEL_SDK_DISABLED=true and
// OTEL_TRACES_EXPORTER=none turn it off again.
//
// Every function binary links this package, so it links no gRPC and no
// generated protobuf code: the exporter encodes OTLP with protowire.
//
// Propagation on the wire is always W3C Trace Context (traceparent,
// tracestate), whatever OTEL_PROPAGATORS says: it is the platform's
// protocol (runtime/wire), not a choice of each process.
package otelx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of every Switchyard span.
const ScopeName = "github.com/switchyard-dev/switchyard"

// The standard variables Setup reads (the exporter's others are in
// config.go; the SDK reads more of the OTEL_ family itself: the sampler,
// batch sizes, limits).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvServiceName    = "OTEL_SERVICE_NAME"
	EnvSDKDisabled    = "OTEL_SDK_DISABLED"
	EnvTracesExporter = "OTEL_TRACES_EXPORTER"
	EnvPrefix         = "OTEL_"
)

// Configured reports whether getenv asks for traces to be exported.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv(EnvSDKDisabled)), "true") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv(EnvTracesExporter)), "none") {
		return false
	}
	return getenv(EnvEndpoint) != "" || getenv(EnvTracesEndpoint) != ""
}

// Shutdown flushes and stops what Setup started.
type Shutdown func(context.Context) error

func noShutdown(context.Context) error { return nil }

// Setup installs the tracer provider the process environment asks for,
// as the global one, and returns what flushes it at stop. service is the
// service.name unless OTEL_SERVICE_NAME names one; attrs are added to the
// resource (service.version, service.instance.id…). Without an endpoint
// it does nothing and returns a no-op Shutdown.
func Setup(ctx context.Context, service string, attrs ...attribute.KeyValue) (Shutdown, error) {
	getenv := os.Getenv
	if !Configured(getenv) {
		return noShutdown, nil
	}
	cfg, err := loadConfig(getenv, os.ReadFile)
	if err != nil {
		return noShutdown, fmt.Errorf("otel: OTLP exporter: %w", err)
	}
	exp := newExporter(cfg)
	if getenv(EnvServiceName) == "" && service != "" {
		attrs = append(attrs, semconv.ServiceName(service))
	}
	// Later options win: the environment (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES) over the defaults given here.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		_ = exp.Shutdown(ctx)
		return noShutdown, fmt.Errorf("otel: resource: %w", err)
	}
	// No WithSampler: the SDK takes OTEL_TRACES_SAMPLER and its argument.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Use(tp)
	return func(ctx context.Context) error {
		Use(nil)
		return errors.Join(tp.ForceFlush(ctx), tp.Shutdown(ctx))
	}, nil
}

var (
	mu      sync.RWMutex
	tracer  trace.Tracer // nil: tracing is off
	enabled atomic.Bool
)

// Use makes tp the global tracer provider and turns span recording on;
// nil turns it off again. Setup calls it; tests use it with an in-memory
// exporter.
func Use(tp trace.TracerProvider) {
	mu.Lock()
	defer mu.Unlock()
	if tp == nil {
		tracer = nil
		enabled.Store(false)
		return
	}
	otel.SetTracerProvider(tp)
	tracer = tp.Tracer(ScopeName)
	enabled.Store(true)
}

// Enabled reports whether spans are recorded. Callers check it before
// any span work, so tracing costs one atomic load when off.
func Enabled() bool { return enabled.Load() }

// Tracer is Switchyard's tracer; a no-op one when tracing is off.
func Tracer() trace.Tracer {
	mu.RLock()
	defer mu.RUnlock()
	if tracer == nil {
		return noop.NewTracerProvider().Tracer(ScopeName)
	}
	return tracer
}

// Propagator is W3C Trace Context, the platform's propagation.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Header adapts a nats.Header to propagation.TextMapCarrier. NATS header
// keys are case-sensitive; the W3C keys are lower case on the wire, as
// runtime/wire names them.
type Header nats.Header

var _ propagation.TextMapCarrier = Header(nil)

// Get returns the first value of key.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Keys lists the keys.
func (h Header) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	return out
}

// Extract returns ctx with the remote span context of h's traceparent
// and tracestate, if valid.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return Propagator.Extract(ctx, Header(h))
}

// Inject writes the span context of ctx into h (traceparent, and
// tracestate when there is one).
func Inject(ctx context.Context, h nats.Header) {
	Propagator.Inject(ctx, Header(h))
}
