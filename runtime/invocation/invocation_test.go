package invocation_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func open(t *testing.T) *invocation.Store {
	t.Helper()
	s, _ := openJS(t, invocation.Config{})
	return s
}

// openJS opens a store with cfg on a fresh server, and returns the
// JetStream context it uses too.
func openJS(t *testing.T, cfg invocation.Config) (*invocation.Store, jetstream.JetStream) {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Run(t)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := invocation.Open(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

// TestQueued: with no instance running, an accepted invocation is visible
// as queued, whichever way it was submitted.
func TestQueued(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for _, key := range []string{"", "key-1"} {
		rec, created, err := s.Submit(ctx, invocation.Submission{Function: "idle", Body: []byte(`{"a":1}`), IdempotencyKey: key, RequestID: "r1"})
		if err != nil || !created {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, rec.ID)
		if err != nil || got.Status != invocation.Queued || got.Function != "idle" || got.RequestID != "r1" || got.CreatedAt.IsZero() {
			t.Fatalf("key %q: Get = %+v, %v", key, got, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		last, err := s.Wait(wctx, rec.ID)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || last == nil || last.Status != invocation.Queued {
			t.Fatalf("Wait = %+v, %v", last, err)
		}
	}
	for _, id := range []string{"nothing", "abc-1", "abc-999", "a.b", ""} {
		if _, err := s.Get(ctx, id); !errors.Is(err, invocation.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if _, _, err := s.Submit(ctx, invocation.Submission{Function: "Bad.Name", Body: []byte(`{}`)}); err == nil {
		t.Error("submitted to an invalid name")
	}
}

func TestIDForKey(t *testing.T) {
	a, b := invocation.IDForKey("f", "k"), invocation.IDForKey("g", "k")
	if a != invocation.IDForKey("f", "k") || a == b || len(a) != 31 {
		t.Errorf("ids %q %q", a, b)
	}
	for _, bad := range []string{"", "a b", "ü", string(make([]byte, 256))} {
		if invocation.ValidateKey(bad) == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestDelay(t *testing.T) {
	b := []time.Duration{time.Second, 5 * time.Second}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 9: 5 * time.Second} {
		if got := invocation.Delay(b, attempt); got != want {
			t.Errorf("Delay(%d) = %s, want %s", attempt, got, want)
		}
	}
	if invocation.Delay(nil, 3) != 0 {
		t.Error("no backoff must mean no delay")
	}
}

// TestLegacyRecords: records an earlier release keyed by id alone are
// still found by id, and still hold their idempotency key.
func TestLegacyRecords(t *testing.T) {
	s, js := openJS(t, invocation.Config{})
	ctx := context.Background()
	id := invocation.IDForKey("greet", "order-1")
	old := invocation.Record{ID: id, Function: "greet", Status: invocation.Succeeded, BodyHash: invocation.BodyHash([]byte(`{}`)), Seq: 9}
	data, _ := json.Marshal(old)
	if _, err := js.Publish(ctx, "$KV."+wire.BucketResults+"."+id, data); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, id); err != nil || rec.Status != invocation.Succeeded {
		t.Fatalf("legacy record: %+v %v", rec, err)
	}
	rec, created, err := s.Submit(ctx, invocation.Submission{Function: "greet", Body: []byte(`{}`), IdempotencyKey: "order-1"})
	if err != nil || created || rec.Status != invocation.Succeeded {
		t.Fatalf("resubmit over a legacy record: %+v created=%v %v", rec, created, err)
	}
}

// TestDeadLetterFunctionFromSubject: a dead letter belongs to the function
// whose subject it is on, whatever its Yard-Function header claims.
func TestDeadLetterFunctionFromSubject(t *testing.T) {
	s, js := openJS(t, invocation.Config{})
	ctx := context.Background()
	msg := &nats.Msg{Subject: "yard.dlq.orders", Data: []byte(`{}`), Header: nats.Header{
		invocation.HeaderFunction: {"payments"}, wire.HeaderInvocationID: {"forged"},
	}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	letters, err := s.DeadLetters(ctx, "orders", 10)
	if err != nil || len(letters) != 1 || letters[0].Function != "orders" {
		t.Fatalf("%+v %v", letters, err)
	}
	if _, err := s.Replay(ctx, "forged"); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, wire.StreamAsync)
	if _, err := st.GetLastMsgForSubject(ctx, "yard.async.payments"); err == nil {
		t.Fatal("a forged dead letter of orders was replayed into payments")
	}
	if _, err := st.GetLastMsgForSubject(ctx, "yard.async.orders"); err != nil {
		t.Fatalf("replayed into orders: %v", err)
	}
}

// TestOwnedIDs: an invocation submitted for an owner has an id that only
// that owner reads, with or without an idempotency key; owners never share
// a key's invocation; ids without an owner are anyone's.
func TestOwnedIDs(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	body := []byte(`{"a":1}`)
	for _, key := range []string{"", "k-1"} {
		a, _, err := s.Submit(ctx, invocation.Submission{Function: "idle", Body: body, IdempotencyKey: key, Owner: "key:alice"})
		if err != nil {
			t.Fatal(err)
		}
		if invocation.ValidateID(a.ID) != nil || !invocation.OwnedBy(a.ID, "key:alice") ||
			invocation.OwnedBy(a.ID, "key:bob") || invocation.OwnedBy(a.ID, "") {
			t.Fatalf("key %q: id %q", key, a.ID)
		}
		if got, err := s.Get(ctx, a.ID); err != nil || got.ID != a.ID {
			t.Fatalf("key %q: Get = %+v, %v", key, got, err)
		}
		b, created, err := s.Submit(ctx, invocation.Submission{Function: "idle", Body: body, IdempotencyKey: key, Owner: "key:bob"})
		if err != nil || !created || b.ID == a.ID || !invocation.OwnedBy(b.ID, "key:bob") {
			t.Fatalf("key %q: bob's %+v, %v, %v", key, b, created, err)
		}
		anon, _, err := s.Submit(ctx, invocation.Submission{Function: "idle", Body: body, IdempotencyKey: key})
		if err != nil || !invocation.OwnedBy(anon.ID, "") || !invocation.OwnedBy(anon.ID, "key:alice") {
			t.Fatalf("key %q: anonymous %+v, %v", key, anon, err)
		}
	}
	// Ids chosen elsewhere (plain NATS publishers) that merely start with
	// 'o' are nobody's.
	for _, id := range []string{"o", "order-1", "oXXXXXXXXXXXXXXXXXXXXX", "seq-12"} {
		if !invocation.OwnedBy(id, "") {
			t.Errorf("%q is taken as owned", id)
		}
	}
}
