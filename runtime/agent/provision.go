package agent

import (
	"context"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// provisionRetry is how soon a failed provisioning is tried again.
const provisionRetry = 2 * time.Second

// provision makes JetStream match the function's wanted spec (nil: it was
// removed) once per change of spec, before any instance of it starts: the
// instances only bind to what it creates. A failure is retried soon.
func (f *function) provision(ctx context.Context, spec *registry.Spec) error {
	f.mu.Lock()
	done := f.provisionedSet && f.provisioned == spec
	f.mu.Unlock()
	if done {
		return nil
	}
	var err error
	if spec == nil {
		err = f.a.prov.Remove(ctx, f.name)
	} else {
		err = f.a.prov.Apply(ctx, spec)
	}
	if err != nil {
		time.AfterFunc(provisionRetry, f.wake)
		return err
	}
	f.mu.Lock()
	f.provisioned, f.provisionedSet = spec, true
	f.mu.Unlock()
	return nil
}
