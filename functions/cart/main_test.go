package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func invoke(t *testing.T, h *fntest.Harness, in Input) Cart {
	t.Helper()
	out, err := fntest.Invoke[Cart](t, h, in)
	if err != nil {
		t.Fatalf("%+v: %v", in, err)
	}
	return out
}

func refused(t *testing.T, h *fntest.Harness, in Input, code wire.Code, reason string) *wire.Error {
	t.Helper()
	_, err := fntest.Invoke[Cart](t, h, in)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != code || we.Reason != reason {
		t.Fatalf("%+v: %v, want %s %q", in, err, code, reason)
	}
	return we
}

func TestAddRemoveGet(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Handle))
	if c := invoke(t, h, Input{Op: "get", CartID: "c-1"}); c.Status != StatusOpen || len(c.Items) != 0 || c.Version != 0 {
		t.Fatalf("a cart without events: %+v", c)
	}
	c1 := invoke(t, h, Input{Op: "add", CartID: "c-1", SKU: "TEA-0001", Quantity: 2})
	c2 := invoke(t, h, Input{Op: "add", CartID: "c-1", SKU: "COF-0001"}) // quantity 1 by default
	c3 := invoke(t, h, Input{Op: "add", CartID: "c-1", SKU: "TEA-0001", Quantity: 3})
	if c1.Version == 0 || c2.Version <= c1.Version || c3.Version <= c2.Version {
		t.Fatalf("versions %d %d %d", c1.Version, c2.Version, c3.Version)
	}
	want := fmt.Sprint([]Item{{"TEA-0001", 5}, {"COF-0001", 1}})
	if fmt.Sprint(c3.Items) != want {
		t.Fatalf("after adds: %v, want %v", c3.Items, want)
	}
	// Another cart does not see them.
	invoke(t, h, Input{Op: "add", CartID: "c-2", SKU: "EQP-0001"})
	got := invoke(t, h, Input{Op: "get", CartID: "c-1"})
	if fmt.Sprint(got.Items) != want || got.Version != c3.Version {
		t.Fatalf("get: %+v", got)
	}
	// Remove takes the line out; removing what is not there changes nothing.
	r := invoke(t, h, Input{Op: "remove", CartID: "c-1", SKU: "TEA-0001"})
	if fmt.Sprint(r.Items) != fmt.Sprint([]Item{{"COF-0001", 1}}) || r.Version <= c3.Version {
		t.Fatalf("remove: %+v", r)
	}
	if again := invoke(t, h, Input{Op: "remove", CartID: "c-1", SKU: "TEA-0001"}); again.Version != r.Version {
		t.Fatalf("a second remove appended: %+v", again)
	}
	// The limits of an order.
	refused(t, h, Input{Op: "add", CartID: "c-1", SKU: "COF-0001", Quantity: 100}, wire.CodeConflict, ReasonQuantity)
	for k := range MaxLines - 1 {
		invoke(t, h, Input{Op: "add", CartID: "c-1", SKU: fmt.Sprintf("TST-%04d", k)})
	}
	refused(t, h, Input{Op: "add", CartID: "c-1", SKU: "TST-9999"}, wire.CodeConflict, ReasonFull)
	if c := invoke(t, h, Input{Op: "add", CartID: "c-1", SKU: "COF-0001", Quantity: 99}); c.Items[0].Quantity != 100 {
		t.Fatalf("up to the limit: %+v", c.Items[0])
	}
}

func TestValidation(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Handle))
	for _, tc := range []struct {
		in      string
		pointer string
	}{
		{`{"op":"add","cart_id":"c-1","sku":"tea"}`, "/sku"},
		{`{"op":"add","cart_id":"C_1","sku":"TEA-0001"}`, "/cart_id"},
		{`{"op":"add","cart_id":"c-1","sku":"TEA-0001","quantity":101}`, "/quantity"},
		{`{"op":"add","cart_id":"c-1","sku":"TEA-0001","quantity":-1}`, "/quantity"},
		{`{"op":"buy","cart_id":"c-1"}`, "/op"},
		{`{"op":"add","cart_id":"c-1"}`, "/sku"},
		{`{"op":"remove","cart_id":"c-1"}`, "/sku"},
		{`{"op":"checkout","cart_id":"c-1","email":"ada@example.com"}`, "/card"},
		{`{"op":"checkout","cart_id":"c-1","card":"4242424242424242"}`, "/email"},
		{`{"op":"checkout","cart_id":"c-1","card":"42","email":"ada@example.com"}`, "/card"},
		{`{"op":"get"}`, "/cart_id"},
	} {
		_, we := h.Request(t, []byte(tc.in))
		if we == nil || we.Code != wire.CodeInvalidArgument || len(we.Errors) == 0 || we.Errors[0].Pointer != tc.pointer {
			t.Errorf("%s: %+v, want invalid_argument at %q", tc.in, we, tc.pointer)
		}
	}
}

