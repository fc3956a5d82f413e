package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// HeaderEventSubject marks a dead-lettered event with the subject it was
// published on; replayed, it runs the matching event handler again.
const HeaderEventSubject = invocation.HeaderEventSubject

// Stream declares a JetStream stream of events that the function needs;
// the platform creates it when it does not exist yet.
type Stream struct {
	Name     string
	Subjects []string
	// MaxAge bounds how long events are kept; default 7 days, and
	// forever for an entity stream.
	MaxAge time.Duration
	// Entity makes it an event-sourced stream: one subject per entity,
	// written with Append and read with Load. Declaring it lets the
	// function do both on its subjects.
	Entity bool
	// EventTypes are the types appended to an entity stream (EventOf):
	// deploys check that a new version still reads the old events.
	EventTypes []EventType
}

// Subscription is an event handler: see On.
type Subscription struct {
	subject string
	in      []byte
	err     error
	call    func(ctx context.Context, input []byte) (any, error)
	opts    registry.EventOptions
}

// SubscribeOption tunes On.
type SubscribeOption func(*registry.EventOptions)

// FromStart makes a new subscription begin with the first event the
// stream keeps, so it catches up on the whole log before it follows new
// events.
func FromStart() SubscribeOption { return func(o *registry.EventOptions) { o.From = "start" } }

// FromTime makes a new subscription begin with the events published at or
// after t.
func FromTime(t time.Time) SubscribeOption {
	return func(o *registry.EventOptions) { o.From = t.UTC().Format(time.RFC3339Nano) }
}

// FromSequence makes a new subscription begin at stream sequence seq (1
// or more).
func FromSequence(seq uint64) SubscribeOption {
	return func(o *registry.EventOptions) { o.From = strconv.FormatUint(seq, 10) }
}

// Ordered hands the function one event at a time, in stream order, across
// all its instances: a projection that skips what it has applied (by
// EventMeta's Seq) needs it. A failing event holds up the ones after it
// until it succeeds or is dead-lettered.
func Ordered() SubscribeOption { return func(o *registry.EventOptions) { o.Ordered = true } }

// On handles every event published on subject (a JetStream subject; it may
// hold wildcards). Each subscribing function gets every event once, through
// a durable consumer of its own that its instances share: at least once,
// retried with the function's retry policy, dead-lettered after the last
// attempt. A new subscription starts with the events published after it
// was first created, unless told otherwise (FromStart, FromTime,
// FromSequence); its progress is kept by the platform, and `yard events
// replay` moves it back. EventMeta(ctx) tells the handler which event it
// has.
func On[E any](subject string, f func(context.Context, E) error, opts ...SubscribeOption) Subscription {
	s := Subscription{subject: subject}
	for _, o := range opts {
		o(&s.opts)
	}
	s.in, s.err = schemas.For[E]()
	s.call = func(ctx context.Context, input []byte) (any, error) {
		var ev E
		if err := json.Unmarshal(input, &ev); err != nil {
			fixed, ok := integralNumbers(input)
			if !ok || json.Unmarshal(fixed, &ev) != nil {
				return nil, &Error{Code: CodeInvalidArgument, Message: "event does not fit the handler's Go type"}
			}
		}
		return nil, f(ctx, ev)
	}
	return s
}

// EventInfo is where an event handler's event comes from.
type EventInfo struct {
	Stream  string
	Subject string
	// Seq is the event's stream sequence: unique and increasing within
	// the stream, the same on every delivery and replay of the event.
	Seq  uint64
	Time time.Time
	// Delivery counts the deliveries of this event to this subscription
	// (1 the first time); a replay starts again at 1.
	Delivery int
}

// EventMeta returns the event an event handler runs for; ok is false
// outside one, and for a dead-lettered event replayed through the async
// queue (yard dlq replay): anyone who may queue work for the function
// could forge what such a message says of itself.
func EventMeta(ctx context.Context) (EventInfo, bool) {
	e, ok := ctx.Value(keyEvent).(*EventInfo)
	if !ok {
		return EventInfo{}, false
	}
	return *e, true
}

