package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ackWaitMargin mirrors the platform's margin of AckWait over the
// function's timeout; the heartbeat falls back on it when the consumer's
// AckWait is unknown.
const ackWaitMargin = 5 * time.Second

// startAsync attaches the instance to its function's durable consumer on
// YARD_ASYNC, which the platform provisioned. Every instance shares the
// one consumer, so JetStream spreads the work and redelivers what a
// crashed instance left unacknowledged.
func (i *Instance) startAsync(ctx context.Context, js jetstream.JetStream) error {
	store := invocation.Bind(js)
	cons, err := js.Consumer(ctx, wire.StreamAsync, wire.AsyncConsumer(i.cfg.Name))
	if err != nil {
		return fmt.Errorf("async consumer %s: the platform has not provisioned it (is the function deployed, or registered?): %w", wire.AsyncConsumer(i.cfg.Name), err)
	}
	i.store = store
	// The consumer's AckWait follows the live spec; heartbeats follow it.
	i.ackWait = cons.CachedInfo().Config.AckWait
	cc, err := cons.Consume(i.dispatchAsync,
		jetstream.PullMaxMessages(i.h.concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			i.log.Debug("async consumer", logKeyErr, err)
		}))
	if err != nil {
		return err
	}
	i.consume = cc
	return nil
}

// dispatchAsync is dispatch for async invocations.
func (i *Instance) dispatchAsync(msg jetstream.Msg) {
	i.dispatchJS(msg, func() { i.runAsync(msg) })
}

// dispatchJS is dispatch for JetStream messages: take a slot, run on a
// worker. The heartbeat starts before the wait for a slot: a message
// waiting behind busy handlers must not be redelivered to another instance
// meanwhile.
func (i *Instance) dispatchJS(msg jetstream.Msg, run func()) {
	stopBeat := i.heartbeat(msg)
	i.slots <- struct{}{}
	i.inflight.Add(1)
	i.workers.run(func() {
		defer func() {
			stopBeat()
			<-i.slots
			i.inflight.Done()
		}()
		run()
	})
}

