package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Replayed is one subscription Replay moved.
type Replayed struct {
	Subject  string `json:"subject"`
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	From     string `json:"from"`
	// Pending is how many events the subscription has to go through
	// again, as the server counts them right after the reset.
	Pending uint64 `json:"pending"`
}

// Replay moves the subscriptions of spec's function (all of them, or the
// one on subject) back to start, so its handlers see those events again.
// JetStream cannot move a consumer's start, so each durable consumer is
// paused, left until the events its instances hold are done (at most its
// ack wait), and recreated with the same settings and the new start; the
// instances bind to the new consumer by themselves. An agent that
// re-provisions the subscription meanwhile makes the recreation fail; it
// is tried again.
func Replay(ctx context.Context, js jetstream.JetStream, spec *registry.Spec, subject string, start registry.EventStart) ([]Replayed, error) {
	return Rebuild(ctx, js, spec, subject, start, nil)
}

// Rebuild is Replay that calls clear (when not nil) once no event of the
// subscriptions is being handled and before any is delivered again: the
// moment to delete a projection's state, so that no live event lands
// between the deletion and the replay.
func Rebuild(ctx context.Context, js jetstream.JetStream, spec *registry.Spec, subject string, start registry.EventStart, clear func(context.Context) error) ([]Replayed, error) {
	subjects := spec.Events
	if subject != "" {
		if !slices.Contains(spec.Events, subject) {
			return nil, fmt.Errorf("%s has no subscription on %s (it has %v)", spec.Name, subject, spec.Events)
		}
		subjects = []string{subject}
	}
	if len(subjects) == 0 {
		return nil, fmt.Errorf("%s has no event subscriptions", spec.Name)
	}
	type sub struct {
		subject, stream, name string
		cfg                   jetstream.ConsumerConfig // with the new start
		// old is the consumer as it was, resuming after the last event it
		// had acknowledged: what is put back if the new one cannot be.
		old jetstream.ConsumerConfig
	}
	var subs []sub
	for _, subj := range subjects {
		stream, err := js.StreamNameBySubject(ctx, subj)
		if err != nil {
			return nil, fmt.Errorf("replay %s on %s: no stream holds the subject: %w", spec.Name, subj, err)
		}
		name := wire.EventConsumer(spec.Name, subj)
		cur, err := js.Consumer(ctx, stream, name)
		if err != nil {
			return nil, fmt.Errorf("replay %s on %s: its consumer %s: %w (is the function deployed?)", spec.Name, subj, name, err)
		}
		info := cur.CachedInfo()
		cfg := info.Config
		cfg.PauseUntil = nil
		old := cfg
		SetStart(&old, registry.EventStart{Seq: info.AckFloor.Stream + 1})
		SetStart(&cfg, start)
		subs = append(subs, sub{subj, stream, name, cfg, old})
	}
	// Stop deliveries, then wait for the ones out to be acknowledged.
	recreated := 0
	defer func() {
		for _, s := range subs[recreated:] {
			_, _ = js.ResumeConsumer(context.WithoutCancel(ctx), s.stream, s.name)
		}
	}()
	// Paused for as long as the wait and the clearing may take, not
	// longer: a replay killed meanwhile leaves the subscription to resume
	// by itself.
	for _, s := range subs {
		if _, err := js.PauseConsumer(ctx, s.stream, s.name, time.Now().Add(s.cfg.AckWait+5*time.Minute)); err != nil {
			return nil, fmt.Errorf("replay %s on %s: pause: %w", spec.Name, s.subject, err)
		}
	}
	for _, s := range subs {
		deadline := time.Now().Add(s.cfg.AckWait)
		for {
			info, err := js.Consumer(ctx, s.stream, s.name)
			if err != nil {
				return nil, fmt.Errorf("replay %s on %s: %w", spec.Name, s.subject, err)
			}
			if info.CachedInfo().NumAckPending == 0 || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// From here on the replay runs to its end whatever happens to ctx:
	// state half cleared and a subscription put back where it was would
	// lose what was cleared, and a consumer deleted and not created again
	// would be created anew by an agent, skipping every event meanwhile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var clearErr error
	if clear != nil {
		// A clear that fails half way still replays from the start: the
		// handlers are idempotent, so what was cleared is rebuilt and the
		// rest is skipped.
		if err := clear(rctx); err != nil {
			clearErr = fmt.Errorf("replay %s: clear (replayed anyway): %w", spec.Name, err)
		}
	}
	var out []Replayed
	for _, s := range subs {
		r, err := recreate(rctx, js, s.stream, s.name, s.cfg)
		if err != nil && clear == nil {
			// Put the subscription back where it was.
			if _, rerr := recreate(rctx, js, s.stream, s.name, s.old); rerr != nil {
				return out, fmt.Errorf("replay %s on %s: %w; and the subscription could not be put back (%v): redeploy %s to have it provisioned", spec.Name, s.subject, err, rerr, spec.Name)
			}
			recreated++
			return out, fmt.Errorf("replay %s on %s: %w; the subscription goes on from sequence %d", spec.Name, s.subject, err, s.old.OptStartSeq)
		}
		if err != nil {
			// Its state is cleared: only the replay rebuilds it.
			return out, errors.Join(clearErr, fmt.Errorf("replay %s on %s: %w; its state was cleared and the subscription has no consumer: redeploy %s, then replay it from the start", spec.Name, s.subject, err, spec.Name))
		}
		recreated++
		r.Subject, r.From = s.subject, start.String()
		out = append(out, r)
	}
	return out, clearErr
}

// recreate deletes a consumer and creates it with cfg, again if an agent
// provisioned it in between.
func recreate(ctx context.Context, js jetstream.JetStream, stream, name string, cfg jetstream.ConsumerConfig) (Replayed, error) {
	var last error
	for range 5 {
		if err := js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return Replayed{}, err
		}
		c, err := js.CreateConsumer(ctx, stream, cfg)
		if err == nil {
			return Replayed{Stream: stream, Consumer: name, Pending: c.CachedInfo().NumPending}, nil
		}
		last = err
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			break
		}
	}
	return Replayed{}, fmt.Errorf("the consumer could not be recreated: %w", last)
}
