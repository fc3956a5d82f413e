package fn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

func TestWithReason(t *testing.T) {
	shared := fn.Errorf(fn.CodeConflict, "no tea left")
	err := fn.WithReason(shared, "out_of_stock")
	var fe *fn.Error
	if !errors.As(err, &fe) || fe.Code != fn.CodeConflict || fe.Message != "no tea left" || fn.ReasonOf(err) != "out_of_stock" {
		t.Fatalf("WithReason = %#v", err)
	}
	if fn.ReasonOf(shared) != "" {
		t.Fatal("WithReason changed the error it was given")
	}
	if got := fn.ReasonOf(fmt.Errorf("reserving: %w", err)); got != "out_of_stock" {
		t.Fatalf("ReasonOf a wrapped error = %q", got)
	}
	// An invalid reason is dropped; an error without a code gets none.
	if got := fn.ReasonOf(fn.WithReason(shared, "Out Of Stock")); got != "" {
		t.Fatalf("invalid reason kept: %q", got)
	}
	plain := errors.New("disk full")
	if got := fn.WithReason(plain, "disk_full"); got != plain || fn.ReasonOf(got) != "" {
		t.Fatalf("WithReason of a plain error = %v", got)
	}
	if fn.WithReason(nil, "x") != nil || fn.ReasonOf(nil) != "" {
		t.Fatal("nil error")
	}
}

type charge struct {
	Card string `json:"card" jsonschema:"minLength=1"`
}

type charged struct {
	Status string `json:"status"`
}

// chargeFn declines card 2 with a reason, for synchronous and
// asynchronous callers; card 3 is marked permanent before it gets its
// reason.
func chargeFn(ctx context.Context, in charge) (charged, error) {
	switch in.Card {
	case "2":
		return charged{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "card %s declined", in.Card), "card_declined")
	case "3":
		return charged{}, fn.WithReason(fn.Permanent(fn.Errorf(fn.CodeUnavailable, "processor refused")), "processor_refused")
	}
	return charged{Status: "approved"}, nil
}

// TestInvokeReason: a handler's reason reaches fn.Invoke callers, also
// through a function that passes the error on, and async records and the
// dead-letter queue keep it.
func TestInvokeReason(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	start := func(cfg fn.Config, h *fn.Handler) {
		inst, err := fn.Start(context.Background(), nc, cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	}
	start(fn.Config{Name: "charge"}, fn.Handle(chargeFn, fn.WithRetry(3, 5*time.Millisecond)))
	start(fn.Config{Name: "checkout", Calls: []string{"charge"}}, fn.Handle(func(ctx context.Context, in charge) (charged, error) {
		return fn.Invoke[charged](ctx, "charge", in)
	}))
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), nc), 20*time.Second)
	defer cancel()

	for _, target := range []string{"charge", "checkout"} {
		_, err := fn.Invoke[charged](ctx, target, charge{Card: "2"})
		var fe *fn.Error
		if !errors.As(err, &fe) || fe.Code != fn.CodeConflict || fn.ReasonOf(err) != "card_declined" || fe.Message != "card 2 declined" {
			t.Fatalf("%s: %v", target, err)
		}
		if got, err := fn.Invoke[charged](ctx, target, charge{Card: "1"}); err != nil || got.Status != "approved" {
			t.Fatalf("%s approves: %+v, %v", target, got, err)
		}
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for body, reason := range map[string]string{`{"card":"2"}`: "card_declined", `{"card":"3"}`: "processor_refused"} {
		rec, _, err := store.Submit(ctx, invocation.Submission{Function: "charge", Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.Wait(ctx, rec.ID)
		if err != nil || got.Status != invocation.Dead || got.Attempts != 1 || got.Error == nil || got.Error.Reason != reason {
			t.Fatalf("async %s: %+v, %v", body, got, err)
		}
	}
	letters, err := store.DeadLetters(ctx, "charge", 0)
	if err != nil || len(letters) != 2 {
		t.Fatalf("dead letters %+v, %v", letters, err)
	}
	reasons := map[string]bool{}
	for _, l := range letters {
		if l.Error != nil {
			reasons[l.Error.Reason] = true
		}
	}
	if !reasons["card_declined"] || !reasons["processor_refused"] {
		t.Fatalf("dead letters lost their reasons: %+v", letters)
	}
}