// runAsync runs one delivery of an async invocation and settles it: ack
// after the outcome is stored, nak with the backoff delay to retry, or
// dead-letter and ack. Any failure to store the outcome leaves the message
// unacknowledged, so JetStream delivers it again: work may run twice, but
// is never lost.
func (i *Instance) runAsync(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		i.log.Error("async message without metadata", logKeyErr, err)
		_ = msg.Term()
		return
	}
	hdr := msg.Headers()
	data := msg.Data()
	now := time.Now().UTC()
	rec := &invocation.Record{
		ID:          invocationID(hdr, meta),
		Function:    i.cfg.Name,
		Status:      invocation.Running,
		Attempts:    int(meta.NumDelivered),
		MaxAttempts: i.h.maxAttempts,
		RequestID:   hdr.Get(wire.HeaderRequestID),
		BodyHash:    invocation.BodyHash(data),
		CreatedAt:   meta.Timestamp.UTC(),
		StartedAt:   now,
		Seq:         meta.Sequence.Stream,
	}
	if rec.RequestID == "" || wire.ValidateRequestID(rec.RequestID) != nil {
		// A NATS caller's id the gateway would have refused: the record,
		// the logs and the callback get the invocation's id instead.
		rec.RequestID = rec.ID
	}
	ctx := context.Background()
	// The attempt's span: a child of the producer's (the gateway's queue
	// span, a caller's), so every attempt of one invocation shows under it;
	// a schedule tick starts a trace of its own.
	cm := callMeta{requestID: rec.RequestID, traceparent: hdr.Get(wire.HeaderTraceparent), tracestate: hdr.Get(wire.HeaderTracestate)}
	outcome := outcomeRetry
	var werr *wire.Error
	if otelx.Enabled() {
		name, trigger := "async "+i.cfg.Name, "async"
		attrs := []attribute.KeyValue{attemptAttr(rec.Attempts), attribute.String(attrInvID, rec.ID),
			attribute.String(attrRequestID, rec.RequestID), attribute.Int("yard.max_attempts", rec.MaxAttempts),
			attribute.Float64(attrQueueWait, float64(now.Sub(rec.CreatedAt))/float64(time.Millisecond)),
			attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())}
		if s := hdr.Get(invocation.HeaderScheduler); s != "" {
			name, trigger = "tick "+i.cfg.Name, "schedule"
			attrs = append(attrs, attribute.String(attrSchedule, s))
		} else if s := hdr.Get(HeaderEventSubject); s != "" {
			name, trigger = "event "+s, "event_replay"
		}
		cm.span = i.startSpan(hdr, name, trace.SpanKindConsumer, append(attrs, attribute.String(attrTrigger, trigger))...)
		defer func() { endSpan(cm.span, outcome, werr) }()
	}
	if rec.Attempts == 1 && hdr.Get(invocation.HeaderScheduler) != "" && i.store.NewerTick(ctx, hdr) {
		outcome = outcomeSkipped
		// The function was down or busy while a later tick of the same
		// schedule fired: run that one, not a backlog of missed ones.
		i.log.Info("skipping a missed schedule tick: a later one has fired", "invocation_id", rec.ID,
			"scheduler", hdr.Get(invocation.HeaderScheduler))
		i.ticksSkipped.Add(1)
		_ = msg.Ack()
		return
	}
	if rec.Attempts == 1 && hdr.Get(invocation.HeaderScheduler) != "" {
		i.ticksRun.Add(1)
	}
	if rec.Attempts > 1 {
		// A redelivery: if this very message was settled before a crash
		// lost its ack, settle it again instead of running it again.
		if old, err := i.store.GetOf(ctx, i.cfg.Name, rec.ID); err == nil && old.Seq == rec.Seq && old.Status.Final() {
			// The crash may have come before the callback was stored:
			// store it again (a second copy is dropped as a duplicate).
			if url := hdr.Get(wire.HeaderCallbackURL); url != "" && rec.Attempts <= i.h.maxAttempts+giveUpAfter {
				event, _ := json.Marshal(old)
				if err := i.store.QueueCallback(ctx, old, url, event); err != nil {
					i.log.Error("queue callback failed; will redeliver", "invocation_id", rec.ID, logKeyErr, err)
					_ = msg.NakWithDelay(time.Second)
					return
				}
			} else if url != "" {
				i.log.Error("dropping the callback of a settled invocation that could not be stored", "invocation_id", rec.ID, "deliveries", rec.Attempts)
			}
			outcome = outcomeSettled
			_ = msg.Ack()
			return
		}
	}
	if rec.Attempts > i.h.maxAttempts+giveUpAfter {
		outcome = outcomeDropped
		// Even dead-lettering keeps failing (the DLQ refuses it): stop
		// redelivering rather than loop for ever, and say so loudly.
		i.log.Error("dropping an async invocation that can neither run nor be dead-lettered",
			"invocation_id", rec.ID, "seq", rec.Seq, "deliveries", rec.Attempts)
		_ = msg.Term()
		return
	}
	if rec.Attempts > i.h.maxAttempts {
		// Deliveries beyond the limit come from crashes (no outcome was
		// stored for the earlier ones); stop here rather than loop.
		rec.Error = wire.Errorf(wire.CodeInternal, "gave up after %d deliveries without an outcome", rec.Attempts-1)
		outcome, werr = outcomeDeadLetter, rec.Error
		i.deadLetter(ctx, msg, rec, data, hdr)
		return
	}
	// A replayed event runs its event handler; anything else, the function.
	t := &i.main
	if subj := hdr.Get(HeaderEventSubject); subj != "" {
		if et := i.eventTarget(subj); et != nil {
			t = et
		}
	}
	stopRunning := i.markRunning(rec)
	out, werr, permanent := i.invokeTarget(t, now.Add(i.h.timeout), cm, data)
	stopRunning()
	rec.FinishedAt = time.Now().UTC()
	switch {
	case werr == nil:
		outcome = outcomeOK
		i.completed.Add(1)
		rec.Status, rec.Result = invocation.Succeeded, out
		i.settle(ctx, msg, rec, hdr)
	case permanent || rec.Attempts >= i.h.maxAttempts:
		outcome = outcomeDeadLetter
		i.failed.Add(1)
		rec.Error = werr
		i.deadLetter(ctx, msg, rec, data, hdr)
	default:
		i.failed.Add(1)
		i.retries.Add(1)
		delay := invocation.Delay(i.h.backoff, rec.Attempts)
		rec.Status, rec.Error = invocation.Failed, werr
		rec.FinishedAt, rec.NextAttemptAt = time.Time{}, time.Now().Add(delay).UTC()
		if err := i.store.Put(ctx, rec); err != nil {
			i.log.Warn("record failed attempt", "invocation_id", rec.ID, logKeyErr, err)
		}
		if err := msg.NakWithDelay(delay); err != nil {
			i.log.Warn("nak", "invocation_id", rec.ID, logKeyErr, err)
		}
	}
}

