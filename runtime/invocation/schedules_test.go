package invocation_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestSyncSchedules: concurrent syncs agree on one message per schedule, an
// unchanged schedule keeps its message, and a dropped one is purged.
func TestSyncSchedules(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	hourly := registry.Schedule{Cron: "@hourly", Input: json.RawMessage(`{"op":"sweep"}`)}
	every := registry.Schedule{Cron: "@every 90s"}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.SyncSchedules(ctx, "sweeper", []registry.Schedule{hourly, every})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	active, err := s.Schedules(ctx, "sweeper")
	if err != nil || len(active) != 2 {
		t.Fatalf("Schedules = %+v, %v; want 2", active, err)
	}
	now := time.Now()
	for _, a := range active {
		if !a.Next.After(now) || a.Next.After(now.Add(time.Hour+time.Second)) {
			t.Errorf("%s: next %v not within the coming hour", a.Pattern, a.Next)
		}
	}
	// Soonest first. Which one that is depends on the clock: in the last
	// 90s of an hour, the hourly one.
	if active[0].Next.After(active[1].Next) {
		t.Errorf("Schedules not soonest first: %+v", active)
	}
	activeEvery, activeHourly := active[0], active[1]
	if activeEvery.Pattern == "@hourly" {
		activeEvery, activeHourly = activeHourly, activeEvery
	}
	if activeEvery.Pattern != "@every 1m30s" || activeHourly.Pattern != "@hourly" || string(activeHourly.Input) != `{"op":"sweep"}` {
		t.Errorf("Schedules = %+v", active)
	}
	// Keep the hourly one, drop the other.
	if err := s.SyncSchedules(ctx, "sweeper", []registry.Schedule{hourly}); err != nil {
		t.Fatal(err)
	}
	again, err := s.Schedules(ctx, "sweeper")
	if err != nil || len(again) != 1 || again[0].Pattern != "@hourly" || !again[0].Since.Equal(activeHourly.Since) {
		t.Fatalf("after dropping one: %+v, %v (before %+v)", again, err, active)
	}
	if err := s.SyncSchedules(ctx, "sweeper", nil); err != nil {
		t.Fatal(err)
	}
	if none, err := s.Schedules(ctx, "sweeper"); err != nil || len(none) != 0 {
		t.Fatalf("after removing all: %+v, %v", none, err)
	}
	if err := s.SyncSchedules(ctx, "sweeper", []registry.Schedule{{Cron: "every minute"}}); err == nil {
		t.Error("a bad line was accepted")
	}
}

// TestScheduleFiresIntoTheWorkQueue: nats-server fires the schedule into
// yard.ticks.<name>, and YARD_ASYNC takes it in as yard.async.<name>,
// marked with the schedule's subject and its next run.
func TestScheduleFiresIntoTheWorkQueue(t *testing.T) {
	s, js := openJS(t, invocation.Config{})
	ctx := context.Background()
	if err := s.SyncSchedules(ctx, "ticker", []registry.Schedule{{Cron: "@every 1s", Input: json.RawMessage(`{"n":1}`)}}); err != nil {
		t.Fatal(err)
	}
	subject, _ := wire.AsyncSubject("ticker")
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamAsync, jetstream.ConsumerConfig{
		Durable: "fn-ticker", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		n++
		h := m.Headers()
		if string(m.Data()) != `{"n":1}` || h.Get(invocation.HeaderScheduler) == "" || h.Get(invocation.HeaderScheduleNext) == "" {
			t.Errorf("tick %d: %q %v", n, m.Data(), h)
		}
		_ = m.Ack()
	}
	if n != 2 {
		t.Fatalf("got %d ticks in 5s of an @every 1s schedule, want 2", n)
	}
}

