package agent

import (
	"context"
	"errors"
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
	// Woken before the retry is due (scaling, activation): wait for it.
	wait := f.failedSpec == spec && f.failedSpec != nil && time.Now().Before(f.retryAt)
	f.mu.Unlock()
	if done {
		return nil
	}
	if wait {
		return errProvisionPending
	}
	var err error
	if spec == nil {
		err = f.a.prov.Remove(ctx, f.name)
	} else {
		err = f.a.prov.Apply(ctx, spec)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// Retried, less and less often while it keeps failing (a spec the
		// platform refuses waits for a deploy that fixes it).
		delay := min(provisionRetry<<min(f.provisionFailures, 5), time.Minute)
		time.AfterFunc(delay, f.wake)
		f.provisionFailures++
		f.failedSpec, f.retryAt = spec, time.Now().Add(delay)
		return err
	}
	f.provisioned, f.provisionedSet, f.provisionFailures, f.failedSpec = spec, true, 0, nil
	return nil
}

// errProvisionPending: provisioning failed and its retry is not due yet.
var errProvisionPending = errors.New("provisioning failed; waiting to retry")
