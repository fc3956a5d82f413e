package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func invoke(t *testing.T, h *fntest.Harness, in Input) Output {
	t.Helper()
	out, err := fntest.Invoke[Output](t, h, in)
	if err != nil {
		t.Fatalf("%+v: %v", in, err)
	}
	return out
}

func available(t *testing.T, h *fntest.Harness, sku string) int {
	t.Helper()
	out := invoke(t, h, Input{Op: "get", Items: []Item{{SKU: sku}}})
	if len(out.Stock) != 1 || out.Stock[0].SKU != sku {
		t.Fatalf("get %s: %+v", sku, out)
	}
	return out.Stock[0].Available
}

func TestSeedAndGet(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	out := invoke(t, h, Input{Op: "get"})
	want := []Stock{{"COF-0001", 50}, {"EQP-0001", 20}, {"TEA-0001", 100}, {"TEA-0002", 0}}
	if fmt.Sprint(out.Stock) != fmt.Sprint(want) || out.Status != StatusOK {
		t.Fatalf("get all: %+v, want %v", out, want)
	}
	// The seed counts only until the stock is written.
	invoke(t, h, Input{Op: "restock", Items: []Item{{SKU: "TEA-0002", Quantity: 7}}})
	if n := available(t, h, "TEA-0002"); n != 7 {
		t.Fatalf("after restock: %d, want 7", n)
	}
}

func TestReserveCommitRelease(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	items := []Item{{SKU: "TEA-0001", Quantity: 2}, {SKU: "COF-0001", Quantity: 5}, {SKU: "TEA-0001", Quantity: 1}}
	out := invoke(t, h, Input{Op: "reserve", OrderID: "o-1", Items: items})
	if out.Status != StatusReserved || out.OrderID != "o-1" {
		t.Fatalf("reserve: %+v", out)
	}
	if a, b := available(t, h, "TEA-0001"), available(t, h, "COF-0001"); a != 97 || b != 45 {
		t.Fatalf("after reserve: %d %d, want 97 45", a, b)
	}
	// Idempotent: the same order takes nothing again.
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "o-1", Items: items}); out.Status != StatusReserved {
		t.Fatalf("second reserve: %+v", out)
	}
	if a := available(t, h, "TEA-0001"); a != 97 {
		t.Fatalf("after second reserve: %d, want 97", a)
	}
	if out := invoke(t, h, Input{Op: "commit", OrderID: "o-1"}); out.Status != StatusCommitted {
		t.Fatalf("commit: %+v", out)
	}
	if out := invoke(t, h, Input{Op: "commit", OrderID: "o-1"}); out.Status != StatusCommitted {
		t.Fatalf("commit again: %+v", out)
	}
	// A committed reservation is not given back.
	if out := invoke(t, h, Input{Op: "release", OrderID: "o-1"}); out.Status != StatusReleased {
		t.Fatalf("release committed: %+v", out)
	}
	if a := available(t, h, "TEA-0001"); a != 97 {
		t.Fatalf("after release of committed: %d, want 97", a)
	}

	// Release gives back exactly once, even when called concurrently.
	invoke(t, h, Input{Op: "reserve", OrderID: "o-2", Items: []Item{{SKU: "EQP-0001", Quantity: 4}}})
	if a := available(t, h, "EQP-0001"); a != 16 {
		t.Fatalf("after reserve o-2: %d", a)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := fntest.Invoke[Output](t, h, Input{Op: "release", OrderID: "o-2"}); err != nil || out.Status != StatusReleased {
				t.Errorf("release: %+v %v", out, err)
			}
		}()
	}
	wg.Wait()
	if a := available(t, h, "EQP-0001"); a != 20 {
		t.Fatalf("after releases: %d, want 20", a)
	}
	if _, err := fntest.Invoke[Output](t, h, Input{Op: "commit", OrderID: "o-2"}); !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonReleased {
		t.Fatalf("commit released: %v, want conflict, reservation_released", err)
	}
	// Unknown orders: release is a no-op, commit is not found.
	if out := invoke(t, h, Input{Op: "release", OrderID: "nope"}); out.Status != StatusReleased {
		t.Fatalf("release unknown: %+v", out)
	}
	if _, err := fntest.Invoke[Output](t, h, Input{Op: "commit", OrderID: "nope"}); !isCode(err, wire.CodeNotFound) {
		t.Fatalf("commit unknown: %v, want not_found", err)
	}
	// A released (not short) reservation may be held again: a retried order.
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "o-2", Items: []Item{{SKU: "EQP-0001", Quantity: 4}}}); out.Status != StatusReserved {
		t.Fatalf("re-reserve: %+v", out)
	}
	if a := available(t, h, "EQP-0001"); a != 16 {
		t.Fatalf("after re-reserve: %d, want 16", a)
	}
}

