package fn_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
)

type job struct {
	State string `json:"state"`
	fn.Lease
}

// leaseBucket opens a fresh bucket on an embedded server.
func leaseBucket(t *testing.T) (context.Context, *fn.KV) {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), nc), 30*time.Second)
	t.Cleanup(cancel)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leases", History: 1}); err != nil {
		t.Fatal(err)
	}
	kv, err := fn.OpenKV(ctx, "leases")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, kv
}

func TestLease(t *testing.T) {
	ctx, kv := leaseBucket(t)
	start := func(v *job, exists bool) error {
		if v.State == "done" {
			return errors.New("done already")
		}
		v.State = "running"
		return nil
	}
	first, err := fn.TakeLease(ctx, kv, "j", time.Hour, start)
	if err != nil || first.Token <= 0 || first.State != "running" || !first.Live(time.Now()) {
		t.Fatalf("first take: %+v, %v", first, err)
	}
	// Held: nobody else takes it, and change is not asked.
	if got, err := fn.TakeLease(ctx, kv, "j", time.Hour, func(v *job, _ bool) error {
		t.Error("change called while the lease is held")
		return nil
	}); !errors.Is(err, fn.ErrLeaseHeld) || got.Token != first.Token {
		t.Fatalf("take while held: %+v, %v", got, err)
	}
	// The owner hands it back; the next owner gets the next token, and the
	// former owner can no longer write.
	if _, err := fn.UpdateLeased(ctx, kv, "j", first.Token, func(v *job) error {
		v.State = "paused"
		v.End()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	second, err := fn.TakeLease(ctx, kv, "j", time.Hour, start)
	if err != nil || second.Token <= first.Token {
		t.Fatalf("second take: %+v, %v", second, err)
	}
	if _, err := fn.UpdateLeased(ctx, kv, "j", first.Token, func(v *job) error { return nil }); !errors.Is(err, fn.ErrLeaseLost) {
		t.Fatalf("former owner wrote: %v", err)
	}
	if _, err := fn.UpdateLeased(ctx, kv, "missing", 1, func(v *job) error { return nil }); !errors.Is(err, fn.ErrLeaseLost) {
		t.Fatalf("missing key: %v", err)
	}
	// An expired lease may be taken over without being ended, and change
	// may refuse a take.
	if _, err := fn.UpdateLeased(ctx, kv, "j", second.Token, func(v *job) error {
		v.State, v.Until = "done", time.Now().Add(-time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := fn.TakeLease(ctx, kv, "j", time.Hour, start); err == nil || got.State != "done" || got.Token != second.Token {
		t.Fatalf("refused take: %+v, %v", got, err)
	}
	third, err := fn.TakeLease(ctx, kv, "j", time.Millisecond, func(v *job, _ bool) error { return nil })
	if err != nil || third.Token <= second.Token {
		t.Fatalf("take over an expired lease: %+v, %v", third, err)
	}
	// A value deleted and taken again gets a token beyond every earlier
	// one: a former owner cannot write over the new one.
	if err := kv.Delete(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	fourth, err := fn.TakeLease(ctx, kv, "j", time.Hour, start)
	if err != nil || fourth.Token <= third.Token {
		t.Fatalf("take after a delete: %+v, %v (the token before was %d)", fourth, err, third.Token)
	}
	if _, err := fn.UpdateLeased(ctx, kv, "j", third.Token, func(v *job) error { return nil }); !errors.Is(err, fn.ErrLeaseLost) {
		t.Fatalf("an owner from before the delete wrote: %v", err)
	}
}

// TestLeaseOneOwner: of many workers taking one lease at once, exactly
// one gets it.
func TestLeaseOneOwner(t *testing.T) {
	ctx, kv := leaseBucket(t)
	var owners, held atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := fn.TakeLease(ctx, kv, "one", time.Hour, func(v *job, _ bool) error { return nil })
			switch {
			case err == nil:
				owners.Add(1)
			case errors.Is(err, fn.ErrLeaseHeld):
				held.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if owners.Load() != 1 || held.Load() != 19 {
		t.Fatalf("%d owners, %d refused; want 1 and 19", owners.Load(), held.Load())
	}
}
