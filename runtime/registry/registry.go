// Package registry keeps the specs of Switchyard functions in NATS
// JetStream: the live spec of every function in the key-value bucket
// yard_functions, one key per function name. Instances write their spec when
// they start; the gateway and the CLI read and watch it. Later stages add
// versions (yard_versions) and artifacts (yard_artifacts) beside it.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ErrNotFound is returned for a function the registry does not know.
var ErrNotFound = errors.New("function not found")

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
}

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
	return errors.Join(errs...)
}

// sameDefinition reports whether two specs describe the same function,
// ignoring the time it was written.
func sameDefinition(a, b *Spec) bool {
	return a.Name == b.Name && a.Description == b.Description && a.Version == b.Version &&
		a.SchemaHash == b.SchemaHash && a.Timeout == b.Timeout && a.Concurrency == b.Concurrency &&
		a.MaxAttempts == b.MaxAttempts && slices.Equal(a.Backoff, b.Backoff) &&
		bytes.Equal(a.InputSchema, b.InputSchema) && bytes.Equal(a.OutputSchema, b.OutputSchema)
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

// Registry reads and writes function specs.
type Registry struct {
	functions jetstream.KeyValue
}

// Open returns the registry, creating its bucket when it does not exist.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, wire.BucketFunctions)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      wire.BucketFunctions,
			Description: "Switchyard: live spec of every function",
			History:     History,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, wire.BucketFunctions)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", wire.BucketFunctions, err)
	}
	return &Registry{functions: kv}, nil
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
	if err := wire.ValidateName(name); err != nil {
		return nil, err
	}
	e, err := r.functions.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get %s: %w", name, err)
	}
	return Decode(e.Value())
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
		s, err := r.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between list and get
		}
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	// Keys come back in stream order; callers print them, so sort by name.
	SortByName(specs)
	return specs, nil
}

// Delete removes a function's live spec.
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
