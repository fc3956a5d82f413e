package invocation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
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
