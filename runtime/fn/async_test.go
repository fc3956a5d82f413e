package fn_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// openStore opens the invocation store over nc, and returns the JetStream
// context it uses too.
func openStore(t *testing.T, nc *nats.Conn) (*invocation.Store, jetstream.JetStream) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := invocation.Open(context.Background(), js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func submit(t *testing.T, s *invocation.Store, name, body string) *invocation.Record {
	t.Helper()
	rec, created, err := s.Submit(context.Background(), invocation.Submission{Function: name, Body: []byte(body)})
	if err != nil || !created || rec.Status != invocation.Queued {
		t.Fatalf("submit: %+v, %v, %v", rec, created, err)
	}
	return rec
}

func wait(t *testing.T, s *invocation.Store, id string) *invocation.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := s.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v (last %+v)", id, err, rec)
	}
	return rec
}

func TestAsyncSucceeds(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	s, _ := openStore(t, h.NC)
	events, err := h.NC.SubscribeSync("yard.results.double.*")
	if err != nil {
		t.Fatal(err)
	}
	rec := submit(t, s, "double", `{"n":21}`)
	got := wait(t, s, rec.ID)
	if got.Status != invocation.Succeeded || string(got.Result) != `{"n":42}` || got.Attempts != 1 ||
		got.StartedAt.IsZero() || got.FinishedAt.Before(got.StartedAt) {
		t.Fatalf("record %+v", got)
	}
	msg, err := events.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ev invocation.Record
	if err := json.Unmarshal(msg.Data, &ev); err != nil || msg.Subject != "yard.results.double."+rec.ID || ev.Status != invocation.Succeeded {
		t.Fatalf("event %s %s", msg.Subject, msg.Data)
	}
}

func TestAsyncRetriesThenSucceeds(t *testing.T) {
	var calls atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "flaky"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		if calls.Add(1) < 3 {
			return out{}, errors.New("transient")
		}
		return out{N: i.N}, nil
	}, fn.WithRetry(5, 10*time.Millisecond, 20*time.Millisecond)))
	s, _ := openStore(t, h.NC)
	rec := wait(t, s, submit(t, s, "flaky", `{"n":1}`).ID)
	if rec.Status != invocation.Succeeded || rec.Attempts != 3 || calls.Load() != 3 {
		t.Fatalf("record %+v after %d calls", rec, calls.Load())
	}
}

func TestAsyncDeadLettersAndReplay(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	var calls atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "pay"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		calls.Add(1)
		if broken.Load() {
			if i.N == 1 {
				return out{}, fn.Permanent(errors.New("card declined"))
			}
			return out{}, fn.Errorf(fn.CodeUnavailable, "processor down")
		}
		return out{N: i.N}, nil
	}, fn.WithRetry(3, 5*time.Millisecond)))
	s, _ := openStore(t, h.NC)

	permanent := wait(t, s, submit(t, s, "pay", `{"n":1}`).ID)
	if permanent.Status != invocation.Dead || permanent.Attempts != 1 || permanent.Error.Code != wire.CodeInternal || permanent.DLQSeq == 0 {
		t.Fatalf("permanent failure: %+v", permanent)
	}
	exhausted := wait(t, s, submit(t, s, "pay", `{"n":2}`).ID)
	if exhausted.Status != invocation.Dead || exhausted.Attempts != 3 || exhausted.Error.Code != wire.CodeUnavailable {
		t.Fatalf("exhausted: %+v", exhausted)
	}
	letters, err := s.DeadLetters(context.Background(), "pay", 0)
	if err != nil || len(letters) != 2 || letters[1].ID != exhausted.ID || string(letters[1].Payload) != `{"n":2}` ||
		letters[1].Attempts != 3 || letters[1].Error.Message != "processor down" {
		t.Fatalf("dead letters %+v, %v", letters, err)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("%d calls, want 1 + 3", n)
	}

	broken.Store(false)
	if _, err := s.Replay(context.Background(), exhausted.ID); err != nil {
		t.Fatal(err)
	}
	if rec := wait(t, s, exhausted.ID); rec.Status != invocation.Succeeded || string(rec.Result) != `{"n":2}` {
		t.Fatalf("replayed: %+v", rec)
	}
	if n, err := s.ReplayAll(context.Background(), "pay"); err != nil || n != 1 {
		t.Fatalf("replay all: %d, %v", n, err)
	}
	if rec := wait(t, s, permanent.ID); rec.Status != invocation.Succeeded {
		t.Fatalf("replayed: %+v", rec)
	}
	if letters, _ := s.DeadLetters(context.Background(), "pay", 0); len(letters) != 0 {
		t.Fatalf("DLQ not empty after replay: %+v", letters)
	}
	if _, err := s.Replay(context.Background(), "nosuchid"); !errors.Is(err, invocation.ErrNotFound) {
		t.Fatalf("replay unknown: %v", err)
	}
}

