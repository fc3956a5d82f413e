package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// DefaultCallTimeout bounds a call made from a context without a deadline.
const DefaultCallTimeout = 30 * time.Second

// Breaker settings: a target's circuit opens after this many consecutive
// failures (unavailable, deadline_exceeded, internal), lets one probe
// through after BreakerOpenFor, and closes when the probe succeeds.
var (
	BreakerFailures uint32 = 5
	BreakerOpenFor         = 5 * time.Second
)

// ErrNoConn is returned by Invoke when ctx carries no NATS connection:
// call it from a handler, or pass a context from WithConn.
var ErrNoConn = errors.New("fn: no NATS connection in the context (call from a handler, or use fn.WithConn)")

// Invoke calls another function and decodes its reply into Out. The
// caller's remaining deadline, request id and trace context travel with the
// call. Errors keep their codes (see *Error). A call is retried only when it
// certainly was not delivered: no instance answered (then the agents are
// asked to start one), or the connection was down. Each target has a
// circuit breaker: after repeated failures calls fail fast with
// unavailable until a probe succeeds.
func Invoke[Out any](ctx context.Context, name string, in any) (Out, error) {
	var out Out
	data, err := json.Marshal(in)
	if err != nil {
		return out, fmt.Errorf("fn: encode input for %s: %w", name, err)
	}
	reply, err := InvokeRaw(ctx, name, data)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(reply, &out); err != nil {
		return out, fmt.Errorf("fn: decode reply of %s: %w", name, err)
	}
	return out, nil
}

// InvokeRaw is Invoke with JSON bytes in and out.
func InvokeRaw(ctx context.Context, name string, input []byte) ([]byte, error) {
	subject, err := wire.FnSubject(name)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: err.Error()}
	}
	if err := checkCall(ctx, name); err != nil {
		return nil, err
	}
	nc := connFrom(ctx)
	if nc == nil {
		return nil, ErrNoConn
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	msg := &nats.Msg{Subject: subject, Data: input, Header: nats.Header{
		wire.HeaderDeadline: {deadline.UTC().Format(time.RFC3339Nano)},
	}}
	reqID := RequestID(ctx)
	if reqID == "" {
		reqID = nuid.Next()
	}
	msg.Header.Set(wire.HeaderRequestID, reqID)
	span := startOutgoing(ctx, "call "+name, trace.SpanKindClient, msg.Header, attribute.String(attrTarget, name),
		attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject))
	reply, err := breakerFor(name).Execute(func() ([]byte, error) {
		return call(ctx, nc, name, msg)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		err = undelivered(fmt.Sprintf("circuit open for %s after repeated failures; not calling it for now", name))
		reply = nil
	}
	endOutgoing(span, err)
	return reply, err
}

// call sends msg, retrying while it certainly was not delivered.
func call(ctx context.Context, nc *nats.Conn, name string, msg *nats.Msg) ([]byte, error) {
	backoff := 20 * time.Millisecond
	activated := false
	for {
		reply, err := nc.RequestMsgWithContext(ctx, msg)
		switch {
		case err == nil:
			if e := wire.ReplyError(reply.Header, reply.Data); e != nil {
				return nil, e
			}
			return reply.Data, nil
		case errors.Is(err, nats.ErrNoResponders):
			if !activated {
				activated = true
				deadline, _ := ctx.Deadline()
				aerr := fleet.Activate(ctx, nc, name, deadline)
				if aerr == nil {
					continue // an instance serves now
				}
				var we *wire.Error
				if errors.As(aerr, &we) && we.Code == wire.CodeNotFound {
					// The agents say it is not deployed: nothing will
					// come, so fail now rather than at the deadline.
					return nil, undelivered(fmt.Sprintf("no instance of %s is running: %s", name, we.Message))
				}
			}
		case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
			errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrNoServers):
			// Not sent: safe to try again once the connection is back.
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			return nil, &Error{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("%s did not answer in time", name)}
		default:
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("calling %s: %v", name, err)}
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, nats.ErrNoResponders) {
				return nil, undelivered(fmt.Sprintf("no instance of %s is running", name))
			}
			return nil, &Error{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("%s did not answer in time", name)}
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

var breakers sync.Map // target name -> *gobreaker.CircuitBreaker[[]byte]

func breakerFor(name string) *gobreaker.CircuitBreaker[[]byte] {
	if b, ok := breakers.Load(name); ok {
		return b.(*gobreaker.CircuitBreaker[[]byte])
	}
	b, _ := breakers.LoadOrStore(name, gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= BreakerFailures },
		// A target's own verdicts (not found, invalid argument, conflict…)
		// say it is healthy; only its failures count against it.
		IsSuccessful: func(err error) bool {
			var e *Error
			return err == nil || errors.As(err, &e) && permanentCode(e.Code)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			breakerLog.Warn("circuit breaker", "target", name, "from", from.String(), "to", to.String())
		},
	}))
	return b.(*gobreaker.CircuitBreaker[[]byte])
}

// notDelivered is an unavailable error of a call that certainly never
// reached the target; see NotDelivered.
type notDelivered struct{ e *Error }

func (n notDelivered) Error() string { return n.e.Error() }
func (n notDelivered) Unwrap() error { return n.e }

func undelivered(msg string) error {
	return notDelivered{&Error{Code: CodeUnavailable, Message: msg}}
}

// NotDelivered reports whether an error of Invoke means the call certainly
// never reached the target: its circuit was open, or no instance ran. The
// target did nothing, so undoing what the caller did before is safe. Any
// other error (a timeout, say) may come from a call the target handled.
// The error is still an *Error with code unavailable.
func NotDelivered(err error) bool {
	var nd notDelivered
	return errors.As(err, &nd)
}

// breakerStates reports every circuit of this process by target; nil when
// it has called no other function.
func breakerStates() map[string]string {
	var out map[string]string
	breakers.Range(func(k, v any) bool {
		if out == nil {
			out = map[string]string{}
		}
		out[k.(string)] = v.(*gobreaker.CircuitBreaker[[]byte]).State().String()
		return true
	})
	return out
}

// BreakerState reports the circuit of calls to a target: "closed",
// "open" or "half-open".
func BreakerState(name string) string {
	return breakerFor(name).State().String()
}
