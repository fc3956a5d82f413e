// Package provision turns a function's spec into the JetStream state its
// instances use: the async consumer, its event streams and consumers, the
// key-value buckets it declares, and its schedules. It is the platform's
// one writer of that state; function instances only bind to it.
//
// The agents run it whenever the registry changes (a deploy, a rollback,
// an `yard rm`) and answer yard.register.<name> for instances run without
// a deploy. Every step is idempotent and follows the registry, so several
// agents applying the same spec agree.
package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// AckWaitMargin is how long past the function's timeout JetStream waits for
// an ack before it redelivers: enough to write the result, short enough
// that a crashed instance's work moves on quickly.
const AckWaitMargin = 5 * time.Second

// DefaultConcurrency is the concurrency of a spec that does not say.
const DefaultConcurrency = 64

// DefaultEventMaxAge is how long a declared event stream keeps events when
// the declaration does not say.
const DefaultEventMaxAge = 7 * 24 * time.Hour

// Provisioner applies specs.
type Provisioner struct {
	js    jetstream.JetStream
	reg   *registry.Registry
	store *invocation.Store
	log   *slog.Logger
}

// New opens the registry and the invocation store (creating the platform's
// streams when missing).
func New(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*Provisioner, error) {
	if log == nil {
		log = slog.Default()
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		return nil, err
	}
	return &Provisioner{js: js, reg: reg, store: store, log: log.With("component", "provision")}, nil
}

// Registry is the registry the provisioner follows.
func (p *Provisioner) Registry() *registry.Registry { return p.reg }

// Apply makes JetStream match spec, reporting every failed step.
func (p *Provisioner) Apply(ctx context.Context, spec *registry.Spec) error {
	if err := wire.ValidateName(spec.Name); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	// Whoever wrote the spec, nothing outside the function's own space
	// is provisioned.
	if err := errors.Join(spec.ValidateDeclarations()...); err != nil {
		return fmt.Errorf("provision %s: refusing its declarations: %w", spec.Name, err)
	}
	var errs []error
	for _, st := range spec.Streams {
		if err := p.ensureStream(ctx, st); err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range spec.Buckets {
		if err := EnsureBucket(ctx, p.js, b, spec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.asyncConsumer(ctx, spec); err != nil {
		errs = append(errs, err)
	}
	for _, subject := range spec.Events {
		if err := p.eventConsumer(ctx, spec, subject); err != nil {
			errs = append(errs, err)
		}
	}
	if err := p.syncSchedules(ctx, spec.Name, spec.Schedules); err != nil {
		errs = append(errs, fmt.Errorf("schedules: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("provision %s: %w", spec.Name, err)
	}
	return nil
}

// Remove makes a function's schedules follow the registry after its spec
// went (none), or changed hands meanwhile (the registry's). Its consumers
// stay: work queued meanwhile runs if it comes back.
func (p *Provisioner) Remove(ctx context.Context, name string) error {
	var want []registry.Schedule
	cur, err := p.reg.Get(ctx, name)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		active, err := p.store.Schedules(ctx, name)
		if err != nil || len(active) == 0 {
			return err
		}
	case err != nil:
		return err
	default:
		want = cur.Schedules
	}
	return p.syncSchedules(ctx, name, want)
}

// MetaOwner is the stream metadata key naming the function a bucket
// belongs to: the first function to declare it. No other function's
// declaration of it is provisioned.
const MetaOwner = "switchyard.function"

// MetaEntity is the stream metadata key that marks an entity stream.
const MetaEntity = "switchyard.entity"

// EnsureBucket creates a function's key-value bucket when missing (file
// storage, one revision of history per key), owned by owner; an existing
// bucket of another owner is refused, one without an owner is claimed.
// An empty owner (tests) neither checks nor claims.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, bucket, owner string) error {
	cfg := jetstream.KeyValueConfig{Bucket: bucket, Description: "Switchyard function data", History: 1, Storage: jetstream.FileStorage}
	if owner != "" {
		cfg.Metadata = map[string]string{MetaOwner: owner}
	}
	if _, err := jskv.Open(ctx, js, cfg); err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	if owner == "" {
		return nil
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bucket, err)
	}
	sc := st.CachedInfo().Config
	switch cur := sc.Metadata[MetaOwner]; cur {
	case owner:
		return nil
	case "":
		if sc.Metadata == nil {
			sc.Metadata = map[string]string{}
		}
		sc.Metadata[MetaOwner] = owner
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bucket %s: claim it for %s: %w", bucket, owner, err)
		}
		return nil
	default:
		return fmt.Errorf("bucket %s belongs to function %s, not %s", bucket, cur, owner)
	}
}

// ensureStream creates a declared event stream when missing. Several
// functions may declare the same stream (a publisher and a subscriber),
// but only alike: one that exists with other subjects is refused, so no
// declaration takes over another's subjects. A declaration may lengthen
// the retention, never shorten it: the declarers of one stream would
// otherwise take turns, and the one wanting least would expire events
// another (a projection rebuilt from the start, an entity) needs; shorten
// it with nats stream edit.
// An entity stream keeps its events until removed (unless MaxAge), allows
// no deletion of one event, answers direct gets (fn.Load reads it so) and
// has a snapshot bucket.
func (p *Provisioner) ensureStream(ctx context.Context, st registry.Stream) error {
	maxAge := st.MaxAge.D()
	if maxAge == 0 && !st.Entity {
		maxAge = DefaultEventMaxAge
	}
	want := jetstream.StreamConfig{
		Name: st.Name, Subjects: st.Subjects, Storage: jetstream.FileStorage, MaxAge: maxAge,
		Description: "Switchyard events",
	}
	if st.Entity {
		want.Description = "Switchyard entity events"
		want.DenyDelete, want.AllowDirect = true, true
		want.Metadata = map[string]string{MetaEntity: "true"}
	}
	s, err := jskv.EnsureStream(ctx, p.js, want)
	if err != nil {
		return fmt.Errorf("stream %s: %w", st.Name, err)
	}
	cfg := s.CachedInfo().Config
	if !slices.Equal(slices.Sorted(slices.Values(cfg.Subjects)), slices.Sorted(slices.Values(st.Subjects))) {
		return fmt.Errorf("stream %s exists with subjects %v, not the declared %v", st.Name, cfg.Subjects, st.Subjects)
	}
	update := false
	if st.Entity && (!cfg.AllowDirect || !cfg.DenyDelete || cfg.Metadata[MetaEntity] != "true") {
		cfg.AllowDirect, cfg.DenyDelete = true, true
		if cfg.Metadata == nil {
			cfg.Metadata = map[string]string{}
		}
		cfg.Metadata[MetaEntity] = "true"
		update = true
	}
	if longer(maxAge, cfg.MaxAge) {
		cfg.MaxAge, update = maxAge, true
	}
	if update {
		if _, err := p.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream %s: update: %w", st.Name, err)
		}
	}
	if st.Entity {
		if err := EnsureBucket(ctx, p.js, registry.SnapshotBucket(st.Name), ""); err != nil {
			return fmt.Errorf("stream %s: snapshots: %w", st.Name, err)
		}
	}
	return nil
}