// TestAsyncPlainPublish: work published straight to the stream by any NATS
// client runs too, and a payload that fails validation is dead-lettered as
// invalid_argument rather than dropped.
func TestAsyncPlainPublish(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	s, js := openStore(t, h.NC)
	ctx := context.Background()
	if _, err := js.Publish(ctx, "yard.async.double", []byte(`{"n":5}`), jetstream.WithMsgID("my-own-id")); err != nil {
		t.Fatal(err)
	}
	// No record exists before the instance takes the message: poll.
	natstest.WaitFor(t, 10*time.Second, "the plain publish to run", func() bool {
		rec, err := s.Get(ctx, "my-own-id")
		return err == nil && rec.Status == invocation.Succeeded && string(rec.Result) == `{"n":10}`
	})
	// An id that is no valid record key is replaced by the sequence.
	ack, err := js.Publish(ctx, "yard.async.double", []byte(`{"n":6}`), jetstream.WithMsgID("order:42"))
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the oddly named publish to run", func() bool {
		rec, err := s.Get(ctx, "seq-"+itoa(ack.Sequence))
		return err == nil && rec.Status == invocation.Succeeded
	})
	ack, err = js.Publish(ctx, "yard.async.double", []byte(`{"n":"five"}`))
	if err != nil {
		t.Fatal(err)
	}
	id := "seq-" + itoa(ack.Sequence)
	natstest.WaitFor(t, 10*time.Second, "the bad payload to be dead-lettered", func() bool {
		rec, err := s.Get(ctx, id)
		return err == nil && rec.Status == invocation.Dead
	})
	rec, _ := s.Get(ctx, id)
	if rec.Error.Code != wire.CodeInvalidArgument || rec.Attempts != 1 || rec.Error.Errors[0].Pointer != "/n" {
		t.Fatalf("%+v", rec)
	}
}

func TestAsyncIdempotency(t *testing.T) {
	var calls atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "once"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		calls.Add(1)
		return out{N: i.N}, nil
	}))
	s, _ := openStore(t, h.NC)
	ctx := context.Background()
	sub := invocation.Submission{Function: "once", Body: []byte(`{"n":1}`), IdempotencyKey: "order-42"}
	first, created, err := s.Submit(ctx, sub)
	if err != nil || !created {
		t.Fatal(err)
	}
	wait(t, s, first.ID)
	again, created, err := s.Submit(ctx, sub)
	if err != nil || created || again.ID != first.ID || again.Status != invocation.Succeeded {
		t.Fatalf("resubmit: %+v, %v, %v", again, created, err)
	}
	sub.Body = []byte(`{"n":2}`)
	if _, _, err := s.Submit(ctx, sub); !errors.Is(err, invocation.ErrConflict) {
		t.Fatalf("other body: %v", err)
	}
	// Give a duplicate execution every chance to show up, then count.
	wait(t, s, submit(t, s, "once", `{"n":3}`).ID)
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d executions, want 2", n)
	}
	if _, _, err := s.Submit(ctx, invocation.Submission{Function: "once", Body: []byte(`{}`), IdempotencyKey: "has space"}); err == nil {
		t.Fatal("accepted a key with a space")
	}
}