func TestInsufficientStockGivesBack(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	out := invoke(t, h, Input{Op: "reserve", OrderID: "short", Items: []Item{
		{SKU: "TEA-0001", Quantity: 3}, {SKU: "COF-0001", Quantity: 2}, {SKU: "TEA-0002", Quantity: 1}}})
	if out.Status != StatusInsufficientStock || out.SKU != "TEA-0002" {
		t.Fatalf("reserve: %+v, want insufficient_stock of TEA-0002", out)
	}
	if a, b := available(t, h, "TEA-0001"), available(t, h, "COF-0001"); a != 100 || b != 50 {
		t.Fatalf("stock not given back: %d %d", a, b)
	}
	// The outcome is remembered.
	out = invoke(t, h, Input{Op: "reserve", OrderID: "short", Items: []Item{{SKU: "TEA-0001", Quantity: 1}}})
	if out.Status != StatusInsufficientStock || out.SKU != "TEA-0002" {
		t.Fatalf("second reserve: %+v", out)
	}
}

func TestConcurrentReservesNeverOversell(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := fntest.Invoke[Output](t, h, Input{Op: "reserve", OrderID: fmt.Sprintf("c-%d", i),
				Items: []Item{{SKU: "COF-0001", Quantity: 1}}})
			if err != nil {
				t.Errorf("reserve %d: %v", i, err)
				return
			}
			for _, s := range out.Stock {
				if s.Available < 0 {
					t.Errorf("negative stock %+v", s)
				}
			}
			mu.Lock()
			counts[out.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[StatusReserved] != 50 || counts[StatusInsufficientStock] != n-50 {
		t.Fatalf("outcomes %v, want 50 reserved", counts)
	}
	if a := available(t, h, "COF-0001"); a != 0 {
		t.Fatalf("stock %d, want 0", a)
	}
}

// openBucket returns a context with the harness's connection and the
// function's bucket, to call the operations directly.
func openBucket(t *testing.T, h *fntest.Harness) (context.Context, *fn.KV) {
	t.Helper()
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), h.NC), 20*time.Second)
	t.Cleanup(cancel)
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, kv
}

