package fn_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	fn "github.com/switchyard-dev/switchyard/runtime"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

type tick struct {
	Job string `json:"job" jsonschema:"enum=sweep"`
}

// TestScheduleRunsOncePerTick: three instances of a function scheduled
// @every 1s run each tick exactly once between them, with the schedule's
// input, and keep one schedule message between them.
func TestScheduleRunsOncePerTick(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	ctx := context.Background()
	var mu sync.Mutex
	runs := 0
	jobs := map[string]int{}
	h := fn.Handle(func(ctx context.Context, in tick) (tick, error) {
		mu.Lock()
		runs++
		jobs[in.Job]++
		mu.Unlock()
		return in, nil
	})
	// Every tick's completion event names its invocation: count distinct ones.
	ids := map[string]int{}
	sub, err := nc.Subscribe("yard.results.sweeper.*", func(m *nats.Msg) {
		mu.Lock()
		ids[m.Subject]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	cfg := fn.Config{Name: "sweeper", Schedules: []fn.Schedule{{Cron: "@every 1s", Input: tick{Job: "sweep"}}}}
	for range 3 {
		inst, err := fn.Start(ctx, nc, cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inst.Stop(ctx) })
	}
	natstest.WaitFor(t, 10*time.Second, "three ticks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ids) >= 3
	})
	mu.Lock()
	got, distinct, sweeps := runs, len(ids), jobs["sweep"]
	for id, n := range ids {
		if n != 1 {
			t.Errorf("tick %s completed %d times", id, n)
		}
	}
	mu.Unlock()
	// A tick may be running while we count: allow it to be one ahead.
	if got < distinct || got > distinct+1 || sweeps != got {
		t.Fatalf("%d runs (%d with the schedule's input) for %d ticks", got, sweeps, distinct)
	}
	js, _ := jetstream.New(nc)
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	active, err := store.Schedules(ctx, "sweeper")
	if err != nil || len(active) != 1 || active[0].Pattern != "@every 1s" {
		t.Fatalf("one schedule expected, three instances started: %+v, %v", active, err)
	}
}

// TestScheduleChecks: a bad schedule fails the start with the field at fault.
func TestScheduleChecks(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	for _, c := range []struct {
		sched fn.Schedule
		want  string
	}{
		{fn.Schedule{Cron: "every minute"}, "schedules/0: cron"},
		{fn.Schedule{Cron: "@hourly", Input: tick{Job: "dust"}}, "schedules/0: input does not match the input schema: /job"},
		{fn.Schedule{Cron: "@hourly", Input: func() {}}, "schedules/0: encode input"},
	} {
		_, err := fn.Start(context.Background(), nc, fn.Config{Name: "sweeper", Schedules: []fn.Schedule{c.sched}},
			fn.Handle(func(ctx context.Context, in tick) (tick, error) { return in, nil }))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.sched, err, c.want)
		}
	}
}

// TestMissedTicksDoNotPileUp: ticks queued while the function was down
// are skipped when their next tick is due already; the function runs the
// latest one, not a backlog.
func TestMissedTicksDoNotPileUp(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fn.Config{Name: "late-sweeper", Schedules: []fn.Schedule{{Cron: "@every 1s", Input: tick{Job: "sweep"}}}}
	if err := store.SyncSchedules(ctx, cfg.Name, []registry.Schedule{{Cron: "@every 1s", Input: []byte(`{"job":"sweep"}`)}}); err != nil {
		t.Fatal(err)
	}
	async, _ := js.Stream(ctx, "YARD_ASYNC")
	queued := func() uint64 {
		info, err := async.Info(ctx, jetstream.WithSubjectFilter("yard.async.late-sweeper"))
		if err != nil {
			return 0
		}
		return info.State.Subjects["yard.async.late-sweeper"]
	}
	natstest.WaitFor(t, 10*time.Second, "three ticks to queue up", func() bool { return queued() >= 3 })
	var mu sync.Mutex
	runs := 0
	inst, err := fn.Start(ctx, nc, cfg, fn.Handle(func(ctx context.Context, in tick) (tick, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		return in, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(ctx)
	natstest.WaitFor(t, 10*time.Second, "the backlog to be taken", func() bool { return queued() == 0 })
	mu.Lock()
	defer mu.Unlock()
	// The latest queued tick may run, and one more may have fired meanwhile.
	if runs > 2 {
		t.Fatalf("%d runs for a backlog of missed ticks", runs)
	}
}
