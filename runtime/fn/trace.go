package fn

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Tracing. With OTEL_EXPORTER_OTLP_ENDPOINT set, Main exports spans (see
// internal/otelx): one per request, async attempt, event delivery and
// schedule tick, each a child of the traceparent it came with, and one per
// outgoing Invoke and Publish, whose traceparent is what travels on. Off,
// nothing is recorded and traceparent and tracestate travel on unchanged.

// Span attribute keys (a stable contract: docs/operations.md).
const (
	attrFunction  = "yard.function"
	attrVersion   = "yard.version"
	attrInstance  = "yard.instance"
	attrTrigger   = "yard.trigger"
	attrAttempt   = "yard.attempt"
	attrOutcome   = "yard.outcome"
	attrErrorCode = "yard.error.code"
	attrRequestID = "yard.request_id"
	attrInvID     = "yard.invocation_id"
	attrQueueWait = "yard.queue_wait_ms"
	attrSchedule  = "yard.schedule"
	attrTarget    = "yard.target"
)

// Outcomes of yard.outcome.
const (
	outcomeOK         = "ok"
	outcomeError      = "error"
	outcomeRetry      = "retry"
	outcomeDeadLetter = "dead_letter"
	outcomeSkipped    = "skipped"
	outcomeSettled    = "already_settled"
	outcomeDropped    = "dropped"
)

// traceAttrs are the attributes of every span of the instance.
func (i *Instance) traceAttrs() []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String(attrFunction, i.cfg.Name), attribute.String(attrVersion, i.cfg.Version)}
	if i.cfg.Instance != "" {
		attrs = append(attrs, attribute.String(attrInstance, i.cfg.Instance))
	}
	return attrs
}

// startSpan starts the span of one invocation, a child of the trace
// context in hdr. Call it only when otelx.Enabled().
func (i *Instance) startSpan(hdr nats.Header, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) trace.Span {
	ctx := otelx.Extract(context.Background(), hdr)
	_, span := otelx.Tracer().Start(ctx, name, trace.WithSpanKind(kind),
		trace.WithAttributes(i.traceAttrs()...), trace.WithAttributes(attrs...))
	return span
}

// endSpan ends an invocation's span with its outcome.
func endSpan(span trace.Span, outcome string, werr *wire.Error) {
	span.SetAttributes(attribute.String(attrOutcome, outcome))
	if werr != nil {
		setError(span, werr)
	}
	span.End()
}

// setError records a wire error on span; server faults (5xx) mark it an
// error, a caller's mistake (4xx) does not.
func setError(span trace.Span, werr *wire.Error) {
	span.SetAttributes(attribute.String(attrErrorCode, string(werr.Code)))
	if werr.Code.HTTPStatus() >= 500 {
		span.SetStatus(codes.Error, werr.Message)
	}
}

// startOutgoing starts the span of an Invoke (client) or a Publish
// (producer) and writes its trace context into h. Off, it copies the
// trace context the handler was invoked with, as it came. The returned
// span is nil when tracing is off.
func startOutgoing(ctx context.Context, name string, kind trace.SpanKind, h nats.Header, attrs ...attribute.KeyValue) trace.Span {
	if !otelx.Enabled() {
		if tr, ok := ctx.Value(keyTrace).([2]string); ok {
			h.Set(wire.HeaderTraceparent, tr[0])
			if tr[1] != "" {
				h.Set(wire.HeaderTracestate, tr[1])
			}
		}
		return nil
	}
	if d, ok := ctx.Value(keyDecl).(*declarations); ok && d != nil {
		attrs = append(attrs, attribute.String(attrFunction, d.name))
	}
	ctx, span := otelx.Tracer().Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	otelx.Inject(ctx, h)
	return span
}

// endOutgoing ends the span of an Invoke or a Publish with its error.
func endOutgoing(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetAttributes(attribute.String(attrOutcome, outcomeError))
		var e *wire.Error
		if errors.As(err, &e) {
			setError(span, e)
		} else {
			span.SetStatus(codes.Error, err.Error())
		}
		if NotDelivered(err) {
			span.SetAttributes(attribute.Bool("yard.not_delivered", true))
		}
	} else {
		span.SetAttributes(attribute.String(attrOutcome, outcomeOK))
	}
	span.End()
}

func attemptAttr(n int) attribute.KeyValue { return attribute.Int(attrAttempt, n) }