func stockOf(t *testing.T, ctx context.Context, kv *fn.KV, sku string) stockRecord {
	t.Helper()
	s, _, err := fn.GetJSON[stockRecord](ctx, kv, stockKey(sku))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// setState writes a reservation's state as a step of release or commit
// does, before its holds are settled (a crash after it).
func setState(t *testing.T, ctx context.Context, kv *fn.KV, order, state string) reservation {
	t.Helper()
	r, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, _ bool) error {
		r.State, r.UpdatedAt = state, time.Now().UTC()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSweepReleasesExpired(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)

	invoke(t, h, Input{Op: "reserve", OrderID: "old", Items: []Item{{SKU: "EQP-0001", Quantity: 5}}})
	invoke(t, h, Input{Op: "reserve", OrderID: "paid", Items: []Item{{SKU: "EQP-0001", Quantity: 1}}})
	invoke(t, h, Input{Op: "commit", OrderID: "paid"})
	if n, held, err := sweep(ctx, kv, time.Now().Add(-time.Hour)); n != 0 || held != 1 || err != nil {
		t.Fatalf("early sweep: %d released, %d held, %v", n, held, err)
	}
	cutoff := time.Now()
	invoke(t, h, Input{Op: "reserve", OrderID: "fresh", Items: []Item{{SKU: "EQP-0001", Quantity: 2}}})
	// Only the reservations in flight hold anything.
	if s := stockOf(t, ctx, kv, "EQP-0001"); fmt.Sprint(s.Holds) != "map[fresh#1:2 old#1:5]" {
		t.Fatalf("holds %v, want fresh's and old's", s.Holds)
	}
	if n, held, err := sweep(ctx, kv, cutoff); n != 1 || held != 1 || err != nil {
		t.Fatalf("sweep: %d released, %d held, %v; want 1 and 1", n, held, err)
	}
	if a := available(t, h, "EQP-0001"); a != 20-1-2 {
		t.Fatalf("stock %d, want 17", a)
	}
	if n, _, err := sweep(ctx, kv, cutoff); n != 0 || err != nil {
		t.Fatalf("second sweep: %d %v", n, err)
	}
	if s := stockOf(t, ctx, kv, "EQP-0001"); fmt.Sprint(s.Holds) != "map[fresh#1:2]" {
		t.Fatalf("holds %v, want only fresh's", s.Holds)
	}
	// The scheduled operation sweeps with the TTL: nothing is that old.
	if out := invoke(t, h, Input{Op: "sweep"}); out.Released != 0 || out.Held != 1 || out.Status != StatusOK {
		t.Fatalf("sweep op: %+v", out)
	}
}

// Holds record what each order took; commit and release delete them, so
// the stock keys stay small.
func TestHoldsAreBounded(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	for i := range 30 {
		order := fmt.Sprintf("b-%d", i)
		invoke(t, h, Input{Op: "reserve", OrderID: order, Items: []Item{{SKU: "TEA-0001", Quantity: 1}, {SKU: "COF-0001", Quantity: 1}}})
		if i%2 == 0 {
			invoke(t, h, Input{Op: "commit", OrderID: order})
		} else {
			invoke(t, h, Input{Op: "release", OrderID: order})
		}
	}
	for _, sku := range []string{"TEA-0001", "COF-0001"} {
		if s := stockOf(t, ctx, kv, sku); len(s.Holds) != 0 {
			t.Errorf("%s holds %v after every order settled", sku, s.Holds)
		}
	}
	if a, c := available(t, h, "TEA-0001"), available(t, h, "COF-0001"); a != 85 || c != 35 {
		t.Errorf("stock %d %d, want 85 35", a, c)
	}
}

// A reserve interrupted after taking some items (a crash) is finished by
// repeating it, without taking anything twice; a newer attempt starts it
// over as a new generation, and an older one is refused.
func TestReserveRepeatableAfterCrash(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	invoke(t, h, Input{Op: "get"}) // seeds
	items := []Item{{SKU: "COF-0001", Quantity: 3}, {SKU: "TEA-0001", Quantity: 4}}
	crash := func(order string) {
		t.Helper()
		// The record says held and incomplete, one item is taken.
		if _, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, _ bool) error {
			*r = reservation{Items: items, State: stateHeld, Attempt: 7, Gen: 1, CreatedAt: time.Now().UTC()}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := take(ctx, kv, "COF-0001", order, 1, 3); err != nil {
				t.Fatal(err)
			}
		}
	}
	crash("crash")
	if a := available(t, h, "COF-0001"); a != 47 {
		t.Fatalf("taken twice: %d, want 47", a)
	}
	if _, err := fntest.Invoke[Output](t, h, Input{Op: "reserve", OrderID: "crash", Attempt: 6, Items: items}); !isCode(err, wire.CodeConflict) {
		t.Fatalf("older attempt: %v, want conflict", err)
	}
	// The same attempt again finishes it.
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "crash", Attempt: 7, Items: items}); out.Status != StatusReserved {
		t.Fatalf("repeat: %+v", out)
	}
	if a, c := available(t, h, "COF-0001"), available(t, h, "TEA-0001"); a != 47 || c != 96 {
		t.Fatalf("stock %d %d, want 47 96", a, c)
	}
	// A newer attempt takes over one still being made as generation 2: the
	// units generation 1 took go back as generation 2 takes its own.
	crash("over")
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "over", Attempt: 8, Items: items}); out.Status != StatusReserved {
		t.Fatalf("newer attempt: %+v", out)
	}
	if s := stockOf(t, ctx, kv, "COF-0001"); s.Available != 44 || fmt.Sprint(s.Holds) != "map[crash#1:3 over#2:3]" {
		t.Fatalf("stock %+v, want 44 and generation 2's hold", s)
	}
	if _, err := fntest.Invoke[Output](t, h, Input{Op: "commit", OrderID: "over", Attempt: 7}); fn.ReasonOf(err) != ReasonStale {
		t.Fatalf("commit by attempt 7: %v, want stale_attempt", err)
	}
}