// maxBeat bounds the heartbeat interval; see heartbeat.
const maxBeat = 2 * time.Second

// giveUpAfter is how many deliveries past the last attempt an invocation
// that cannot even be dead-lettered gets before it is dropped.
const giveUpAfter = 10

// runningAfter is how long a first attempt runs before its record says
// "running". Most invocations finish sooner, and skipping the write for
// them saves a quarter of the JetStream writes of an invocation; a retry
// is marked running at once.
const runningAfter = 100 * time.Millisecond

// markRunning records the attempt as running, now for a retry or after
// runningAfter for a first attempt, and returns the function that cancels
// a write not yet made. Once it returns, no running write can follow, so
// the outcome written next is never overwritten.
func (i *Instance) markRunning(rec *invocation.Record) (stop func()) {
	running := *rec
	var mu sync.Mutex
	done := false
	write := func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		if _, err := i.store.PutAsync(&running); err != nil {
			i.log.Warn("record running", "invocation_id", rec.ID, logKeyErr, err)
		}
	}
	if rec.Attempts > 1 {
		write()
		return func() {}
	}
	t := time.AfterFunc(runningAfter, write)
	return func() {
		t.Stop()
		mu.Lock()
		done = true
		mu.Unlock()
	}
}

// deadLetter moves a failed invocation to YARD_DLQ, then settles it as dead.
func (i *Instance) deadLetter(ctx context.Context, msg jetstream.Msg, rec *invocation.Record, data []byte, hdr nats.Header) {
	if rec.FinishedAt.IsZero() {
		rec.FinishedAt = time.Now().UTC()
	}
	seq, err := i.store.DeadLetter(ctx, rec, data, hdr)
	if err != nil {
		i.log.Error("dead-letter failed; will retry", "invocation_id", rec.ID, logKeyErr, err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	rec.Status, rec.DLQSeq = invocation.Dead, seq
	i.deadLetters.Add(1)
	i.log.Warn("invocation dead-lettered", "invocation_id", rec.ID, "attempts", rec.Attempts, logKeyErr, rec.Error)
	i.settle(ctx, msg, rec, hdr)
}

// settle records a final outcome, announces it, and acks.
func (i *Instance) settle(ctx context.Context, msg jetstream.Msg, rec *invocation.Record, hdr nats.Header) {
	event, err := i.store.PutEncoded(ctx, rec)
	if err != nil {
		i.log.Error("record outcome failed; will redeliver", "invocation_id", rec.ID, logKeyErr, err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if url := hdr.Get(wire.HeaderCallbackURL); url != "" {
		// The platform delivers it from YARD_CALLBACKS; until it is
		// stored there the invocation is not settled.
		if err := i.store.QueueCallback(ctx, rec, url, event); err != nil {
			i.log.Error("queue callback failed; will redeliver", "invocation_id", rec.ID, logKeyErr, err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	if subject, err := wire.ResultsSubject(rec.Function, rec.ID); err == nil {
		_ = i.nc.Publish(subject, event)
	}
	if err := msg.Ack(); err != nil {
		i.log.Warn("ack", "invocation_id", rec.ID, logKeyErr, err)
	}
}

// heartbeat tells JetStream the message is still being worked on, so a
// long handler keeps it past AckWait. It returns the function that stops
// it. A timer rather than a goroutine: most invocations end before it fires.
func (i *Instance) heartbeat(msg jetstream.Msg) (stop func()) {
	every := i.ackWait / 3
	if every <= 0 {
		every = (i.h.timeout + ackWaitMargin) / 3
	}
	// The consumer is shared by every version of the function: a rollout
	// to a shorter timeout shortens AckWait under the old instances' feet.
	// Beating at least every maxBeat keeps their work theirs whatever it
	// became (AckWait is never below ackWaitMargin).
	every = min(every, maxBeat)
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// invocationID is the id the submitter gave; a plain JetStream publish
// without one is named by its Nats-Msg-Id or its stream sequence.
func invocationID(h nats.Header, meta *jetstream.MsgMetadata) string {
	if id := h.Get(wire.HeaderInvocationID); invocation.ValidateID(id) == nil {
		return id
	}
	if id := h.Get(wire.HeaderMsgID); id != "" {
		if h.Get(invocation.HeaderSeqID) == "1" {
			id = invocation.SeqID(id, meta.Sequence.Stream)
		}
		if invocation.ValidateID(id) == nil {
			return id
		}
	}
	return "seq-" + strconv.FormatUint(meta.Sequence.Stream, 10)
}
