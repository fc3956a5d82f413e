package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
// one on subject) back to start, so its handlers see those events again:
// each durable consumer is recreated with the same settings and the new
// start (JetStream cannot move a consumer's start). The instances bind to
// the new consumer by themselves. An agent that re-provisions the
// subscription meanwhile makes the recreation fail; it is tried again.
func Replay(ctx context.Context, js jetstream.JetStream, spec *registry.Spec, subject string, start registry.EventStart) ([]Replayed, error) {
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
	var out []Replayed
	for _, subj := range subjects {
		r, err := replayOne(ctx, js, spec, subj, start)
		if err != nil {
			return out, fmt.Errorf("replay %s on %s: %w", spec.Name, subj, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func replayOne(ctx context.Context, js jetstream.JetStream, spec *registry.Spec, subject string, start registry.EventStart) (Replayed, error) {
	stream, err := js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return Replayed{}, fmt.Errorf("no stream holds the subject: %w", err)
	}
	name := wire.EventConsumer(spec.Name, subject)
	cur, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return Replayed{}, fmt.Errorf("its consumer %s: %w (is the function deployed?)", name, err)
	}
	cfg := cur.CachedInfo().Config
	SetStart(&cfg, start)
	var last error
	for range 5 {
		if err := js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return Replayed{}, err
		}
		c, err := js.CreateConsumer(ctx, stream, cfg)
		if err == nil {
			return Replayed{Subject: subject, Stream: stream, Consumer: name, From: start.String(), Pending: c.CachedInfo().NumPending}, nil
		}
		last = err
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			break
		}
	}
	return Replayed{}, fmt.Errorf("the consumer could not be recreated (an agent provisions it again from the spec): %w", last)
}
