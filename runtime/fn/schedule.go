package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// Schedule runs the function on a timer, once per tick across all of its
// instances and agents. The ticks come from nats-server's own message
// scheduler: a schedule message in YARD_SCHEDULES fires ticks that
// YARD_ASYNC takes in on the function's async subject, so a tick is an
// async invocation with the same retries, results and dead letters. A
// tick that a later one of the same schedule overtook (the function was
// down or busy) is skipped.
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

// dropSchedules removes the schedules an undeployed instance (go run, a
// test) put in place when it is the last instance of its function to stop:
// nothing else would ever run their ticks, which would pile up in the
// shared work queue. A deploy owns the schedules of a deployed function,
// so deployed instances leave them alone. An undeployed instance that
// crashes leaves them until its next start or `yard rm <name>`.
//
// It runs once this instance no longer answers pings, so of two last
// instances stopping together at least one sees the other gone.
func (i *Instance) dropSchedules(ctx context.Context, self string) {
	if !i.schedulesSet || i.cfg.DeployedVersion > 0 || !i.nc.IsConnected() {
		return
	}
	if cur, err := i.reg.Get(ctx, i.cfg.Name); err != nil || cur.Version > 0 {
		return // deployed since, or the registry cannot tell: leave them
	}
	pings, err := fleet.Ping(i.nc, i.cfg.Name, 200*time.Millisecond)
	if err != nil {
		return
	}
	for _, p := range pings {
		if p.ID != self {
			return // another instance still serves them
		}
	}
	if err := i.store.SyncSchedules(ctx, i.cfg.Name, nil); err != nil {
		i.log.Warn("could not remove the schedules of the last undeployed instance", logKeyErr, err)
		return
	}
	// A deploy may have come meanwhile: its schedules win.
	if cur, err := i.reg.Get(ctx, i.cfg.Name); err == nil && cur.Version > 0 && len(cur.Schedules) > 0 {
		if err := i.store.SyncSchedules(ctx, i.cfg.Name, cur.Schedules); err != nil {
			i.log.Warn("could not restore the schedules of the deployed version", logKeyErr, err)
		}
		return
	}
	i.log.Info("schedules removed: the last undeployed instance stopped")
}