// Publish sends an event to JetStream and returns once it is stored. The
// request id and trace context of ctx travel with it. Pass a stable id
// (WithEventID) when a retried handler may publish the same event again.
func Publish(ctx context.Context, subject string, event any, opts ...PublishOption) error {
	if err := checkPublish(ctx, subject); err != nil {
		return err
	}
	nc := connFrom(ctx)
	if nc == nil {
		return ErrNoConn
	}
	data, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("fn: encode event for %s: %w", subject, err)
	}
	po := publishOptions{id: nuid.Next()}
	for _, o := range opts {
		o(&po)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{wire.HeaderMsgID: {po.id}}}
	if id := RequestID(ctx); id != "" {
		msg.Header.Set(wire.HeaderRequestID, id)
	}
	span := startOutgoing(ctx, "publish "+subject, trace.SpanKindProducer, msg.Header,
		attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.message.id", po.id))
	js, err := jetstream.New(nc)
	if err == nil {
		if _, err = js.PublishMsg(ctx, msg); err != nil {
			err = fmt.Errorf("fn: publish %s: %w", subject, err)
		}
	}
	endOutgoing(span, err)
	return err
}

// PublishOption tunes Publish.
type PublishOption func(*publishOptions)

type publishOptions struct{ id string }

// WithEventID sets the event's Nats-Msg-Id: JetStream drops a second event
// with the same id (within its duplicate window).
func WithEventID(id string) PublishOption { return func(o *publishOptions) { o.id = id } }

// startEvents attaches the instance to the durable consumer of each of its
// subscriptions, which the platform provisioned from its spec.
func (i *Instance) startEvents(ctx context.Context, js jetstream.JetStream) error {
	i.events = map[string]*target{}
	for _, sub := range i.cfg.Events {
		if sub.err != nil {
			return fmt.Errorf("event %s: %w", sub.subject, sub.err)
		}
		in, err := schemas.Compile(sub.in)
		if err != nil {
			return fmt.Errorf("event %s: %w", sub.subject, err)
		}
		t := &target{in: in, call: sub.call}
		i.events[sub.subject] = t
		stream, err := js.StreamNameBySubject(ctx, sub.subject)
		if err != nil {
			return fmt.Errorf("event %s: no stream holds the subject (declare one in Config.Streams): %w", sub.subject, err)
		}
		name := wire.EventConsumer(i.cfg.Name, sub.subject)
		cons, err := js.Consumer(ctx, stream, name)
		if err != nil {
			return fmt.Errorf("event %s: the platform has not provisioned its consumer (is the function deployed, or registered?): %w", sub.subject, err)
		}
		consume := func(c jetstream.Consumer) (jetstream.ConsumeContext, error) {
			return c.Consume(func(msg jetstream.Msg) {
				i.dispatchJS(msg, func() { i.runEvent(msg, sub.subject, t) })
			}, jetstream.PullMaxMessages(i.h.concurrency))
		}
		cc, err := consume(cons)
		if err != nil {
			return err
		}
		i.eventConsumers = append(i.eventConsumers, rebind(cc, i.log.With("event", sub.subject), func() (jetstream.ConsumeContext, error) {
			c, err := js.Consumer(context.Background(), stream, name)
			if err != nil {
				return nil, err
			}
			return consume(c)
		}))
	}
	return nil
}

// rebinding is an event subscription that outlives its consumer: when the
// consumer goes (`yard events replay` recreates it, or someone deletes
// it), it binds again once the consumer is back, until stopped.
type rebinding struct {
	mu      sync.Mutex
	cc      jetstream.ConsumeContext
	stopped bool
	done    chan struct{}
}

func rebind(cc jetstream.ConsumeContext, log *slog.Logger, bind func() (jetstream.ConsumeContext, error)) *rebinding {
	r := &rebinding{cc: cc, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			<-cc.Closed()
			wait := 100 * time.Millisecond
			for {
				r.mu.Lock()
				stopped := r.stopped
				r.mu.Unlock()
				if stopped {
					return
				}
				next, err := bind()
				if err == nil {
					r.mu.Lock()
					r.cc, cc = next, next
					stopped = r.stopped
					r.mu.Unlock()
					if stopped {
						next.Stop()
						<-next.Closed()
						return
					}
					log.Info("event consumer bound again")
					break
				}
				time.Sleep(wait)
				wait = min(2*wait, 2*time.Second)
			}
		}
	}()
	return r
}

