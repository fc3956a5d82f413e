package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// wantsAsync: ?async=1 (or true), or the RFC 7240 preference
// "Prefer: respond-async".
func wantsAsync(r *http.Request) bool {
	switch r.URL.Query().Get("async") {
	case "1", "true":
		return true
	}
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "respond-async") {
				return true
			}
		}
	}
	return false
}

// accepted is the body of a 202.
type accepted struct {
	ID        string            `json:"id"`
	Status    invocation.Status `json:"status"`
	StatusURL string            `json:"status_url"`
}

// accept queues an already validated request and answers 202 once
// JetStream has stored it. The invocation belongs to p: its id carries
// p's owner (none for anonymous callers), see invocationStatus.
func (g *Gateway) accept(w http.ResponseWriter, r *http.Request, p *Principal, name string, body []byte, reqID string) error {
	sub := invocation.Submission{
		Function: name, Body: body, RequestID: reqID, Owner: p.Owner(),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Traceparent:    r.Header.Get(wire.HeaderTraceparent),
		Tracestate:     r.Header.Get(wire.HeaderTracestate),
	}
	if _, ok := r.Header["Idempotency-Key"]; ok {
		if err := invocation.ValidateKey(sub.IdempotencyKey); err != nil {
			return invalid("", err.Error(), "invalid Idempotency-Key header")
		}
	}
	for _, h := range []string{wire.HeaderCallbackURL, "X-Callback-Url"} {
		if v := r.Header.Get(h); v != "" {
			if _, err := g.callbacks.CheckURL(v); err != nil {
				return invalid("", err.Error(), "invalid "+h+" header")
			}
			sub.CallbackURL = v
			break
		}
	}
	ctx := r.Context()
	var span trace.Span
	if otelx.Enabled() {
		// The invocation's attempts are children of this producer span.
		h := nats.Header{}
		subject, _ := wire.AsyncSubject(name)
		ctx, span = startSend(ctx, "queue "+name, subject, trace.SpanKindProducer, h)
		sub.Traceparent, sub.Tracestate = h.Get(wire.HeaderTraceparent), h.Get(wire.HeaderTracestate)
		defer span.End()
	}
	rec, _, err := g.invocations.Submit(ctx, sub)
	if span != nil && err == nil {
		span.SetAttributes(attribute.String(attrInvID, rec.ID))
	} else if span != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	switch {
	case errors.Is(err, invocation.ErrConflict):
		return errorf(wire.CodeConflict, "Idempotency-Key %q was used for a different request", sub.IdempotencyKey)
	case errors.Is(err, invocation.ErrBacklogFull):
		return &httpError{e: wire.Errorf(wire.CodeResourceExhausted, "%v", err), retryAfter: g.cfg.RetryAfter}
	case err != nil:
		g.log.Error("accept async invocation", logKeyFn, name, logKeyRequestID, reqID, logKeyErr, err)
		return &httpError{e: wire.Errorf(wire.CodeUnavailable, "could not queue the invocation; retry"), retryAfter: g.cfg.RetryAfter}
	}
	statusURL := "/invocations/" + url.PathEscape(rec.ID)
	w.Header().Set("Location", statusURL)
	writeJSON(w, http.StatusAccepted, accepted{ID: rec.ID, Status: rec.Status, StatusURL: statusURL})
	return nil
}

// invocationStatus serves GET /invocations/{id}. An invocation accepted
// for an API key or token is answered to that identity only; anyone else
// gets the very 404 of an unknown id. One accepted anonymously is
// answered to whoever knows its (unguessable) id and may call its
// function. Records no HTTP caller made (schedule ticks and plain NATS
// publishes, named seq-<n> after their stream sequence, which anyone could
// count through) are not served here. There is no listing.
func (g *Gateway) invocationStatus(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := onlyMethods(r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	id, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/invocations/"))
	if err != nil || invocation.ValidateID(id) != nil {
		return invalid("", "an invocation id is 1 to 64 characters of A-Z a-z 0-9 - _", "invalid invocation id")
	}
	notFound := errorf(wire.CodeNotFound, "invocation %q not found (records are kept for 24h)", id)
	// Operator keys read every record (they see the dead letters anyway);
	// anyone else only their own.
	if !p.Operator && (!invocation.OwnedBy(id, p.Owner()) || strings.HasPrefix(id, "seq-")) {
		return notFound
	}
	rec, err := g.invocations.Get(r.Context(), id)
	if errors.Is(err, invocation.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if f, ok := g.cache.get(rec.Function); !p.Operator && (!ok || !may(p, f.spec)) {
		// An id is read across functions: it must not reach records of
		// functions the caller cannot call (internal ones, say).
		return notFound
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}
