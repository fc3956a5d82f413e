package gateway

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// invoke serves POST /fn/{name} for p, once authorize let it through:
// every check the gateway can make, then one NATS request, then the reply
// or error mapped back to HTTP.
func (g *Gateway) invoke(w http.ResponseWriter, r *http.Request, p *Principal, f *function, name, reqID string) error {
	if f.err != nil {
		g.log.Error("input schema does not compile", logKeyFn, name, logKeyErr, f.err)
		return errorf(wire.CodeInternal, "internal error")
	}
	if err := checkMediaType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	body, err := g.readBody(w, r)
	if err != nil {
		return err
	}
	doc, err := schemas.Decode(body, schemas.DecodeLimits{MaxDepth: g.cfg.MaxDepth})
	if err != nil {
		return decodeProblem(err)
	}
	if v := f.in.Validate(doc); len(v) > 0 {
		return &httpError{e: schemas.InvalidInput("input does not match the schema of "+name, v)}
	}

	if wantsAsync(r) {
		return g.accept(w, r, p, name, body, reqID)
	}
	timeout := f.spec.Timeout.D()
	if timeout <= 0 {
		timeout = g.cfg.Timeout
	}
	deadline := time.Now().Add(timeout)
	// The response may be written as late as the deadline; give the write
	// its own short budget past it instead of one server-wide timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(deadline.Add(5 * time.Second))
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()

	// Instances that serve yard.gw.<name> take input the gateway validated
	// without checking it again; only gateways may publish there.
	subject, _ := wire.FnSubject(name) // name is valid here
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{
		wire.HeaderRequestID: {reqID},
		wire.HeaderDeadline:  {deadline.UTC().Format(time.RFC3339Nano)},
	}}
	if f.spec.GatewaySubject {
		// Which schemas it was checked against: an instance with others
		// (a rollout, a rollback) checks it itself.
		msg.Subject, _ = wire.GatewaySubject(name)
		msg.Header.Set(wire.HeaderSchemaHash, f.spec.SchemaHash)
	}
	var span trace.Span
	if otelx.Enabled() {
		// The instance's span is a child of this one.
		_, span = startSend(ctx, "call "+name, msg.Subject, trace.SpanKindClient, msg.Header)
	} else {
		for _, h := range []string{wire.HeaderTraceparent, wire.HeaderTracestate} {
			if v := r.Header.Get(h); v != "" {
				msg.Header.Set(h, v)
			}
		}
	}
	reply, err := g.nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) && f.spec.Version > 0 {
		// Scaled to zero, or every instance just died: the agents start
		// one; wait for it within the request's own deadline. An
		// undeployed function has no agent to start it: it fails now.
		if span != nil {
			span.AddEvent("activate")
		}
		reply, err = g.awaitInstance(ctx, msg, name, reqID, deadline)
	}
	if err != nil {
		err = g.requestError(r, name, reqID, err)
		if he, ok := err.(*httpError); ok && span != nil {
			endSend(span, he.e)
		} else if span != nil {
			span.End()
		}
		return err
	}
	e := wire.ReplyError(reply.Header, reply.Data)
	if span != nil {
		endSend(span, e)
	}
	if e != nil {
		he := &httpError{e: e}
		if e.Code == wire.CodeUnavailable || e.Code == wire.CodeResourceExhausted {
			he.retryAfter = g.cfg.RetryAfter
		}
		return he
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(reply.Data)
	return nil
}

// How long awaitInstance pauses between tries: short at first, since an
// instance that is (re)starting usually serves within a few hundred
// milliseconds, then doubling up to retryMaxPause.
const (
	retryMinPause = 10 * time.Millisecond
	retryMaxPause = 200 * time.Millisecond
)