// fakeOrders stands in for orders: card 4000000000000002 is declined,
// 4000000000000119 fails (not charged), 4000000000000259 leaves the order
// pending until pending is cleared; other cards pay. It counts the
// attempts at each order.
type fakeOrders struct {
	mu       sync.Mutex
	attempts map[string]int
	pending  atomic.Bool
}

type fakeOrderIn struct {
	OrderID  string `json:"order_id"`
	Items    []Item `json:"items"`
	Card     string `json:"card"`
	Email    string `json:"email"`
	Currency string `json:"currency,omitempty"`
}

func (f *fakeOrders) place(ctx context.Context, in fakeOrderIn) (order, error) {
	f.mu.Lock()
	f.attempts[in.OrderID]++
	f.mu.Unlock()
	var total int64
	for _, it := range in.Items {
		total += int64(it.Quantity) * 1000
	}
	switch {
	case in.Card == "4000000000000002":
		return order{OrderID: in.OrderID, Status: "declined", Reason: "card_declined", Total: Money{total, "EUR"}}, nil
	case in.Card == "4000000000000119":
		return order{}, fn.WithReason(fn.Errorf(fn.CodeUnavailable, "order %s failed: payments unavailable", in.OrderID), orderFailed)
	case in.Card == "4000000000000259" && f.pending.Load():
		return order{}, fn.WithReason(fn.Errorf(fn.CodeUnavailable, "order %s is pending", in.OrderID), "order_pending")
	}
	return order{OrderID: in.OrderID, Status: orderPaid, Total: Money{total, "EUR"}}, nil
}

func (f *fakeOrders) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[id]
}

func TestCheckout(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Handle))
	orders := &fakeOrders{attempts: map[string]int{}}
	startOn(t, h, fn.Config{Name: "orders"}, fn.Handle(orders.place))
	checkout := func(card string) Input {
		return Input{Op: "checkout", CartID: "c-9", Card: card, Email: "ada@example.com"}
	}
	refused(t, h, checkout("4242424242424242"), wire.CodeConflict, ReasonEmpty)
	invoke(t, h, Input{Op: "add", CartID: "c-9", SKU: "TEA-0001", Quantity: 2})

	// Declined: the cart opens again; the next checkout is another order.
	c := invoke(t, h, checkout("4000000000000002"))
	if c.Status != StatusOpen || c.Checkout == nil || c.Checkout.OrderID != "cart-c-9-1" || c.Checkout.Status != "declined" || c.Checkout.Reason != "card_declined" {
		t.Fatalf("declined: %+v %+v", c, c.Checkout)
	}
	// Failed without a charge: the same, and the error reaches the caller.
	refused(t, h, checkout("4000000000000119"), wire.CodeUnavailable, orderFailed)
	if c := invoke(t, h, Input{Op: "get", CartID: "c-9"}); c.Status != StatusOpen || c.Checkout.OrderID != "cart-c-9-2" || c.Checkout.Status != "failed" {
		t.Fatalf("failed: %+v %+v", c, c.Checkout)
	}
	// Pending: the cart stays locked; checking out again finishes the
	// same order.
	orders.pending.Store(true)
	refused(t, h, checkout("4000000000000259"), wire.CodeUnavailable, "order_pending")
	refused(t, h, Input{Op: "add", CartID: "c-9", SKU: "COF-0001"}, wire.CodeConflict, ReasonCheckingOut)
	refused(t, h, Input{Op: "remove", CartID: "c-9", SKU: "TEA-0001"}, wire.CodeConflict, ReasonCheckingOut)
	if c := invoke(t, h, Input{Op: "get", CartID: "c-9"}); c.Status != StatusCheckingOut || c.Checkout.OrderID != "cart-c-9-3" || c.Checkout.Status != "pending" {
		t.Fatalf("pending: %+v %+v", c, c.Checkout)
	}
	orders.pending.Store(false)
	c = invoke(t, h, checkout("4000000000000259"))
	if c.Status != StatusCheckedOut || c.Checkout.OrderID != "cart-c-9-3" || c.Checkout.Status != "paid" || c.Checkout.Total == nil || c.Checkout.Total.Amount != 2000 {
		t.Fatalf("paid: %+v %+v", c, c.Checkout)
	}
	if n := orders.count("cart-c-9-3"); n != 2 {
		t.Fatalf("order cart-c-9-3 placed %d times, want 2 (pending, then paid)", n)
	}
	// Checked out: the cart changes no more, and checking out again
	// answers the same without placing anything.
	refused(t, h, Input{Op: "add", CartID: "c-9", SKU: "TEA-0001"}, wire.CodeConflict, ReasonCheckedOut)
	refused(t, h, Input{Op: "remove", CartID: "c-9", SKU: "TEA-0001"}, wire.CodeConflict, ReasonCheckedOut)
	if again := invoke(t, h, checkout("4242424242424242")); again.Version != c.Version || again.Checkout.OrderID != "cart-c-9-3" {
		t.Fatalf("checkout again: %+v", again)
	}
	if n := orders.count("cart-c-9-3"); n != 2 {
		t.Fatalf("order placed again after the checkout: %d", n)
	}
	if n := orders.count("cart-c-9-4"); n != 0 {
		t.Fatalf("a fourth order was placed: %d", n)
	}
}