// TestBacklogBound: once the work queue holds MaxBytes, Submit refuses new
// work with ErrBacklogFull and stores nothing.
func TestBacklogBound(t *testing.T) {
	s, js := openJS(t, invocation.Config{MaxBytes: 4096})
	ctx := context.Background()
	body := make([]byte, 512)
	for k := range body {
		body[k] = 'a'
	}
	body[0], body[len(body)-1] = '"', '"'
	var full error
	for deadline := time.Now().Add(10 * time.Second); full == nil && time.Now().Before(deadline); {
		_, _, full = s.Submit(ctx, invocation.Submission{Function: "slow", Body: body})
	}
	if !errors.Is(full, invocation.ErrBacklogFull) {
		t.Fatalf("Submit never refused: %v", full)
	}
	st, _ := js.Stream(ctx, wire.StreamAsync)
	before := st.CachedInfo().State.Msgs
	if _, _, err := s.Submit(ctx, invocation.Submission{Function: "slow", Body: body}); !errors.Is(err, invocation.ErrBacklogFull) {
		t.Fatalf("second Submit: %v", err)
	}
	info, _ := st.Info(ctx)
	if info.State.Msgs != before {
		t.Errorf("a refused Submit stored a message: %d -> %d", before, info.State.Msgs)
	}
}

// TestOpenUpgradesAnOldWorkQueue: a YARD_ASYNC made before schedules gets
// the ticks source, keeping its limits and messages.
func TestOpenUpgradesAnOldWorkQueue(t *testing.T) {
	js, _ := jetstream.New(natstest.Connect(t, natstest.Run(t)))
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: wire.StreamAsync, Subjects: []string{wire.AsyncPrefix + ">"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, MaxBytes: 1 << 20, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, wire.AsyncPrefix+"old", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	if len(info.Config.Sources) != 1 || info.Config.Sources[0].Name != wire.StreamSchedules ||
		info.Config.Discard != jetstream.DiscardNew || info.Config.MaxBytes != 1<<20 || info.State.Msgs != 1 {
		t.Fatalf("after Open: %+v, %d messages", info.Config, info.State.Msgs)
	}
	if err := s.SyncSchedules(ctx, "old", []registry.Schedule{{Cron: "@daily"}}); err != nil {
		t.Fatal(err)
	}
}

// TestNoRollupIntoTheWorkQueue: a publish with Nats-Rollup cannot purge
// queued work (the scheduler, which needs roll-ups, has its own stream).
func TestNoRollupIntoTheWorkQueue(t *testing.T) {
	s, js := openJS(t, invocation.Config{})
	ctx := context.Background()
	for range 3 {
		if _, _, err := s.Submit(ctx, invocation.Submission{Function: "greet", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, rollup := range []string{"all", "sub"} {
		msg := &nats.Msg{Subject: wire.AsyncPrefix + "greet", Data: []byte(`{}`), Header: nats.Header{"Nats-Rollup": {rollup}}}
		if _, err := js.PublishMsg(ctx, msg); err == nil {
			t.Errorf("Nats-Rollup: %s was accepted", rollup)
		}
	}
	st, _ := js.Stream(ctx, wire.StreamAsync)
	if info, _ := st.Info(ctx); info.State.Msgs != 3 {
		t.Fatalf("%d messages queued, want 3", info.State.Msgs)
	}
}

// TestSyncReplacesAScheduleWithAnotherTarget: a schedule message written
// with another target (an earlier layout) is rewritten, not kept.
func TestSyncReplacesAScheduleWithAnotherTarget(t *testing.T) {
	s, js := openJS(t, invocation.Config{})
	ctx := context.Background()
	sc := registry.Schedule{Cron: "@hourly", Input: json.RawMessage(`{}`)}
	subj, _ := wire.SchedulesSubject("old", sc.ID())
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(`{}`), Header: nats.Header{
		invocation.HeaderSchedule: {"@hourly"}, invocation.HeaderScheduleTarget: {"yard.ticks.old"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncSchedules(ctx, "old", []registry.Schedule{sc}); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, wire.StreamSchedules)
	m, err := st.GetLastMsgForSubject(ctx, subj)
	want, _ := wire.TicksSubject("old", sc.ID())
	if err != nil || m.Header.Get(invocation.HeaderScheduleTarget) != want {
		t.Fatalf("schedule after sync: %v, %v", m, err)
	}
	if active, _ := s.Schedules(ctx, "old"); len(active) != 1 {
		t.Fatalf("%d schedules, want 1", len(active))
	}
}
