package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/callback"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// DefaultCallbackAckWait is how long a callback being delivered stays with
// one gateway without news before JetStream hands it to another; the
// deliverer reports progress well within it, so only a gateway that died
// loses it.
const DefaultCallbackAckWait = 30 * time.Second

// callbackBudget bounds one callback's delivery, retries included, and
// maxCallbackDeliveries how often a delivery cut short (a gateway that
// died) starts again.
const (
	callbackBudget        = 5 * time.Minute
	maxCallbackDeliveries = 5
	// maxCallbacksInFlight bounds the callbacks being delivered at once
	// across all gateways; slow targets hold a slot for their budget.
	maxCallbacksInFlight = 1024
)

// deliverCallbacks posts the callbacks that instances queued in
// YARD_CALLBACKS, through the durable consumer every gateway shares: a
// callback is acknowledged only once it is delivered or refused for good,
// so it survives the crash of the instance that ran the invocation and of
// the gateway delivering it. It returns once ctx ends and every delivery
// in progress has stopped.
func deliverCallbacks(ctx context.Context, js jetstream.JetStream, client *callback.Client, ackWait time.Duration, log *slog.Logger) error {
	var cons jetstream.Consumer
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, wire.StreamCallbacks, jetstream.ConsumerConfig{
			Durable:       wire.CallbacksConsumer,
			Description:   "Switchyard: callbacks the gateways deliver",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: maxCallbacksInFlight,
			MaxDeliver:    -1,
		})
		if err == nil {
			break
		}
		// Callbacks wait in their stream meanwhile; keep trying.
		log.Error("cannot attach to the callbacks stream; retrying", "in", wait, logKeyErr, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	var wg sync.WaitGroup
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deliverOne(ctx, msg, client, ackWait, log)
		}()
	}, jetstream.PullMaxMessages(64), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Warn("callback consumer", logKeyErr, err)
	}))
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	wg.Wait()
	return nil
}

// deliverOne posts one callback, telling JetStream it is in progress
// meanwhile. A delivery cut short by the gateway stopping is left
// unacknowledged, for another gateway (or this one, restarted) to redo.
func deliverOne(ctx context.Context, msg jetstream.Msg, client *callback.Client, ackWait time.Duration, log *slog.Logger) {
	hdr := msg.Headers()
	id := hdr.Get(wire.HeaderInvocationID)
	if meta, err := msg.Metadata(); err == nil && meta.NumDelivered > maxCallbackDeliveries {
		log.Error("callback dropped: its delivery was cut short too often", "invocation_id", id, "deliveries", meta.NumDelivered)
		_ = msg.Term()
		return
	}
	beat := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
	defer beat.Stop()
	done := make(chan error, 1)
	dctx, cancel := context.WithTimeout(ctx, callbackBudget)
	defer cancel()
	go func() {
		done <- client.Post(dctx, hdr.Get(wire.HeaderCallbackURL), msg.Data(), map[string]string{
			wire.HeaderInvocationID: id, wire.HeaderRequestID: hdr.Get(wire.HeaderRequestID),
		})
	}()
	for {
		select {
		case <-beat.C:
			_ = msg.InProgress()
		case err := <-done:
			switch {
			case ctx.Err() != nil:
				return // stopping: leave it to be redelivered
			case err != nil && !errors.Is(err, context.DeadlineExceeded):
				log.Warn("callback failed for good", "invocation_id", id, logKeyErr, err)
			case err != nil:
				log.Warn("callback gave up after its delivery budget", "invocation_id", id, logKeyErr, err)
			}
			// Confirmed, so a lost ack does not post it again later.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = msg.DoubleAck(actx)
			cancel()
			return
		}
	}
}