// startOn starts another function, or another instance, on the harness's
// server.
func startOn(t *testing.T, h *fntest.Harness, cfg fn.Config, handler *fn.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, h.NC, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = inst.Stop(ctx)
	})
}

var conflictsRe = regexp.MustCompile(`conflicts=(\d+)`)

// TestConcurrentAdds: three instances add to one cart at once; every add
// is one event, conflicts are decided again.
func TestConcurrentAdds(t *testing.T) {
	var logs natstest.Buffer
	cfg := Config
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h := fntest.Start(t, cfg, fn.Handle(Handle))
	startOn(t, h, cfg, fn.Handle(Handle))
	startOn(t, h, cfg, fn.Handle(Handle))
	const n = 45
	skus := []string{"TEA-0001", "COF-0001", "EQP-0001"}
	versions := make([]uint64, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			c, err := fn.Invoke[Cart](fn.WithConn(context.Background(), h.NC), "cart", Input{Op: "add", CartID: "busy", SKU: skus[k%3]})
			if err != nil {
				t.Error(err)
			}
			versions[k] = c.Version
		})
	}
	wg.Wait()
	ctx := fn.WithConn(context.Background(), h.NC)
	seen := map[uint64]bool{}
	s, _, err := fn.Load(ctx, "cart.busy", func(s state, ev fn.Event) (state, error) {
		seen[ev.Seq] = true
		return fold(s, ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if !seen[v] {
			t.Errorf("an add answered version %d, which is no event of the cart", v)
		}
	}
	qty := map[string]int{}
	for _, it := range s.Items {
		qty[it.SKU] = it.Quantity
	}
	if len(seen) != n || len(qty) != 3 || qty["TEA-0001"] != 15 || qty["COF-0001"] != 15 || qty["EQP-0001"] != 15 {
		t.Fatalf("after %d adds: %d events, %v", n, len(seen), s.Items)
	}
	conflicts := 0
	for _, m := range conflictsRe.FindAllStringSubmatch(logs.String(), -1) {
		c, _ := strconv.Atoi(m[1])
		conflicts += c
	}
	t.Logf("%d adds by 3 instances: %d version conflicts decided again", n, conflicts)
	if conflicts == 0 {
		t.Error("no add met a version conflict: the adds did not race")
	}
}

// TestSnapshots: loads keep a snapshot of a long cart, and later loads
// start from it.
func TestSnapshots(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Handle))
	for range 2*SnapshotEvery + 5 {
		invoke(t, h, Input{Op: "add", CartID: "long", SKU: "TEA-0001"})
	}
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), h.NC), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(h.NC)
	kv, err := js.KeyValue(ctx, registry.SnapshotBucket(Stream))
	if err != nil {
		t.Fatal(err)
	}
	// cart's own snapshot (each function keeps its own), at a version
	// SnapshotEvery or more events in.
	e, err := kv.Get(ctx, fn.SnapshotKey("cart", "cart.long"))
	if err != nil {
		t.Fatalf("no snapshot of the cart: %v", err)
	}
	var snap struct {
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(e.Value(), &snap); err != nil || snap.Version < SnapshotEvery {
		t.Fatalf("snapshot %s: %v", e.Value(), err)
	}
	s, v, err := fn.Load(ctx, "cart.long", fold)
	if err != nil || s.Items[0].Quantity != 2*SnapshotEvery+5 {
		t.Fatalf("load: %+v (version %d), %v", s, v, err)
	}
	if c := invoke(t, h, Input{Op: "get", CartID: "long"}); c.Version != v || c.Items[0].Quantity != 2*SnapshotEvery+5 {
		t.Fatalf("get: %+v", c)
	}
}

// An event the cart cannot read stops loads and commands: no decision on
// a cart it cannot tell.
func TestUnknownEvent(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Handle))
	invoke(t, h, Input{Op: "add", CartID: "odd", SKU: "TEA-0001"})
	ctx := fn.WithConn(context.Background(), h.NC)
	if _, err := fn.Append(ctx, "cart.odd", map[string]int{"x": 1}, fn.WithEventType("GiftWrapped")); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"get", "add"} {
		if _, err := fntest.Invoke[Cart](t, h, Input{Op: op, CartID: "odd", SKU: "TEA-0001"}); err == nil {
			t.Errorf("%s of a cart with an unknown event succeeded", op)
		}
	}
}
