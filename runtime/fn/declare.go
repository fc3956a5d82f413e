package fn

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// ErrUndeclared is wrapped by every error for a call, publish or bucket
// that the function did not declare in its Config.
var ErrUndeclared = errors.New("undeclared use")

// declarations is what a handler's context says its function may use.
type declarations struct {
	name      string
	calls     []string
	publishes []string
	buckets   []string
	entities  []Stream
}

func declarationsOf(cfg Config) *declarations {
	d := &declarations{name: cfg.Name, calls: cfg.Calls, publishes: cfg.Publishes, buckets: cfg.Buckets}
	for _, st := range cfg.Streams {
		if st.Entity {
			d.entities = append(d.entities, st)
		}
	}
	return d
}

// declared returns the declarations of ctx's function; ok is false for a
// context from WithConn, which belongs to no function and is bounded only
// by its connection's NATS permissions.
func declared(ctx context.Context) (d *declarations, ok bool) {
	d, ok = ctx.Value(keyDecl).(*declarations)
	return d, ok
}

func checkCall(ctx context.Context, target string) error {
	d, ok := declared(ctx)
	if !ok || slices.Contains(d.calls, target) {
		return nil
	}
	return fmt.Errorf("%w: fn %s calls %s: add %q to Config.Calls", ErrUndeclared, d.name, target, target)
}

func checkPublish(ctx context.Context, subject string) error {
	d, ok := declared(ctx)
	if !ok || slices.ContainsFunc(d.publishes, func(p string) bool { return subjectMatches(p, subject) }) {
		return nil
	}
	return fmt.Errorf("%w: fn %s publishes on %s: add it (or a pattern) to Config.Publishes", ErrUndeclared, d.name, subject)
}

func checkBucket(ctx context.Context, bucket string) error {
	d, ok := declared(ctx)
	if !ok || slices.Contains(d.buckets, bucket) {
		return nil
	}
	return fmt.Errorf("%w: fn %s uses bucket %s: add %q to Config.Buckets", ErrUndeclared, d.name, bucket, bucket)
}

// validateDeclarations checks the declarations with the platform's own
// rules, so a typo fails at start rather than at the first call (and the
// platform would refuse them anyway).
func validateDeclarations(cfg Config) []error {
	spec := &registry.Spec{Name: cfg.Name, Calls: cfg.Calls, Publishes: cfg.Publishes, Buckets: cfg.Buckets}
	for _, sub := range cfg.Events {
		spec.Events = append(spec.Events, sub.subject)
		if sub.opts != (registry.EventOptions{}) {
			if spec.EventOptions == nil {
				spec.EventOptions = map[string]registry.EventOptions{}
			}
			spec.EventOptions[sub.subject] = sub.opts
		}
	}
	for _, st := range cfg.Streams {
		spec.Streams = append(spec.Streams, registry.Stream{Name: st.Name, Subjects: st.Subjects, Entity: st.Entity})
	}
	errs := spec.ValidateDeclarations()
	for _, st := range cfg.Streams {
		for _, t := range st.EventTypes {
			if t.err != nil {
				errs = append(errs, fmt.Errorf("streams: %s: %w", st.Name, t.err))
			}
		}
		if len(st.EventTypes) > 0 && !st.Entity {
			errs = append(errs, fmt.Errorf("streams: %s: EventTypes are for entity streams", st.Name))
		}
	}
	return errs
}