// awaitInstance sends msg again until an instance of the deployed function
// name takes it or ctx ends. It waits on the activation this gateway
// shares for name (fleet.Activating: one at a time, however many requests
// wait) and sends as soon as one succeeds, else after each pause: an
// instance the agents call ready may not be reachable from this server
// yet. It gives up at once when no instance will come: the function was
// removed or undeployed, the agents do not know it, or no agent runs.
// Unless the client went away, giving up is ErrNoResponders, whose answer
// (503, no instance running) says the request never reached the function.
func (g *Gateway) awaitInstance(ctx context.Context, msg *nats.Msg, name, reqID string, deadline time.Time) (*nats.Msg, error) {
	pause := retryMinPause
	t := time.NewTimer(pause)
	defer t.Stop()
	var seen *fleet.Activation // the last activation this request saw end
	var aerr error             // and its outcome
	for {
		a := fleet.Activating(g.nc, name, deadline)
		ended := a.Done()
		if a == seen {
			ended = nil // its outcome is known: just pause
		}
		t.Reset(pause)
		failed := false
		select {
		case <-ended:
			seen, aerr = a, a.Err()
			failed = aerr != nil
		case <-t.C:
			pause = min(2*pause, retryMaxPause)
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				g.log.Info("no instance came before the deadline", logKeyFn, name, logKeyRequestID, reqID, logKeyErr, aerr)
				return nil, nats.ErrNoResponders
			}
			return nil, err // the client went away
		}
		if noInstanceWillCome(aerr) {
			g.log.Info("activation failed", logKeyFn, name, logKeyRequestID, reqID, logKeyErr, aerr)
			return nil, nats.ErrNoResponders
		}
		if f, ok := g.cache.get(name); !ok || f.spec.Version == 0 {
			return nil, nats.ErrNoResponders // removed or undeployed meanwhile
		}
		if failed {
			continue // a later activation may succeed: pause first
		}
		reply, err := g.nc.RequestMsgWithContext(ctx, msg)
		if !errors.Is(err, nats.ErrNoResponders) {
			return reply, err
		}
	}
}

// noInstanceWillCome reports whether an activation's error says no agent
// will start an instance: none runs, or they do not know the function.
// Other errors (an agent could not scale it, or no instance was ready by
// that activation's deadline) are worth another activation.
func noInstanceWillCome(err error) bool {
	var we *wire.Error
	return errors.Is(err, nats.ErrNoResponders) || errors.As(err, &we) && we.Code == wire.CodeNotFound
}

func (g *Gateway) requestError(r *http.Request, name, reqID string, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return &httpError{
			e:          wire.Errorf(wire.CodeUnavailable, "no instance of %q is running", name),
			retryAfter: g.cfg.RetryAfter,
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return errorf(wire.CodeDeadlineExceeded, "function %q did not answer in time", name)
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer, but log it.
		g.log.Info("client gone before the reply", logKeyFn, name, logKeyRequestID, reqID)
		return errorf(wire.CodeUnavailable, "client closed the request")
	default:
		g.log.Error("nats request failed", logKeyFn, name, logKeyRequestID, reqID, logKeyErr, err)
		return &httpError{e: wire.Errorf(wire.CodeUnavailable, "function %q is unreachable", name), retryAfter: g.cfg.RetryAfter}
	}
}

// checkMediaType accepts JSON bodies. A missing type and
// application/x-www-form-urlencoded are accepted too, and the body must
// still be JSON: the latter is what `curl -d` sends unless told otherwise,
// and refusing the most common first try would help nobody. Any other type
// is 415.
func checkMediaType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return errorf(wire.CodeUnsupportedMediaType, "unparsable Content-Type %q; send application/json", ct)
	}
	switch {
	case mt == "application/json", strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"),
		mt == "application/x-www-form-urlencoded":
	default:
		return errorf(wire.CodeUnsupportedMediaType, "Content-Type %s is not supported; send application/json", mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(wire.CodeUnsupportedMediaType, "charset %s is not supported; JSON must be UTF-8", cs)
	}
	return nil
}

// readBody reads at most MaxBodyBytes, answering 413 past that without
// reading the rest.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := g.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, errorf(wire.CodePayloadTooLarge, "body is %d bytes, the limit is %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(wire.CodePayloadTooLarge, "body is over the limit of %d bytes", limit)
		}
		return nil, errorf(wire.CodeInvalidArgument, "reading the body failed: %v", err)
	}
	return body, nil
}

func decodeProblem(err error) error {
	return &httpError{e: schemas.InvalidJSON("request body is not valid JSON", err)}
}

// requestID returns the client's Yard-Request-Id, or a new one. A client id
// is checked so it can be logged and forwarded as a header safely.
func requestID(r *http.Request) (string, error) {
	id := r.Header.Get(wire.HeaderRequestID)
	if id == "" {
		return nuid.Next(), nil
	}
	if err := wire.ValidateRequestID(id); err != nil {
		msg := err.Error()
		if we, ok := err.(*wire.Error); ok {
			msg = we.Message
		}
		return nuid.Next(), invalid("", msg, "invalid Yard-Request-Id header")
	}
	return id, nil
}
