package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// Schedule runs the function on a timer, once per tick across all of its
// instances and agents. The ticks come from nats-server's own message
// scheduler: a schedule message in YARD_ASYNC fires the function's async
// subject, so a tick is an async invocation with the same retries, results
// and dead letters.
type Schedule struct {
	// Cron is when to run, in UTC: "@every 1m" (at least 1s), a descriptor
	// (@hourly, @daily, @weekly, @monthly, @yearly), or a cron line of five
	// fields (minute hour day-of-month month day-of-week) or six (seconds
	// first).
	Cron string
	// Input is the function's input on every tick, encoded as JSON; it must
	// satisfy the input schema. Nil sends {}.
	Input any
}

// scheduleSpecs encodes the schedules for the registry.
func scheduleSpecs(ss []Schedule) ([]registry.Schedule, error) {
	var out []registry.Schedule
	for k, s := range ss {
		input := []byte("{}")
		if s.Input != nil {
			var err error
			if input, err = json.Marshal(s.Input); err != nil {
				return nil, fmt.Errorf("schedules/%d: encode input: %w", k, err)
			}
		}
		out = append(out, registry.Schedule{Cron: s.Cron, Input: input})
	}
	return out, nil
}

// validateSchedules checks every schedule's line, and its input against
// the function's input schema, so a bad schedule fails at start (and at
// deploy, through the manifest) instead of at every tick.
func validateSchedules(ss []Schedule, inSchema []byte) error {
	if len(ss) == 0 {
		return nil
	}
	specs, err := scheduleSpecs(ss)
	if err != nil {
		return err
	}
	return registry.ValidateSchedules(specs, inSchema)
}

// syncSchedules puts the function's schedules into YARD_SCHEDULES. Only
// an instance of the live version calls it. A deploy, rollback or rm may
// change the registry meanwhile (and sync on its own), so after each sync
// the registry is read again, and the schedules follow it until they
// agree: whichever writer comes last, the registry's schedules win.
func (i *Instance) syncSchedules(ctx context.Context, reg *registry.Registry) error {
	want := i.spec.Schedules
	for range 5 {
		if err := i.store.SyncSchedules(ctx, i.cfg.Name, want); err != nil {
			return err
		}
		cur, err := reg.Get(ctx, i.cfg.Name)
		var now []registry.Schedule
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			return err
		default:
			now = cur.Schedules
		}
		if sameSchedules(now, want) {
			if len(want) > 0 {
				i.log.Info("schedules in place", "count", len(want))
			}
			return nil
		}
		want = now
	}
	return errors.New("the registry kept changing while the schedules were set")
}

func sameSchedules(a, b []registry.Schedule) bool {
	return slices.EqualFunc(a, b, func(x, y registry.Schedule) bool { return x.ID() == y.ID() })
}