// A slow earlier attempt cannot release or commit a newer attempt's
// reservation; a newer attempt takes over a finished one.
func TestAttemptsFence(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	items := []Item{{SKU: "EQP-0001", Quantity: 2}}
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "f", Attempt: 1, Items: items}); out.Status != StatusReserved {
		t.Fatalf("reserve 1: %+v", out)
	}
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "f", Attempt: 2, Items: items}); out.Status != StatusReserved {
		t.Fatalf("reserve 2 (takes over): %+v", out)
	}
	if a := available(t, h, "EQP-0001"); a != 18 {
		t.Fatalf("stock %d, want 18", a)
	}
	for _, op := range []string{"release", "commit", "reserve"} {
		if _, err := fntest.Invoke[Output](t, h, Input{Op: op, OrderID: "f", Attempt: 1, Items: items}); !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonStale {
			t.Fatalf("%s by attempt 1: %v, want conflict, stale_attempt", op, err)
		}
	}
	if a := available(t, h, "EQP-0001"); a != 18 {
		t.Fatalf("stock %d after stale calls, want 18", a)
	}
	if out := invoke(t, h, Input{Op: "commit", OrderID: "f", Attempt: 2}); out.Status != StatusCommitted {
		t.Fatalf("commit 2: %+v", out)
	}
	if a := available(t, h, "EQP-0001"); a != 18 {
		t.Fatalf("stock %d after commit, want 18", a)
	}
}

