package gateway

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Span attributes of the gateway's spans (see docs/operations.md).
const (
	attrFunction  = "yard.function"
	attrMode      = "yard.mode"
	attrRequestID = "yard.request_id"
	attrErrorCode = "yard.error.code"
	attrInvID     = "yard.invocation_id"
)

// startSpan starts the server span of one POST /fn/{name}, a child of
// the client's traceparent when it sent one, and returns the request
// carrying it. Called only when tracing is on.
func startSpan(r *http.Request, name, reqID string) (*http.Request, trace.Span) {
	mode := "sync"
	if wantsAsync(r) {
		mode = "async"
	}
	ctx := otelx.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := otelx.Tracer().Start(ctx, "POST /fn/"+name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String(attrFunction, name), attribute.String(attrMode, mode),
			attribute.String(attrRequestID, reqID),
			attribute.String("http.request.method", http.MethodPost), attribute.String("http.route", "/fn/{name}"),
			attribute.String("url.path", r.URL.Path),
		))
	return r.WithContext(ctx), span
}

// endSpan ends the server span with the request's outcome: the HTTP
// status, the error code, and an error status for 5xx answers.
func endSpan(r *http.Request, span trace.Span, err error) {
	status := http.StatusOK
	if wantsAsync(r) {
		status = http.StatusAccepted
	}
	if err != nil {
		status = errorStatus(err)
		if he, ok := err.(*httpError); ok {
			span.SetAttributes(attribute.String(attrErrorCode, string(he.e.Code)))
		}
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// startSend starts the span of the message the gateway sends for a
// request (kind: client for a NATS request, producer for queued work)
// and writes its trace context into h. Called only when tracing is on.
func startSend(ctx context.Context, spanName, subject string, kind trace.SpanKind, h nats.Header) (context.Context, trace.Span) {
	ctx, span := otelx.Tracer().Start(ctx, spanName, trace.WithSpanKind(kind), trace.WithAttributes(
		attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
	otelx.Inject(ctx, h)
	return ctx, span
}

// endSend ends a send span with the wire error the send came back with.
func endSend(span trace.Span, e *wire.Error) {
	if e != nil {
		span.SetAttributes(attribute.String(attrErrorCode, string(e.Code)))
		if e.Code.HTTPStatus() >= 500 {
			span.SetStatus(codes.Error, e.Message)
		}
	}
	span.End()
}