func (r *rebinding) current() jetstream.ConsumeContext {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return r.cc
}

// Stop stops pulling; Drain stops pulling and lets pulled messages finish.
func (r *rebinding) Stop()                   { r.current().Stop() }
func (r *rebinding) Drain()                  { r.current().Drain() }
func (r *rebinding) Closed() <-chan struct{} { return r.done }

// runEvent handles one delivery of an event: ack on success, retry with
// backoff, dead-letter after the last attempt (replayable: see
// HeaderEventSubject).
func (i *Instance) runEvent(msg jetstream.Msg, subject string, t *target) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	hdr := msg.Headers()
	attempt := int(meta.NumDelivered)
	reqID := hdr.Get(wire.HeaderRequestID)
	if reqID == "" || wire.ValidateRequestID(reqID) != nil {
		reqID = nuid.Next()
	}
	cm := callMeta{requestID: reqID, traceparent: hdr.Get(wire.HeaderTraceparent), tracestate: hdr.Get(wire.HeaderTracestate),
		event: &EventInfo{Stream: meta.Stream, Subject: msg.Subject(), Seq: meta.Sequence.Stream, Time: meta.Timestamp, Delivery: attempt}}
	outcome := outcomeRetry
	if otelx.Enabled() {
		cm.span = i.startSpan(hdr, "event "+subject, trace.SpanKindConsumer,
			attribute.String(attrTrigger, "event"), attribute.String(attrRequestID, reqID), attemptAttr(attempt),
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject()),
			attribute.Float64(attrQueueWait, float64(time.Since(meta.Timestamp))/float64(time.Millisecond)))
	}
	_, werr, permanent := i.invokeTarget(t, time.Now().Add(i.h.timeout), cm, msg.Data())
	if cm.span != nil {
		defer func() { endSpan(cm.span, outcome, werr) }()
	}
	switch {
	case werr == nil:
		outcome = outcomeOK
		i.completed.Add(1)
		_ = msg.Ack()
	case permanent || attempt >= i.h.maxAttempts:
		outcome = outcomeDeadLetter
		i.failed.Add(1)
		rec := &invocation.Record{
			ID:       "ev-" + meta.Stream + "-" + strconv.FormatUint(meta.Sequence.Stream, 10),
			Function: i.cfg.Name, Status: invocation.Dead, Attempts: attempt, MaxAttempts: i.h.maxAttempts,
			RequestID: reqID, CreatedAt: meta.Timestamp.UTC(), FinishedAt: time.Now().UTC(), Error: werr,
			Seq: meta.Sequence.Stream,
		}
		dh := nats.Header{}
		for k, v := range hdr {
			dh[k] = v
		}
		dh.Set(HeaderEventSubject, msg.Subject())
		if _, err := i.store.DeadLetter(context.Background(), rec, msg.Data(), dh); err != nil {
			i.log.Error("dead-letter event failed; will retry", "subject", msg.Subject(), logKeyErr, err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		i.deadLetters.Add(1)
		i.log.Warn("event dead-lettered", "subject", msg.Subject(), "attempts", attempt, logKeyErr, werr)
		_ = msg.Ack()
	default:
		i.failed.Add(1)
		i.retries.Add(1)
		_ = msg.NakWithDelay(invocation.Delay(i.h.backoff, attempt))
	}
}

// eventTarget finds the handler of a replayed event by its subject.
func (i *Instance) eventTarget(subject string) *target {
	if t, ok := i.events[subject]; ok {
		return t
	}
	for pattern, t := range i.events {
		if subjectMatches(pattern, subject) {
			return t
		}
	}
	return nil
}

// subjectMatches reports whether subject matches a NATS subject pattern
// with * and > wildcards.
func subjectMatches(pattern, subject string) bool {
	p, s := splitTokens(pattern), splitTokens(subject)
	for k, tok := range p {
		if tok == ">" {
			return len(s) > k
		}
		if k >= len(s) || (tok != "*" && tok != s[k]) {
			return false
		}
	}
	return len(p) == len(s)
}

func splitTokens(s string) []string {
	var out []string
	start := 0
	for k := 0; k < len(s); k++ {
		if s[k] == '.' {
			out = append(out, s[start:k])
			start = k + 1
		}
	}
	return append(out, s[start:])
}