// A release gives back every SKU even when one give-back fails, and a
// repeated release completes it.
func TestReleaseCompletesAfterPartialFailure(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	invoke(t, h, Input{Op: "reserve", OrderID: "p", Items: []Item{
		{SKU: "COF-0001", Quantity: 1}, {SKU: "EQP-0001", Quantity: 2}, {SKU: "TEA-0001", Quantity: 3}}})
	// Break the middle SKU's record so its give-back fails.
	good, _, err := kv.Get(ctx, stockKey("EQP-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, stockKey("EQP-0001"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := fntest.Invoke[Output](t, h, Input{Op: "release", OrderID: "p"}); err == nil {
		t.Fatal("release with a broken stock record: no error")
	}
	if a, c := available(t, h, "COF-0001"), available(t, h, "TEA-0001"); a != 50 || c != 100 {
		t.Fatalf("the other SKUs were not given back: %d %d", a, c)
	}
	if _, err := kv.Put(ctx, stockKey("EQP-0001"), good); err != nil {
		t.Fatal(err)
	}
	if s := stockOf(t, ctx, kv, "EQP-0001"); fmt.Sprint(s.Holds) != "map[p#1:2]" {
		t.Fatalf("holds %v, want p's until the release completes", s.Holds)
	}
	if out := invoke(t, h, Input{Op: "release", OrderID: "p"}); out.Status != StatusReleased {
		t.Fatalf("release again: %+v", out)
	}
	if a, c, e := available(t, h, "COF-0001"), available(t, h, "TEA-0001"), available(t, h, "EQP-0001"); a != 50 || c != 100 || e != 20 {
		t.Fatalf("stock %d %d %d, want 50 100 20", a, c, e)
	}
	if s := stockOf(t, ctx, kv, "EQP-0001"); len(s.Holds) != 0 {
		t.Fatalf("holds %v, want none", s.Holds)
	}
}

func TestBadInput(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	cases := map[string]wire.Code{
		`{"op":"reserve","items":[{"sku":"TEA-0001","quantity":1}]}`:                   wire.CodeInvalidArgument,
		`{"op":"reserve","order_id":"a"}`:                                              wire.CodeInvalidArgument,
		`{"op":"reserve","order_id":"a","items":[{"sku":"TEA-0001","quantity":0}]}`:    wire.CodeInvalidArgument,
		`{"op":"reserve","order_id":"a","items":[{"sku":"TEA-0001","quantity":1001}]}`: wire.CodeInvalidArgument,
		`{"op":"reserve","order_id":"A","items":[{"sku":"TEA-0001","quantity":1}]}`:    wire.CodeInvalidArgument,
		`{"op":"reserve","order_id":"a","items":[{"sku":"TEA-9999","quantity":1}]}`:    wire.CodeNotFound,
		`{"op":"restock","items":[{"sku":"TEA-0001","quantity":-1}]}`:                  wire.CodeInvalidArgument,
		`{"op":"restock"}`:       wire.CodeInvalidArgument,
		`{"op":"steal"}`:         wire.CodeInvalidArgument,
		`{"op":"get","extra":1}`: wire.CodeInvalidArgument,
	}
	for body, code := range cases {
		if _, we := h.Request(t, []byte(body)); we == nil || we.Code != code {
			t.Errorf("%s: got %v, want %s", body, we, code)
		}
	}
	_, we := h.Request(t, []byte(`{"op":"reserve","order_id":"a","items":[{"sku":"TEA-0001","quantity":1},{"sku":"TEA-0002","quantity":0}]}`))
	if we == nil || len(we.Errors) != 1 || we.Errors[0].Pointer != "/items/1/quantity" {
		t.Errorf("quantity 0: %+v, want pointer /items/1/quantity", we)
	}
}

func TestParseTTL(t *testing.T) {
	if d, err := ParseTTL(""); err != nil || d != ReservationTTL {
		t.Errorf("empty: %v %v", d, err)
	}
	if d, err := ParseTTL("90s"); err != nil || d != 90*time.Second {
		t.Errorf("90s: %v %v", d, err)
	}
	for _, bad := range []string{"soon", "-1m", "0"} {
		if _, err := ParseTTL(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func isCode(err error, code wire.Code) bool {
	we, ok := err.(*wire.Error)
	return ok && we.Code == code
}

// A sweep marks an order's reservation released, but before its give-back
// runs a retry of the order reserves again (generation 2). The late
// give-back must give back only generation 1's holds, never generation 2's:
// the stock is exactly initial − held − committed throughout.
func TestLateGiveBackSparesNewerGeneration(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	items := []Item{{SKU: "EQP-0001", Quantity: 5}, {SKU: "TEA-0001", Quantity: 1}}
	invoke(t, h, Input{Op: "reserve", OrderID: "r", Attempt: 1, Items: items})
	invoke(t, h, Input{Op: "reserve", OrderID: "other", Items: []Item{{SKU: "EQP-0001", Quantity: 2}}})
	invoke(t, h, Input{Op: "reserve", OrderID: "sold", Items: []Item{{SKU: "EQP-0001", Quantity: 3}}})
	invoke(t, h, Input{Op: "commit", OrderID: "sold"})
	want := func(step string, eqp, tea int, holds string) {
		t.Helper()
		e, te := stockOf(t, ctx, kv, "EQP-0001"), stockOf(t, ctx, kv, "TEA-0001")
		if e.Available != eqp || te.Available != tea {
			t.Fatalf("%s: available EQP-0001 %d, TEA-0001 %d; want %d, %d", step, e.Available, te.Available, eqp, tea)
		}
		if got := fmt.Sprint(e.Holds, te.Holds); got != holds {
			t.Fatalf("%s: holds %s, want %s", step, got, holds)
		}
	}
	want("reserved", 20-5-2-3, 100-1, "map[other#1:2 r#1:5] map[r#1:1]")

	// Release's first step: generation 1 is released; its give-back has
	// not run yet.
	swept := setState(t, ctx, kv, "r", stateReleased)
	// The retry holds it again: generation 2, which takes its own units
	// (the units generation 1 still holds go back first).
	if out := invoke(t, h, Input{Op: "reserve", OrderID: "r", Attempt: 2, Items: items}); out.Status != StatusReserved {
		t.Fatalf("reserve again: %+v", out)
	}
	if r, _, _ := fn.GetJSON[reservation](ctx, kv, resKey("r")); r.Gen != 2 || r.State != stateHeld || !r.Complete {
		t.Fatalf("reservation %+v, want generation 2 held", r)
	}
	want("held again", 20-5-2-3, 100-1, "map[other#1:2 r#2:5] map[r#2:1]")
	// A slow take of generation 1 arriving now is refused.
	if _, err := take(ctx, kv, "EQP-0001", "r", 1, 5); !errors.Is(err, errSuperseded) {
		t.Fatalf("late take of generation 1: %v, want superseded", err)
	}
	// Generation 1's give-back runs late: nothing of generation 2 goes.
	if err := settleHolds(ctx, kv, "r", swept.Gen, swept.Items, false); err != nil {
		t.Fatal(err)
	}
	want("late give-back", 20-5-2-3, 100-1, "map[other#1:2 r#2:5] map[r#2:1]")
	// Generation 2 commits what it holds: the units stay sold.
	if out := invoke(t, h, Input{Op: "commit", OrderID: "r", Attempt: 2}); out.Status != StatusCommitted {
		t.Fatalf("commit: %+v", out)
	}
	want("committed", 20-5-2-3, 100-1, "map[other#1:2] map[]")
	// And a repeated late give-back, or sweep, changes nothing.
	if err := settleHolds(ctx, kv, "r", swept.Gen, swept.Items, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sweep(ctx, kv, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want("swept", 20-3-5, 100-1, "map[] map[]")
}

// A hold whose give-back never ran is given back by the next generation's
// take, and a hold in the format from before generations (keyed by the
// order alone, in a reservation without a generation) is generation 0.
func TestOldHoldsAreGenerationZero(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	invoke(t, h, Input{Op: "get"}) // seeds
	legacy := func(order string, qty int) {
		t.Helper()
		if _, err := changeStock(ctx, kv, "COF-0001", func(s *stockRecord) error {
			s.Available -= qty
			s.Holds[order] = qty
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		data := fmt.Sprintf(`{"items":[{"sku":"COF-0001","quantity":%d}],"state":"held","attempt":1,"complete":true,"created_at":%q,"updated_at":%q}`,
			qty, time.Now().UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano))
		if _, err := kv.Put(ctx, resKey(order), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	legacy("old-commit", 4)
	legacy("old-release", 3)
	legacy("old-retry", 2)
	if a := available(t, h, "COF-0001"); a != 50-4-3-2 {
		t.Fatalf("stock %d", a)
	}
	invoke(t, h, Input{Op: "commit", OrderID: "old-commit", Attempt: 1})
	invoke(t, h, Input{Op: "release", OrderID: "old-release", Attempt: 1})
	// old-retry is released, but its give-back is lost (a crash); the retry
	// takes back the old hold and holds its own.
	setState(t, ctx, kv, "old-retry", stateReleased)
	invoke(t, h, Input{Op: "reserve", OrderID: "old-retry", Attempt: 2, Items: []Item{{SKU: "COF-0001", Quantity: 2}}})
	if s := stockOf(t, ctx, kv, "COF-0001"); s.Available != 50-4-2 || fmt.Sprint(s.Holds) != "map[old-retry#1:2]" {
		t.Fatalf("stock %+v, want %d available and only old-retry#1 held", s, 50-4-2)
	}
}

// TestSweepSettlesOrphanedHolds: holds left by a release or commit that
// crashed before settling them are given back when released (once the
// release is older than the cutoff), and settled when committed.
func TestSweepSettlesOrphanedHolds(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Inventory))
	ctx, kv := openBucket(t, h)
	before := available(t, h, "EQP-0001")
	invoke(t, h, Input{Op: "reserve", OrderID: "lost", Items: []Item{{SKU: "EQP-0001", Quantity: 3}}})
	invoke(t, h, Input{Op: "reserve", OrderID: "sold", Items: []Item{{SKU: "EQP-0001", Quantity: 2}}})
	setState(t, ctx, kv, "lost", stateReleased)
	setState(t, ctx, kv, "sold", stateCommitted)
	if s := stockOf(t, ctx, kv, "EQP-0001"); len(s.Holds) != 2 || s.Available != before-5 {
		t.Fatalf("before the sweep: %+v", s)
	}
	// Released after the cutoff: too fresh to touch.
	if _, held, err := sweep(ctx, kv, time.Now().Add(-time.Hour)); held != 1 || err != nil {
		t.Fatalf("early sweep: %d held, %v", held, err)
	}
	if s := stockOf(t, ctx, kv, "EQP-0001"); s.Available != before-5 || len(s.Holds) != 1 {
		t.Fatalf("early sweep: %+v (only the committed hold may be settled)", s)
	}
	if _, held, err := sweep(ctx, kv, time.Now().Add(time.Second)); held != 0 || err != nil {
		t.Fatalf("sweep: %d held, %v", held, err)
	}
	if s := stockOf(t, ctx, kv, "EQP-0001"); s.Available != before-2 || len(s.Holds) != 0 {
		t.Fatalf("after the sweep: %+v, want %d available and no holds", s, before-2)
	}
}
