package fn_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
)

const (
	testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	testParent  = "00f067aa0ba902b7"
	testTP      = "00-" + testTraceID + "-" + testParent + "-01"
)

// chain starts front, which calls double and publishes nothing, and
// returns what double saw of the trace context.
func chain(t *testing.T) (*nats.Conn, func() trace.SpanContext) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	seen := make(chan trace.SpanContext, 1)
	startFn(t, nc, fn.Config{Name: "double"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		seen <- trace.SpanContextFromContext(ctx)
		return out{N: 2 * i.N}, nil
	}))
	startFn(t, nc, fn.Config{Name: "front", Calls: []string{"double"}, Instance: "front-1"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		return fn.Invoke[out](ctx, "double", in{N: i.N})
	}))
	return nc, func() trace.SpanContext {
		select {
		case sc := <-seen:
			return sc
		case <-time.After(5 * time.Second):
			t.Fatal("double was not called")
			return trace.SpanContext{}
		}
	}
}

func request(t *testing.T, nc *nats.Conn, subject string, h nats.Header) *nats.Msg {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: []byte(`{"n":2}`), Header: h}
	reply, err := nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// TestTraceSpans: with tracing on, a request makes a server span under
// the caller's traceparent, Invoke a client span under it, and the
// callee's span (and handler context) is the client span's child.
func TestTraceSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	otelx.Use(tp)
	t.Cleanup(func() { otelx.Use(nil) })

	nc, seen := chain(t)
	request(t, nc, "fn.front", nats.Header{"traceparent": {testTP}, "tracestate": {"k=v"}})
	inner := seen()
	if inner.TraceID().String() != testTraceID {
		t.Fatalf("double's context is in trace %s", inner.TraceID())
	}
	spans := map[string]tracetest.SpanStub{}
	natstest.WaitFor(t, 5*time.Second, "three spans", func() bool {
		for _, s := range exp.GetSpans() {
			spans[s.Name] = s
		}
		return len(spans) >= 3
	})
	front, call, double := spans["invoke front"], spans["call double"], spans["invoke double"]
	if front.Parent.SpanID().String() != testParent || front.SpanKind != trace.SpanKindServer || front.Parent.TraceState().Get("k") != "v" {
		t.Errorf("front's span parent %v kind %v", front.Parent, front.SpanKind)
	}
	if call.Parent.SpanID() != front.SpanContext.SpanID() || call.SpanKind != trace.SpanKindClient {
		t.Errorf("call span %+v is not front's client child", call)
	}
	if double.Parent.SpanID() != call.SpanContext.SpanID() || inner.SpanID() != double.SpanContext.SpanID() {
		t.Errorf("double's span %v is not the call's child (handler saw %v)", double.Parent, inner)
	}
	attrs := map[string]string{}
	for _, a := range front.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{"yard.function": "front", "yard.version": "1.0.0", "yard.instance": "front-1", "yard.outcome": "ok", "yard.trigger": "request"} {
		if attrs[k] != v {
			t.Errorf("front's span has %s=%q, want %q (%v)", k, attrs[k], v, attrs)
		}
	}
}

// TestTraceOff: with tracing off, nothing is recorded and the caller's
// traceparent reaches the callee unchanged.
func TestTraceOff(t *testing.T) {
	otelx.Use(nil)
	nc, seen := chain(t)
	sub, err := nc.SubscribeSync("fn.double")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	request(t, nc, "fn.front", nats.Header{"traceparent": {testTP}})
	seen()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("traceparent"); got != testTP {
		t.Errorf("double got traceparent %q, want %q", got, testTP)
	}
}