// longer reports whether MaxAge a keeps events longer than b (0: forever).
func longer(a, b time.Duration) bool { return b != 0 && (a == 0 || a > b) }

// consumerSettings are what every consumer of the function shares: the
// function's timeout bounds how long a delivery may go unacknowledged, its
// concurrency how many are out at once across all its instances.
func consumerSettings(spec *registry.Spec) (ackWait time.Duration, maxAckPending int) {
	concurrency := spec.Concurrency
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	return spec.Timeout.D() + AckWaitMargin, concurrency
}

func (p *Provisioner) asyncConsumer(ctx context.Context, spec *registry.Spec) error {
	subject, err := wire.AsyncSubject(spec.Name)
	if err != nil {
		return err
	}
	ackWait, pending := consumerSettings(spec)
	_, err = p.js.CreateOrUpdateConsumer(ctx, wire.StreamAsync, jetstream.ConsumerConfig{
		Durable:       wire.AsyncConsumer(spec.Name),
		Description:   "Switchyard: async invocations of " + spec.Name,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: pending,
		MaxDeliver:    -1, // attempts are counted and bounded by the instances
	})
	if err != nil {
		return fmt.Errorf("async consumer: %w", err)
	}
	return nil
}

// eventConsumer creates or updates a subscription's durable consumer. A
// new one starts where the subscription says; an existing one keeps where
// it started (JetStream cannot move that; `yard events replay` resets it).
func (p *Provisioner) eventConsumer(ctx context.Context, spec *registry.Spec, subject string) error {
	stream, err := p.js.StreamNameBySubject(ctx, subject)
	if err != nil {
		return fmt.Errorf("event %s: no stream holds the subject (declare one in Config.Streams): %w", subject, err)
	}
	opts := spec.EventOptions[subject]
	ackWait, pending := consumerSettings(spec)
	if opts.Ordered {
		pending = 1
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       wire.EventConsumer(spec.Name, subject),
		Description:   "Switchyard: " + spec.Name + " on " + subject,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: pending,
		MaxDeliver:    -1,
	}
	if cur, err := p.js.Consumer(ctx, stream, cfg.Durable); err == nil {
		old := cur.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("event %s: consumer: %w", subject, err)
	} else {
		start, err := registry.ParseEventStart(opts.From)
		if err != nil {
			return fmt.Errorf("event %s: %w", subject, err)
		}
		SetStart(&cfg, start)
	}
	if _, err := p.js.CreateOrUpdateConsumer(ctx, stream, cfg); err != nil {
		return fmt.Errorf("event %s: consumer: %w", subject, err)
	}
	return nil
}

// SetStart sets where a consumer created with cfg starts.
func SetStart(cfg *jetstream.ConsumerConfig, start registry.EventStart) {
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = start.Deliver()
}

// syncSchedules puts want in place, then reads the registry again and
// follows it until the two agree: whichever writer came last, the
// registry's schedules win, so a provisioner holding an older spec cannot
// undo a newer one.
func (p *Provisioner) syncSchedules(ctx context.Context, name string, want []registry.Schedule) error {
	for range 5 {
		if err := p.store.SyncSchedules(ctx, name, want); err != nil {
			return err
		}
		cur, err := p.reg.Get(ctx, name)
		var now []registry.Schedule
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			return err
		default:
			now = cur.Schedules
		}
		if sameSchedules(now, want) {
			return nil
		}
		want = now
	}
	return errors.New("the registry kept changing while the schedules were set")
}

func sameSchedules(a, b []registry.Schedule) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Schedule) bool { return x.ID() == y.ID() })
}

// RemoveOrphans removes the schedules of functions not in known (the
// registry's functions when an agent starts): they were removed while no
// agent ran.
func (p *Provisioner) RemoveOrphans(ctx context.Context, known map[string]bool) error {
	names, err := p.store.ScheduledFunctions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if !known[name] {
			errs = append(errs, p.Remove(ctx, name))
		}
	}
	return errors.Join(errs...)
}
