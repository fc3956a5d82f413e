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
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
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
	fntest.Platform(t, nc)
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
		startFn(t, nc, cfg, h)
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
	store, _ := openStore(t, nc)
	active, err := store.Schedules(ctx, "sweeper")
	if err != nil || len(active) != 1 || active[0].Pattern != "@every 1s" {
		t.Fatalf("one schedule expected, three instances started: %+v, %v", active, err)
	}
}

// TestScheduleChecks: a bad schedule fails the start with the field at fault.
func TestScheduleChecks(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
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
	fntest.Platform(t, nc)
	ctx := context.Background()
	store, js := openStore(t, nc)
	cfg := fn.Config{Name: "late-sweeper", Schedules: []fn.Schedule{{Cron: "@every 1s", Input: tick{Job: "sweep"}}}}
	if err := store.SyncSchedules(ctx, cfg.Name, []registry.Schedule{{Cron: "@every 1s", Input: []byte(`{"job":"sweep"}`)}}); err != nil {
		t.Fatal(err)
	}
	queued := queuedIn(ctx, js, cfg.Name)
	natstest.WaitFor(t, 10*time.Second, "three ticks to queue up", func() bool { return queued() >= 3 })
	runs := countingTicker(t, nc, cfg)
	natstest.WaitFor(t, 10*time.Second, "the backlog to be taken", func() bool { return queued() == 0 })
	// The latest queued tick may run, and one more may have fired meanwhile.
	if n := runs(); n > 2 {
		t.Fatalf("%d runs for a backlog of missed ticks", n)
	}
}

// TestLateLatestTickRuns: the latest tick of a schedule runs however late
// it is delivered; only ticks a later one overtook are skipped.
func TestLateLatestTickRuns(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	ctx := context.Background()
	store, js := openStore(t, nc)
	const subject = "yard.async.slowpoke"
	if err := store.SyncSchedules(ctx, "slowpoke", []registry.Schedule{{Cron: "@every 1s", Input: []byte(`{"job":"sweep"}`)}}); err != nil {
		t.Fatal(err)
	}
	async, _ := js.Stream(ctx, "YARD_ASYNC")
	queued := queuedIn(ctx, js, "slowpoke")
	natstest.WaitFor(t, 10*time.Second, "two ticks to queue up", func() bool { return queued() >= 2 })
	// The schedule stops; its last tick waits until its successor would
	// have been due.
	if err := store.SyncSchedules(ctx, "slowpoke", nil); err != nil {
		t.Fatal(err)
	}
	last, err := async.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	next, err := time.Parse(time.RFC3339Nano, last.Header.Get(invocation.HeaderScheduleNext))
	if err != nil {
		t.Fatalf("tick headers %v", last.Header)
	}
	natstest.WaitFor(t, 10*time.Second, "the last tick to be late", func() bool { return time.Now().After(next) })
	runs := countingTicker(t, nc, fn.Config{Name: "slowpoke"})
	natstest.WaitFor(t, 10*time.Second, "the backlog to be taken", func() bool { return queued() == 0 })
	natstest.WaitFor(t, 10*time.Second, "the latest tick to run", func() bool { return runs() >= 1 })
	if n := runs(); n != 1 {
		t.Fatalf("%d runs, want the latest tick only", n)
	}
}

// TestLastUndeployedInstanceRemovesSchedules: the schedules of a function
// run by undeployed instances go when the last of them stops, not before.
func TestLastUndeployedInstanceRemovesSchedules(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	ctx := context.Background()
	cfg := fn.Config{Name: "dev-sweeper", Schedules: []fn.Schedule{{Cron: "@hourly", Input: tick{Job: "sweep"}}}}
	h := fn.Handle(func(ctx context.Context, in tick) (tick, error) { return in, nil })
	a, err := fn.Start(ctx, nc, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fn.Start(ctx, nc, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	count := func() int {
		active, err := invocation.ListSchedules(ctx, js, "dev-sweeper")
		if err != nil {
			t.Fatal(err)
		}
		return len(active)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d schedules while two instances run", n)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d schedules while one instance still runs", n)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d schedules after the last instance stopped", n)
	}
	// Two last instances stopping at once: one of them sees the other gone.
	var insts []*fn.Instance
	for range 2 {
		inst, err := fn.Start(ctx, nc, cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); _ = inst.Stop(ctx) }()
	}
	wg.Wait()
	if n := count(); n != 0 {
		t.Fatalf("%d schedules after the last two instances stopped together", n)
	}
}

// queuedIn counts the async invocations of a function waiting in YARD_ASYNC.
func queuedIn(ctx context.Context, js jetstream.JetStream, name string) func() uint64 {
	subject := "yard.async." + name
	return func() uint64 {
		async, err := js.Stream(ctx, "YARD_ASYNC")
		if err != nil {
			return 0
		}
		info, err := async.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0
		}
		return info.State.Subjects[subject]
	}
}

// countingTicker starts an instance of a ticked function that counts its runs.
func countingTicker(t *testing.T, nc *nats.Conn, cfg fn.Config) (runs func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	startFn(t, nc, cfg, fn.Handle(func(ctx context.Context, in tick) (tick, error) {
		mu.Lock()
		n++
		mu.Unlock()
		return in, nil
	}))
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
