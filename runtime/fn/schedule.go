package fn

import (
	"encoding/json"
	"fmt"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// Schedule runs the function on a timer, once per tick across all of its
// instances and agents. The platform puts the schedules of the live spec
// in place; an instance never writes them. The ticks come from nats-server's own message
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
