// Package registry keeps the specs of Switchyard functions in NATS
// JetStream: the live spec of every function in the key-value bucket
// yard_functions, one key per function name. Instances write their spec when
// they start; the gateway and the CLI read and watch it.
//
// Deploys add two stores beside it: yard_versions keeps the spec of every
// deployed version under <name>.<N>, so that a rollback can make an older
// one live again, and the object store yard_artifacts keeps the function
// binaries, named by their sha256. A deploy uploads the binary
// (PutArtifact), records the next version and makes it live (Deploy); agents
// watching yard_functions fetch the binary (FetchArtifact) and run it.
//
// Open costs one bucket lookup; the deploy stores are opened, and created
// if need be, the first time a method needs them, so instances and gateways
// never touch them.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ErrNotFound is returned for a function the registry does not know.
var ErrNotFound = errors.New("function not found")

// ErrInvalidSpec is returned for a spec that fails validation.
var ErrInvalidSpec = errors.New("invalid spec")

// History is how many revisions of each function's spec the bucket keeps.
const History = 10

// Spec describes one version of a function: what it is called, what it
// accepts and returns, and how it is run. It is stored as JSON; fields are
// only ever added, so older readers keep working.
type Spec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Version is the deployed version number, 0 for an instance that
	// registered itself without a deploy (yard up's bundled functions, tests).
	Version      int             `json:"version,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	OutputSchema json.RawMessage `json:"output_schema"`
	// SchemaHash identifies the pair of schemas; equal hashes mean the
	// gateway can keep its compiled copies.
	SchemaHash  string   `json:"schema_hash"`
	Timeout     Duration `json:"timeout"`
	Concurrency int      `json:"concurrency,omitempty"`
	// MaxAttempts and Backoff are the retry policy of async invocations.
	MaxAttempts int        `json:"max_attempts,omitempty"`
	Backoff     []Duration `json:"backoff,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at,omitzero"`

	// Artifact is the binary a deployed version runs, kept in
	// yard_artifacts; nil for an instance that registered itself.
	Artifact *Artifact `json:"artifact,omitempty"`
	// MinInstances is how many instances the agents keep running even when
	// the function is idle; 0 lets it scale to zero.
	MinInstances int `json:"min_instances,omitempty"`
	// MaxInstances caps the instances the agents run, at most
	// InstanceLimit; 0 leaves the cap to the agents. It is never below
	// MinInstances.
	MaxInstances int `json:"max_instances,omitempty"`
	// IdleTimeout is how long a function runs above MinInstances without
	// a request before the agents drain one instance; 0: the agents' default.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// Env is added to the environment of every instance. Keys are POSIX
	// names; NATS_URL, NATS_CREDS and YARD_* are reserved because the agent
	// sets them to connect the instance.
	Env map[string]string `json:"env,omitempty"`
	// DeployedAt is when a deploy or a rollback last made this version
	// live; zero for an instance that registered itself.
	DeployedAt time.Time `json:"deployed_at,omitzero"`
	// Schedules run the function on timers; the platform keeps the
	// schedule messages in YARD_SCHEDULES in step with the live spec.
	Schedules []Schedule `json:"schedules,omitempty"`

	// What the function declares it uses: the platform provisions these
	// (consumers, streams, buckets) and grants exactly these rights.
	// Calls are the functions it invokes, Publishes the event subjects it
	// publishes on, Buckets the key-value buckets it uses, Events the
	// subjects its event handlers consume and Streams the event streams
	// it needs to exist.
	Calls     []string `json:"calls,omitempty"`
	Publishes []string `json:"publishes,omitempty"`
	Buckets   []string `json:"buckets,omitempty"`
	Events    []string `json:"events,omitempty"`
	Streams   []Stream `json:"streams,omitempty"`
	// EventOptions tune the subscriptions in Events, by subject: where a
	// new one starts and whether it takes one event at a time.
	EventOptions map[string]EventOptions `json:"event_options,omitempty"`

	// Access says who may invoke the function, over HTTP and NATS alike:
	// AccessPublic, AccessAuthenticated (the default, also when empty) or
	// AccessInternal.
	Access string `json:"access,omitempty"`

	// GatewaySubject says the function's instances also serve
	// yard.gw.<name>, where only gateways publish requests they have
	// validated; the gateway uses it when set.
	GatewaySubject bool `json:"gateway_subject,omitempty"`
}

// The access policies of a function.
const (
	// AccessPublic: anyone, anonymous HTTP and NATS callers included.
	AccessPublic = "public"
	// AccessAuthenticated: any API key, token or NATS credential granted
	// the function.
	AccessAuthenticated = "authenticated"
	// AccessInternal: only functions that declare a call to it; outsiders
	// are told it does not exist.
	AccessInternal = "internal"
)

// AccessPolicy returns the function's access policy, AccessAuthenticated
// when the spec names none.
func (s *Spec) AccessPolicy() string {
	if s.Access == "" {
		return AccessAuthenticated
	}
	return s.Access
}

// Stream is an event stream a function declares.
type Stream struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	MaxAge   Duration `json:"max_age,omitempty"`
	// Entity marks an event-sourced stream: one subject per entity, kept
	// until removed (unless MaxAge), no event deleted, read back by
	// subject, with snapshots in the bucket SnapshotBucket(Name). Its
	// declarers may append to its subjects and read it.
	Entity bool `json:"entity,omitempty"`
	// EventSchemas are the JSON schemas of the event types appended to an
	// entity stream, by type name: a deploy checks that the new version
	// still reads every event the live one wrote.
	EventSchemas map[string]json.RawMessage `json:"event_schemas,omitempty"`
}

// SnapshotPrefix starts the name of every entity stream's snapshot
// bucket; no function may declare a bucket of that name.
const SnapshotPrefix = "snap_"

// SnapshotBucket is the key-value bucket of an entity stream's snapshots.
func SnapshotBucket(stream string) string { return SnapshotPrefix + stream }

// EventOptions tune one event subscription.
type EventOptions struct {
	// From is where a new subscription starts (see ParseEventStart); it
	// applies when the subscription is created, and `yard events replay`
	// moves it later.
	From string `json:"from,omitempty"`
	// Ordered delivers one event at a time, in stream order, across all
	// instances: what a projection that checks sequences needs.
	Ordered bool `json:"ordered,omitempty"`
}

// EventStart is where an event subscription starts: with the events
// published after it was created (the zero value), from the first event
// kept, from a stream sequence, or from a time.
type EventStart struct {
	All  bool
	Seq  uint64
	Time time.Time
}

// ParseEventStart reads "" or "new", "start", a stream sequence ("42")
// or an RFC 3339 time ("2026-12-01T00:00:00Z").
func ParseEventStart(s string) (EventStart, error) {
	switch s {
	case "", "new":
		return EventStart{}, nil
	case "start":
		return EventStart{All: true}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
		return EventStart{Seq: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.Year() > 1 {
		return EventStart{Time: t.UTC()}, nil
	}
	return EventStart{}, fmt.Errorf("%q is not a start: use new, start, a stream sequence (1 or more) or an RFC 3339 time (after year 1)", s)
}

// Deliver is the JetStream deliver policy, with its start sequence or
// time, of a consumer that starts at e.
func (e EventStart) Deliver() (jetstream.DeliverPolicy, uint64, *time.Time) {
	switch {
	case e.All:
		return jetstream.DeliverAllPolicy, 0, nil
	case e.Seq > 0:
		return jetstream.DeliverByStartSequencePolicy, e.Seq, nil
	case !e.Time.IsZero():
		t := e.Time
		return jetstream.DeliverByStartTimePolicy, 0, &t
	}
	return jetstream.DeliverNewPolicy, 0, nil
}

// String is the form ParseEventStart reads.
func (e EventStart) String() string {
	switch {
	case e.All:
		return "start"
	case e.Seq > 0:
		return strconv.FormatUint(e.Seq, 10)
	case !e.Time.IsZero():
		return e.Time.Format(time.RFC3339Nano)
	}
	return "new"
}

// InstanceLimit is the largest MaxInstances a spec may ask for.
const InstanceLimit = 1000

// Validate reports every problem with the spec at once.
func (s *Spec) Validate() error {
	var errs []error
	if err := wire.ValidateName(s.Name); err != nil {
		errs = append(errs, err)
	}
	if !json.Valid(s.InputSchema) {
		errs = append(errs, errors.New("input_schema is not valid JSON"))
	}
	if !json.Valid(s.OutputSchema) {
		errs = append(errs, errors.New("output_schema is not valid JSON"))
	}
	if s.Timeout.D() <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %s", s.Timeout.D()))
	}
	if s.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency must not be negative, got %d", s.Concurrency))
	}
	if s.Version < 0 {
		errs = append(errs, fmt.Errorf("version must not be negative, got %d", s.Version))
	}
	switch {
	case s.MinInstances < 0:
		errs = append(errs, fmt.Errorf("min_instances must not be negative, got %d", s.MinInstances))
	case s.MaxInstances < s.MinInstances:
		errs = append(errs, fmt.Errorf("max_instances (%d) must be at least min_instances (%d)", s.MaxInstances, s.MinInstances))
	}
	if s.MaxInstances > InstanceLimit {
		errs = append(errs, fmt.Errorf("max_instances must be at most %d, got %d", InstanceLimit, s.MaxInstances))
	}
	// Sorted, so that the same spec always gets the same message.
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if err := validateEnv(k, s.Env[k]); err != nil {
			errs = append(errs, err)
		}
	}
	switch s.Access {
	case "", AccessPublic, AccessAuthenticated, AccessInternal:
	default:
		errs = append(errs, fmt.Errorf("access %q: want %s, %s or %s", s.Access, AccessPublic, AccessAuthenticated, AccessInternal))
	}
	errs = append(errs, validateSchedules(s.Schedules)...)
	errs = append(errs, s.ValidateDeclarations()...)
	if s.Artifact != nil {
		if err := s.Artifact.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sameDefinition reports whether two specs describe the same function,
// ignoring the time it was written. DeployedAt counts: a rollback that makes
// the same version live again is an event the agents must see.
func sameDefinition(a, b *Spec) bool {
	return a.Name == b.Name && a.Description == b.Description && a.Version == b.Version &&
		a.SchemaHash == b.SchemaHash && a.Timeout == b.Timeout && a.Concurrency == b.Concurrency &&
		a.MaxAttempts == b.MaxAttempts && slices.Equal(a.Backoff, b.Backoff) &&
		bytes.Equal(a.InputSchema, b.InputSchema) && bytes.Equal(a.OutputSchema, b.OutputSchema) &&
		sameArtifact(a.Artifact, b.Artifact) && a.MinInstances == b.MinInstances &&
		a.MaxInstances == b.MaxInstances && maps.Equal(a.Env, b.Env) && a.DeployedAt.Equal(b.DeployedAt) &&
		a.IdleTimeout == b.IdleTimeout && slices.EqualFunc(a.Schedules, b.Schedules, func(x, y Schedule) bool {
		return x.Cron == y.Cron && bytes.Equal(x.Input, y.Input)
	}) && slices.Equal(a.Calls, b.Calls) && slices.Equal(a.Publishes, b.Publishes) && slices.Equal(a.Buckets, b.Buckets) &&
		a.AccessPolicy() == b.AccessPolicy() && a.GatewaySubject == b.GatewaySubject && slices.Equal(a.Events, b.Events) && maps.Equal(a.EventOptions, b.EventOptions) && slices.EqualFunc(a.Streams, b.Streams, func(x, y Stream) bool {
		return x.Name == y.Name && x.MaxAge == y.MaxAge && slices.Equal(x.Subjects, y.Subjects) && x.Entity == y.Entity &&
			maps.EqualFunc(x.EventSchemas, y.EventSchemas, func(p, q json.RawMessage) bool { return bytes.Equal(p, q) })
	})
}

func sameArtifact(a, b *Artifact) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("30s") so that specs stay readable in `nats kv get`.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Registry reads and writes function specs, versions and artifacts. It is
// safe for concurrent use.
type Registry struct {
	js        jetstream.JetStream
	functions jetstream.KeyValue

	// The deploy stores, opened on first use (see versionsKV, artifactStore).
	mu        sync.Mutex
	versions  jetstream.KeyValue
	artifacts jetstream.ObjectStore
}

// Open returns the registry, creating yard_functions when it does not
// exist. yard_versions and yard_artifacts are opened, or created, when a
// method first needs them.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := jskv.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:      wire.BucketFunctions,
		Description: "Switchyard: live spec of every function",
		History:     History,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	return &Registry{js: js, functions: kv}, nil
}

// Put records spec as the live spec of its function. It writes nothing when
// the stored spec already says the same, so restarting instances do not
// churn the bucket's history or wake its watchers.
func (r *Registry) Put(ctx context.Context, spec *Spec) error {
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("registry: invalid spec: %w", err)
	}
	if cur, err := r.Get(ctx, spec.Name); err == nil && sameDefinition(cur, spec) {
		return nil
	}
	if spec.UpdatedAt.IsZero() {
		spec.UpdatedAt = time.Now().UTC()
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if _, err := r.functions.Put(ctx, spec.Name, data); err != nil {
		return fmt.Errorf("registry: put %s: %w", spec.Name, err)
	}
	return nil
}

// Get returns the live spec of a function, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, name string) (*Spec, error) {
	s, _, err := r.GetEntry(ctx, name)
	return s, err
}

// GetEntry returns the live spec of a function and its revision in
// yard_functions, or ErrNotFound. Pass the revision to Deploy to deploy only
// if nobody changed the function since it was read.
func (r *Registry) GetEntry(ctx context.Context, name string) (*Spec, uint64, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, 0, err
	}
	e, err := r.functions.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("registry: get %s: %w", name, err)
	}
	s, err := Decode(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return s, e.Revision(), nil
}

// Decode parses a stored spec.
func Decode(data []byte) (*Spec, error) {
	var s Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("registry: decode spec: %w", err)
	}
	return &s, nil
}

// List returns the live spec of every function, sorted by name.
func (r *Registry) List(ctx context.Context) ([]*Spec, error) {
	lister, err := r.functions.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	var specs []*Spec
	for key := range lister.Keys() {
		if wire.ValidateName(key) != nil {
			continue // not a function's key (written by hand with `nats kv put`)
		}
		s, err := r.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between list and get
		}
		if err != nil {
			// One unreadable entry must not hide every other function.
			continue
		}
		specs = append(specs, s)
	}
	// Keys come back in stream order; callers print them, so sort by name.
	SortByName(specs)
	return specs, nil
}

// Delete removes a function's live spec. Unlike Remove it does not mind a
// function that is not there.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if err := wire.ValidateName(name); err != nil {
		return err
	}
	return r.functions.Delete(ctx, name)
}

// Watch streams every change to the live specs, starting with the current
// ones. Deleted functions arrive with Operation() != KeyValuePut.
func (r *Registry) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return r.functions.WatchAll(ctx)
}

// Register records the spec of a function run without a deploy, unless a
// deploy owns the function: then it writes nothing and returns the
// deployed spec. Revision-checked, so it never overwrites a deploy that
// lands meanwhile; it always writes a new revision otherwise, so an
// Unregister that read the spec before this registration fails.
func (r *Registry) Register(ctx context.Context, spec *Spec) (deployed *Spec, err error) {
	if spec.Version != 0 || spec.Artifact != nil || len(spec.Env) > 0 {
		return nil, fmt.Errorf("registry: %w: a self-registered spec has no version, artifact or env", ErrInvalidSpec)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("registry: %w: %w", ErrInvalidSpec, err)
	}
	for range 5 {
		cur, rev, err := r.GetEntry(ctx, spec.Name)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		case cur.Version > 0:
			return cur, nil
		}
		spec.UpdatedAt = time.Now().UTC()
		data, err := json.Marshal(spec)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = r.functions.Create(ctx, spec.Name, data)
		} else {
			_, err = r.functions.Update(ctx, spec.Name, data, rev)
		}
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !wrongLastSequence(err) {
			return nil, fmt.Errorf("registry: register %s: %w", spec.Name, err)
		}
	}
	return nil, fmt.Errorf("registry: register %s: the spec kept changing", spec.Name)
}

// Unregister removes the spec of a function run without a deploy if it is
// still at revision rev; dropped is false when it changed since (an
// instance registered, or a deploy took it over).
func (r *Registry) Unregister(ctx context.Context, name string, rev uint64) (dropped bool, err error) {
	err = r.functions.Delete(ctx, name, jetstream.LastRevision(rev))
	if err != nil {
		if wrongLastSequence(err) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, nil
		}
		return false, fmt.Errorf("registry: unregister %s: %w", name, err)
	}
	return true, nil
}

func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// The states RunState reports.
const (
	StateRunning    = "running"
	StateScaledZero = "scaled to zero"
	StateDown       = "down"
)

// RunState says whether a function with instances running can answer
// now: running; scaled to zero (deployed with min 0: the next request
// wakes it); or down (nothing would answer: no instance, and no agent is
// expected to start one).
func (s *Spec) RunState(instances int) string {
	switch {
	case instances > 0:
		return StateRunning
	case s.Version > 0 && s.MinInstances == 0:
		return StateScaledZero
	default:
		return StateDown
	}
}