// TestAsyncCallbackQueued: an instance does not post callbacks itself; it
// stores them in YARD_CALLBACKS, with the outcome, for the platform to
// deliver, before it settles the invocation.
func TestAsyncCallbackQueued(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	s, js := openStore(t, h.NC)
	rec, _, err := s.Submit(context.Background(), invocation.Submission{Function: "double", Body: []byte(`{"n":4}`), CallbackURL: "https://example.com/done?token=x"})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, s, rec.ID)
	st, err := js.Stream(context.Background(), wire.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	// The outcome is recorded before the callback is queued (the ack
	// comes after both), so the callback may trail the record a little.
	var m *jetstream.RawStreamMsg
	natstest.WaitFor(t, 10*time.Second, "the callback to be queued", func() bool {
		m, err = st.GetLastMsgForSubject(context.Background(), "yard.callbacks.double")
		return err == nil
	})
	var got invocation.Record
	if err := json.Unmarshal(m.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || got.Status != invocation.Succeeded || string(got.Result) != `{"n":8}` ||
		m.Header.Get(wire.HeaderCallbackURL) != "https://example.com/done?token=x" || m.Header.Get(wire.HeaderInvocationID) != rec.ID {
		t.Fatalf("queued callback %+v, headers %v", got, m.Header)
	}
}

// TestCallbackOfSettledRedelivery: an instance that stored an outcome and
// died before storing its callback and acking leaves a redelivery; the
// next instance does not run it again but stores the callback.
func TestCallbackOfSettledRedelivery(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	ctx := context.Background()
	s, js := openStore(t, nc)
	p, err := provision.New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, &registry.Spec{Name: "double", Timeout: registry.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	rec, _, err := s.Submit(ctx, invocation.Submission{Function: "double", Body: []byte(`{"n":1}`), CallbackURL: "https://example.com/hook"})
	if err != nil {
		t.Fatal(err)
	}
	// What the dead instance did: the first delivery, its outcome stored.
	cons, err := js.Consumer(ctx, wire.StreamAsync, wire.AsyncConsumer("double"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		_ = m.Nak()
	}
	done := &invocation.Record{ID: rec.ID, Function: "double", Status: invocation.Succeeded, Seq: rec.Seq, Attempts: 1, Result: []byte(`{"n":2}`)}
	if err := s.Put(ctx, done); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	startFn(t, nc, fn.Config{Name: "double"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		runs.Add(1)
		return out{N: 2 * i.N}, nil
	}))
	st, err := js.Stream(ctx, wire.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the callback to be stored", func() bool {
		m, err := st.GetLastMsgForSubject(ctx, "yard.callbacks.double")
		return err == nil && m.Header.Get(wire.HeaderInvocationID) == rec.ID
	})
	if n := runs.Load(); n != 0 {
		t.Fatalf("a settled invocation ran again (%d times)", n)
	}
}

// TestAsyncDrain: an instance stopped while an async handler runs finishes
// it and stores the outcome.
func TestAsyncDrain(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	started := make(chan struct{})
	release := make(chan struct{})
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "slow"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		close(started)
		<-release
		return out{N: 1}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	st, js := openStore(t, nc)
	rec := submit(t, st, "slow", `{"n":1}`)
	<-started
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- inst.Stop(ctx)
	}()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := wait(t, st, rec.ID); got.Status != invocation.Succeeded {
		t.Fatalf("%+v", got)
	}
	// Nothing is left in the work queue.
	info, err := js.Stream(context.Background(), wire.StreamAsync)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "the ack to remove the message", func() bool {
		si, err := info.Info(context.Background())
		return err == nil && si.State.Msgs == 0
	})
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
