package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	fn "github.com/switchyard-dev/switchyard/runtime"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func init() {
	// The tests make payments fail on purpose; the breaker must not open.
	fn.BreakerFailures = 1 << 20
}

// Stand-ins for catalog, inventory and payments, with their contracts and
// in-memory state.

type fakeLookup struct {
	SKU      string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	Currency string `json:"currency,omitempty" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
	Quantity int    `json:"quantity,omitempty" jsonschema:"minimum=1,maximum=1000"`
}

var prices = map[string]int64{"TEA-0001": 1250, "TEA-0002": 1490, "COF-0001": 1890, "EQP-0001": 7900}

func fakeCatalog(_ context.Context, in fakeLookup) (product, error) {
	p, ok := prices[in.SKU]
	if !ok {
		return product{}, fn.NotFound("no product with SKU %s", in.SKU)
	}
	cur := in.Currency
	return product{SKU: in.SKU, Name: "name of " + in.SKU, Price: Money{p, cur},
		LineTotal: Money{p * int64(in.Quantity), cur}}, nil
}

type fakeInvIn struct {
	Op      string    `json:"op" jsonschema:"enum=reserve,enum=release,enum=commit"`
	OrderID string    `json:"order_id"`
	Items   []invItem `json:"items,omitempty"`
}

type fakeInventory struct {
	mu    sync.Mutex
	stock map[string]int
	res   map[string]*fakeRes
}

type fakeRes struct {
	items []invItem
	state string
	short string
}

func (f *fakeInventory) handle(_ context.Context, in fakeInvIn) (invResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.res[in.OrderID]
	switch in.Op {
	case "reserve":
		if r != nil && (r.state != "released" || r.short != "") {
			if r.short != "" {
				return invResult{Status: "insufficient_stock", SKU: r.short}, nil
			}
			return invResult{Status: "reserved"}, nil
		}
		r = &fakeRes{items: in.Items, state: "held"}
		f.res[in.OrderID] = r
		for _, it := range in.Items {
			if f.stock[it.SKU] < it.Quantity {
				r.state, r.short = "released", it.SKU
				return invResult{Status: "insufficient_stock", SKU: it.SKU}, nil
			}
		}
		for _, it := range in.Items {
			f.stock[it.SKU] -= it.Quantity
		}
		return invResult{Status: "reserved"}, nil
	case "release":
		if r != nil && r.state == "held" {
			r.state = "released"
			for _, it := range r.items {
				f.stock[it.SKU] += it.Quantity
			}
		}
		return invResult{Status: "released"}, nil
	default: // commit
		if r == nil {
			return invResult{}, fn.NotFound("no reservation")
		}
		if r.state == "released" {
			return invResult{}, fn.Errorf(fn.CodeConflict, "released")
		}
		r.state = "committed"
		return invResult{Status: "committed"}, nil
	}
}

func (f *fakeInventory) state(order string) (string, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := ""
	if r := f.res[order]; r != nil {
		s = r.state
	}
	stock := map[string]int{}
	for k, v := range f.stock {
		stock[k] = v
	}
	return s, stock
}

type fakeChargeIn struct {
	OrderID string `json:"order_id"`
	Card    string `json:"card"`
	Amount  Money  `json:"amount"`
}

type fakePayments struct {
	down    atomic.Bool
	mu      sync.Mutex
	charges map[string]chargeResult
	calls   atomic.Int32
}

func (f *fakePayments) handle(_ context.Context, in fakeChargeIn) (chargeResult, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return chargeResult{}, fn.Errorf(fn.CodeUnavailable, "payment processor is down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.charges[in.OrderID]; ok {
		return r, nil
	}
	r := chargeResult{Status: "approved", ChargeID: "ch_" + in.OrderID}
	if in.Card == "4000000000000002" {
		r = chargeResult{Status: "declined", Reason: "card_declined"}
	}
	f.charges[in.OrderID] = r
	return r, nil
}

type shop struct {
	h   *fntest.Harness
	inv *fakeInventory
	pay *fakePayments
	js  jetstream.JetStream
}

func startShop(t *testing.T) *shop {
	t.Helper()
	s := &shop{
		h:   fntest.Start(t, Config, fn.Handle(Place, fn.WithTimeout(10*time.Second))),
		inv: &fakeInventory{stock: map[string]int{"TEA-0001": 100, "TEA-0002": 0, "COF-0001": 50, "EQP-0001": 20}, res: map[string]*fakeRes{}},
		pay: &fakePayments{charges: map[string]chargeResult{}},
	}
	serve(t, s.h, fn.Config{Name: "catalog", CoreOnly: true}, fn.Handle(fakeCatalog))
	serve(t, s.h, fn.Config{Name: "inventory", CoreOnly: true}, fn.Handle(s.inv.handle))
	serve(t, s.h, fn.Config{Name: "payments", CoreOnly: true}, fn.Handle(s.pay.handle))
	var err error
	if s.js, err = jetstream.New(s.h.NC); err != nil {
		t.Fatal(err)
	}
	return s
}

func serve(t *testing.T, h *fntest.Harness, cfg fn.Config, handler *fn.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, h.NC, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
}

// placedEvents reads the orders.placed events of the stream.
func (s *shop) placedEvents(t *testing.T) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, "SHOP_ORDERS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{SubjectPlaced}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for range info.NumPending {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

const goodCard = "4242424242424242"

func TestPaidPublishesAndCommits(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "o-1", Items: []ItemIn{{"TEA-0001", 2}, {"COF-0001", 1}}, Card: goodCard, Email: "ada@example.com"}
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusPaid || o.OrderID != "o-1" || o.Total != (Money{2*1250 + 1890, "EUR"}) || len(o.Items) != 2 {
		t.Fatalf("order %+v", o)
	}
	if o.Items[0].LineTotal != (Money{2500, "EUR"}) || o.Items[1].Name != "name of COF-0001" {
		t.Fatalf("lines %+v", o.Items)
	}
	if st, stock := s.inv.state("o-1"); st != "committed" || stock["TEA-0001"] != 98 || stock["COF-0001"] != 49 {
		t.Fatalf("inventory %s %v", st, stock)
	}
	msgs := s.placedEvents(t)
	if len(msgs) != 1 {
		t.Fatalf("%d events, want 1", len(msgs))
	}
	var ev OrderPlaced
	if err := json.Unmarshal(msgs[0].Data(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.OrderID != "o-1" || ev.Email != "ada@example.com" || ev.Total != o.Total || len(ev.Items) != 2 || ev.PlacedAt.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	if id := msgs[0].Headers().Get("Nats-Msg-Id"); id != "o-1" {
		t.Fatalf("event id %q, want the order id", id)
	}

	// Placing it again returns the stored order: no new charge, no event.
	again, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(o) {
		t.Fatalf("again %+v\nfirst %+v", again, o)
	}
	if n := s.pay.calls.Load(); n != 1 {
		t.Fatalf("payments called %d times", n)
	}
	if msgs := s.placedEvents(t); len(msgs) != 1 {
		t.Fatalf("%d events after re-place", len(msgs))
	}
}

func TestGeneratedIDAndCurrency(t *testing.T) {
	s := startShop(t)
	o, err := fntest.Invoke[Order](t, s.h, PlaceOrder{Items: []ItemIn{{"EQP-0001", 1}}, Card: goodCard, Email: "a@b.co", Currency: "GBP"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusPaid || len(o.OrderID) < 5 || o.Total.Currency != "GBP" {
		t.Fatalf("order %+v", o)
	}
}

func TestDeclinedReleases(t *testing.T) {
	s := startShop(t)
	o, err := fntest.Invoke[Order](t, s.h, PlaceOrder{OrderID: "d-1", Items: []ItemIn{{"TEA-0001", 3}},
		Card: "4000000000000002", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusDeclined || o.Reason != "card_declined" {
		t.Fatalf("order %+v", o)
	}
	if st, stock := s.inv.state("d-1"); st != "released" || stock["TEA-0001"] != 100 {
		t.Fatalf("inventory %s %v", st, stock)
	}
	if msgs := s.placedEvents(t); len(msgs) != 0 {
		t.Fatalf("%d events for a declined order", len(msgs))
	}
}

func TestOutOfStock(t *testing.T) {
	s := startShop(t)
	o, err := fntest.Invoke[Order](t, s.h, PlaceOrder{OrderID: "s-1", Items: []ItemIn{{"TEA-0001", 1}, {"TEA-0002", 1}},
		Card: goodCard, Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusOutOfStock || o.Reason != "insufficient stock of TEA-0002" {
		t.Fatalf("order %+v", o)
	}
	if s.pay.calls.Load() != 0 {
		t.Fatal("payments called for an order out of stock")
	}
}

func TestPaymentsDownReleasesAndRetryFinishes(t *testing.T) {
	s := startShop(t)
	s.pay.down.Store(true)
	in := PlaceOrder{OrderID: "f-1", Items: []ItemIn{{"EQP-0001", 2}}, Card: goodCard, Email: "ada@example.com"}
	_, err := fntest.Invoke[Order](t, s.h, in)
	if !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("got %v, want unavailable", err)
	}
	if st, stock := s.inv.state("f-1"); st != "released" || stock["EQP-0001"] != 20 {
		t.Fatalf("inventory %s %v", st, stock)
	}
	rec := s.stored(t, "f-1")
	if rec.Status != StatusFailed || rec.Reason != "payments unavailable: payment processor is down" {
		t.Fatalf("stored %+v", rec)
	}
	// Failed is not final: once payments is back, the same order goes through.
	s.pay.down.Store(false)
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil || o.Status != StatusPaid {
		t.Fatalf("retry: %+v %v", o, err)
	}
	if st, stock := s.inv.state("f-1"); st != "committed" || stock["EQP-0001"] != 18 {
		t.Fatalf("inventory after retry %s %v", st, stock)
	}
}

func TestPublishFailureKeepsPendingUntilRetry(t *testing.T) {
	s := startShop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.js.DeleteStream(ctx, "SHOP_ORDERS"); err != nil {
		t.Fatal(err)
	}
	in := PlaceOrder{OrderID: "p-1", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "ada@example.com"}
	if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeInternal) {
		t.Fatalf("got %v, want internal", err)
	}
	if st, _ := s.inv.state("p-1"); st != "held" {
		t.Fatalf("reservation %s, want still held", st)
	}
	if rec := s.stored(t, "p-1"); rec.Status != StatusPending {
		t.Fatalf("stored %+v, want pending", rec)
	}
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SHOP_ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil || o.Status != StatusPaid {
		t.Fatalf("retry: %+v %v", o, err)
	}
	if st, _ := s.inv.state("p-1"); st != "committed" {
		t.Fatalf("reservation %s", st)
	}
	if msgs := s.placedEvents(t); len(msgs) != 1 {
		t.Fatalf("%d events", len(msgs))
	}
	if n := len(s.pay.charges); n != 1 {
		t.Fatalf("%d charges", n)
	}
}

func TestUnknownSKU(t *testing.T) {
	s := startShop(t)
	_, err := fntest.Invoke[Order](t, s.h, PlaceOrder{Items: []ItemIn{{"XYZ-0001", 1}}, Card: goodCard, Email: "a@b.co"})
	if !isCode(err, wire.CodeNotFound) {
		t.Fatalf("got %v, want not_found", err)
	}
}

func TestBadInput(t *testing.T) {
	s := startShop(t)
	items21 := make([]ItemIn, 21)
	for i := range items21 {
		items21[i] = ItemIn{"TEA-0001", 1}
	}
	for _, in := range []PlaceOrder{
		{Items: []ItemIn{{"TEA-0001", 101}}, Card: goodCard, Email: "a@b.co"},
		{Items: []ItemIn{{"TEA-0001", 0}}, Card: goodCard, Email: "a@b.co"},
		{Items: []ItemIn{}, Card: goodCard, Email: "a@b.co"},
		{Items: items21, Card: goodCard, Email: "a@b.co"},
		{Items: []ItemIn{{"tea-1", 1}}, Card: goodCard, Email: "a@b.co"},
		{Items: []ItemIn{{"TEA-0001", 1}}, Card: "42", Email: "a@b.co"},
		{Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "a@b.co", Currency: "JPY"},
		{OrderID: "Bad_ID", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "a@b.co"},
	} {
		if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeInvalidArgument) {
			t.Errorf("%+v: got %v, want invalid_argument", in, err)
		}
	}
	if _, we := s.h.Request(t, []byte(`{"items":[{"sku":"TEA-0001","quantity":1}],"card":"4242424242424242"}`)); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Errorf("no email: %v", we)
	}
}

func (s *shop) stored(t *testing.T, id string) record {
	t.Helper()
	ctx := fn.WithConn(context.Background(), s.h.NC)
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := fn.GetJSON[record](ctx, kv, key(id))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func isCode(err error, code wire.Code) bool {
	we, ok := err.(*wire.Error)
	return ok && we.Code == code
}
