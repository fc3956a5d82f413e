package fn_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func TestInvokeFromAHandler(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx := context.Background()
	var seenID atomic.Value
	var seenDeadline atomic.Value
	startFn(t, nc, fn.Config{Name: "double"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		seenID.Store(fn.RequestID(ctx))
		d, _ := ctx.Deadline()
		seenDeadline.Store(d)
		if i.N == 404 {
			return out{}, fn.NotFound("no %d", i.N)
		}
		return out{N: 2 * i.N}, nil
	}))
	startFn(t, nc, fn.Config{Name: "front", Calls: []string{"double"}}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		return fn.Invoke[out](ctx, "double", in{N: i.N})
	}, fn.WithTimeout(3*time.Second)))

	cctx, cancel := context.WithTimeout(fn.WithConn(ctx, nc), 5*time.Second)
	defer cancel()
	before := time.Now()
	got, err := fn.Invoke[out](cctx, "front", in{N: 21})
	if err != nil || got.N != 42 {
		t.Fatalf("got %+v, %v", got, err)
	}
	// The front's 3s timeout, not the caller's 5s, bounds the inner call.
	if d := seenDeadline.Load().(time.Time); d.After(before.Add(3*time.Second+time.Second)) || d.Before(before) {
		t.Errorf("inner deadline %s not within the front's 3s", d)
	}
	if id, _ := seenID.Load().(string); id == "" {
		t.Error("no request id reached the inner call")
	}
	// Error codes survive the hop.
	_, err = fn.Invoke[out](cctx, "front", in{N: 404})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Fatalf("not found through two hops: %v", err)
	}
	if _, err := fn.Invoke[out](context.Background(), "double", in{}); !errors.Is(err, fn.ErrNoConn) {
		t.Fatalf("without a connection: %v", err)
	}
}

func TestInvokeRetriesUntilAnInstanceServes(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx := fn.WithConn(context.Background(), nc)
	// Nothing runs: the call keeps trying until its deadline, then says so.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := fn.Invoke[out](cctx, "late", in{N: 1})
	cancel()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("no instance: %v", err)
	}
	// An instance that comes up while the caller waits gets the call.
	go func() {
		time.Sleep(100 * time.Millisecond)
		inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "late"}, fn.Handle(double))
		if err == nil {
			t.Cleanup(func() { _ = inst.Stop(context.Background()) })
		}
	}()
	cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if got, err := fn.Invoke[out](cctx, "late", in{N: 4}); err != nil || got.N != 8 {
		t.Fatalf("late instance: %+v, %v", got, err)
	}
}

// TestInvokeNotDeployed: when the agents answer that a function is not
// deployed, the call fails at once instead of waiting for its deadline.
func TestInvokeNotDeployed(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	// The agents' answer for a function they do not know.
	e := wire.Errorf(wire.CodeNotFound, `function "ghost" is not deployed`)
	body, _ := json.Marshal(e)
	sub, err := nc.Subscribe("yard.activate.ghost", func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: body, Header: e.Headers()})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), nc), time.Minute)
	defer cancel()
	_, err = fn.Invoke[out](ctx, "ghost", in{N: 1})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable || !strings.Contains(we.Message, "not deployed") || ctx.Err() != nil || !fn.NotDelivered(err) {
		t.Fatalf("not deployed: %v (ctx %v, not delivered %v)", err, ctx.Err(), fn.NotDelivered(err))
	}
}

func TestCircuitBreaker(t *testing.T) {
	fn.BreakerOpenFor = 200 * time.Millisecond
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	var down atomic.Bool
	var calls atomic.Int64
	down.Store(true)
	inst := startFn(t, nc, fn.Config{Name: "flaky-payments"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		calls.Add(1)
		if down.Load() {
			return out{}, fn.Errorf(fn.CodeUnavailable, "processor down")
		}
		if i.N < 0 {
			return out{}, fn.Errorf(fn.CodeInvalidArgument, "negative")
		}
		return out{N: i.N}, nil
	}))
	ctx := fn.WithConn(context.Background(), nc)
	for range fn.BreakerFailures {
		_, err := fn.Invoke[out](ctx, "flaky-payments", in{N: 1})
		if err == nil {
			t.Fatal("succeeded while down")
		}
		if fn.NotDelivered(err) {
			t.Fatalf("the handler's own error counts as delivered: %v", err)
		}
	}
	if st := fn.BreakerState("flaky-payments"); st != "open" {
		t.Fatalf("after %d failures the breaker is %s", fn.BreakerFailures, st)
	}
	// Every instance of this process reports it in its stats (nats micro stats).
	if st := inst.Stats().Breakers["flaky-payments"]; st != "open" {
		t.Fatalf("stats show the breaker %q", st)
	}
	before := calls.Load()
	_, err := fn.Invoke[out](ctx, "flaky-payments", in{N: 1})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable || calls.Load() != before || !fn.NotDelivered(err) {
		t.Fatalf("open breaker must fail fast without calling: %v (calls %d -> %d)", err, before, calls.Load())
	}
	down.Store(false)
	natstest.WaitFor(t, 5*time.Second, "a probe to close the breaker", func() bool {
		_, err := fn.Invoke[out](ctx, "flaky-payments", in{N: 1})
		return err == nil && fn.BreakerState("flaky-payments") == "closed"
	})
	// A target's client errors say it is healthy: they never open it.
	for range 2 * fn.BreakerFailures {
		_, _ = fn.Invoke[out](ctx, "flaky-payments", in{N: -1})
	}
	if st := fn.BreakerState("flaky-payments"); st != "closed" {
		t.Fatalf("client errors opened the breaker: %s", st)
	}
}
