package otelx_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/internal/otelx/otlptest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigured(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		if got := otelx.Configured(env(c.env)); got != c.want {
			t.Errorf("Configured(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}

// TestOffCostsNothing: without an endpoint Setup starts nothing and
// records nothing.
func TestOffCostsNothing(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	before := runtime.NumGoroutine()
	shutdown, err := otelx.Setup(context.Background(), "greet")
	if err != nil {
		t.Fatal(err)
	}
	if otelx.Enabled() {
		t.Fatal("enabled without an endpoint")
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Setup, %d before", n, before)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSetupExports: with an endpoint, spans reach an OTLP/HTTP receiver
// with the service name and resource attributes, and trace context
// crosses NATS headers.
func TestSetupExports(t *testing.T) {
	rcv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	t.Setenv("OTEL_SERVICE_NAME", "")
	shutdown, err := otelx.Setup(context.Background(), "greet", attribute.String("service.instance.id", "greet-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !otelx.Enabled() {
		t.Fatal("not enabled with an endpoint")
	}
	ctx, parent := otelx.Tracer().Start(context.Background(), "parent", trace.WithSpanKind(trace.SpanKindClient))
	h := nats.Header{}
	otelx.Inject(ctx, h)
	if len(h.Get("traceparent")) != 55 {
		t.Fatalf("traceparent %q", h.Get("traceparent"))
	}
	_, child := otelx.Tracer().Start(otelx.Extract(context.Background(), h), "child", trace.WithSpanKind(trace.SpanKindServer))
	child.End()
	parent.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if otelx.Enabled() {
		t.Fatal("still enabled after shutdown")
	}
	natstest.WaitFor(t, 10*time.Second, "two spans", func() bool { return len(rcv.Spans()) == 2 })
	spans := rcv.Spans()
	byName := map[string]otlptest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
		if s.Service != "greet" || s.Resource["service.instance.id"] != "greet-1" || s.Resource["deployment.environment.name"] != "test" {
			t.Errorf("span %s of service %q, resource %v", s.Name, s.Service, s.Resource)
		}
	}
	p, c := byName["parent"], byName["child"]
	if p.TraceID != c.TraceID || c.ParentSpanID != p.SpanID || p.ParentSpanID != "" {
		t.Errorf("child %+v is not parent %+v's", c, p)
	}
}

func TestExtractInvalid(t *testing.T) {
	ctx := otelx.Extract(context.Background(), nats.Header{"traceparent": {"nonsense"}})
	if trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("an invalid traceparent was taken")
	}
	h := nats.Header{}
	otelx.Inject(context.Background(), h)
	if len(h) != 0 {
		t.Fatalf("injected %v without a span", h)
	}
}
