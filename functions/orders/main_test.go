package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
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
	return product{Name: "name of " + in.SKU, Price: Money{p, cur},
		LineTotal: Money{p * int64(in.Quantity), cur}}, nil
}

type fakeInvIn struct {
	Op      string   `json:"op" jsonschema:"enum=reserve,enum=release,enum=commit"`
	OrderID string   `json:"order_id"`
	Items   []ItemIn `json:"items,omitempty"`
	Attempt int64    `json:"attempt,omitempty"`
}

// fakeInventory behaves as inventory does: a reservation is made one item
// at a time (a newer attempt meanwhile starts it over), holds are per order
// and SKU, and calls of an attempt older than the reservation's are
// refused with conflict (stale_attempt).
type fakeInventory struct {
	mu       sync.Mutex
	stock    map[string]int
	res      map[string]*fakeRes
	releases map[string]int
	// gate, when set, holds a reserve after its first item until closed;
	// entered is signalled (non-blocking) when a reserve reaches it.
	gate    chan struct{}
	entered chan string
	// down fails every call with unavailable (inventory reached, its
	// storage not); failCommit fails commits only; releaseOnCommit makes
	// the next commit find the reservation released (the sweep got there
	// first) and then sets down.
	down, failCommit, releaseOnCommit atomic.Bool
}

type fakeRes struct {
	items    []ItemIn
	state    string
	short    string
	attempt  int64
	complete bool
	holds    map[string]int
}

func newFakeInventory() *fakeInventory {
	return &fakeInventory{stock: map[string]int{"TEA-0001": 100, "TEA-0002": 0, "COF-0001": 50, "EQP-0001": 20},
		res: map[string]*fakeRes{}, releases: map[string]int{}}
}

func stale(order string) error {
	return fn.WithReason(fn.Errorf(fn.CodeConflict, "the reservation of order %s belongs to a newer attempt", order), invStale)
}

func (f *fakeInventory) handle(_ context.Context, in fakeInvIn) (invResult, error) {
	if f.down.Load() || in.Op == "commit" && f.failCommit.Load() {
		return invResult{}, fn.Errorf(fn.CodeUnavailable, "inventory storage is down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.res[in.OrderID]
	if in.Op == "commit" && r != nil && r.state == "held" && f.releaseOnCommit.CompareAndSwap(true, false) {
		f.giveBack(r)
		r.state = "released"
		f.down.Store(true)
	}
	switch in.Op {
	case "reserve":
		if r != nil {
			if in.Attempt != 0 && in.Attempt < r.attempt {
				return invResult{}, stale(in.OrderID)
			}
			switch {
			case r.state == "held" && r.complete:
				r.attempt = max(r.attempt, in.Attempt)
				return invResult{Status: "reserved"}, nil
			case r.state == "held":
				f.giveBack(r)
			case r.state == "committed":
				return invResult{Status: "reserved"}, nil
			case r.short != "":
				return invResult{Status: "insufficient_stock", SKU: r.short}, nil
			}
		}
		r = &fakeRes{items: in.Items, state: "held", attempt: in.Attempt, holds: map[string]int{}}
		f.res[in.OrderID] = r
		for k, it := range in.Items {
			if k == 1 && f.gate != nil {
				// In the middle of it, as a slow reserve is.
				gate := f.gate
				f.mu.Unlock()
				select {
				case f.entered <- in.OrderID:
				default:
				}
				<-gate
				f.mu.Lock()
			}
			if r.state != "held" {
				return invResult{Status: "released"}, nil
			}
			if _, ok := r.holds[it.SKU]; ok {
				continue
			}
			if f.stock[it.SKU] < it.Quantity {
				f.giveBack(r)
				r.state, r.short = "released", it.SKU
				return invResult{Status: "insufficient_stock", SKU: it.SKU}, nil
			}
			f.stock[it.SKU] -= it.Quantity
			r.holds[it.SKU] = it.Quantity
		}
		r.complete = true
		return invResult{Status: "reserved"}, nil
	case "release":
		f.releases[in.OrderID]++
		if r != nil && r.state == "held" {
			if in.Attempt != 0 && in.Attempt < r.attempt {
				return invResult{}, stale(in.OrderID)
			}
			r.state = "released"
		}
		if r != nil && r.state == "released" {
			f.giveBack(r)
		}
		return invResult{Status: "released"}, nil
	default: // commit
		if r == nil {
			return invResult{}, fn.NotFound("no reservation")
		}
		switch {
		case r.state == "released":
			return invResult{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "the reservation of order %s was released", in.OrderID), invReleased)
		case r.state == "held" && !r.complete:
			return invResult{}, fn.Errorf(fn.CodeConflict, "the reservation of order %s is not complete", in.OrderID)
		case r.state == "held" && in.Attempt != 0 && in.Attempt < r.attempt:
			return invResult{}, stale(in.OrderID)
		}
		r.state, r.holds = "committed", map[string]int{}
		return invResult{Status: "committed"}, nil
	}
}

func (f *fakeInventory) giveBack(r *fakeRes) {
	for sku, q := range r.holds {
		f.stock[sku] += q
	}
	r.holds = map[string]int{}
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

func (f *fakeInventory) released(order string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.releases[order]
}

type fakeChargeIn struct {
	Op      string `json:"op,omitempty" jsonschema:"enum=charge,enum=status,enum=refund"`
	OrderID string `json:"order_id"`
	Card    string `json:"card,omitempty"`
	Amount  *Money `json:"amount,omitempty"`
	Attempt int64  `json:"attempt,omitempty"`
}

// fakePayments behaves as payments does: one charge per order, a conflict
// for the same order with another amount or card, status (voiding the
// order up to the asking attempt when nothing is recorded) and refund. It
// can be made down (charges fail), blind (status fails too), broken
// (charges fail with internal) or late (a charge is recorded only after
// its caller's deadline passed, and answered to nobody).
type fakePayments struct {
	down, blind, broken, late atomic.Bool
	mu                        sync.Mutex
	charges                   map[string]*fakeCharge
	calls                     atomic.Int32 // charge requests
	made                      atomic.Int32 // charges made (a repeated charge answers the first)
	lateDone                  atomic.Int32
}

type fakeCharge struct {
	res     chargeResult
	amount  Money
	card    string
	voided  int64
	charged bool
}

func (f *fakePayments) handle(ctx context.Context, in fakeChargeIn) (chargeResult, error) {
	switch in.Op {
	case "status":
		if f.blind.Load() {
			return chargeResult{}, fn.Errorf(fn.CodeUnavailable, "payments records unreachable")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.charges[in.OrderID]
		if c != nil && c.charged {
			return c.res, nil
		}
		if in.Attempt > 0 {
			if c == nil {
				c = &fakeCharge{}
				f.charges[in.OrderID] = c
			}
			c.voided = max(c.voided, in.Attempt)
		}
		return chargeResult{Status: "none"}, nil
	case "refund":
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.charges[in.OrderID]
		if c == nil || !c.charged {
			return chargeResult{Status: "none"}, nil
		}
		if c.res.Status == "approved" {
			c.res.Status = "refunded"
		}
		return c.res, nil
	}
	f.calls.Add(1)
	if f.down.Load() {
		return chargeResult{}, fn.Errorf(fn.CodeUnavailable, "payment processor is down")
	}
	if f.broken.Load() {
		return chargeResult{}, errors.New("processor exploded")
	}
	if f.late.Load() {
		<-ctx.Done()
		defer f.lateDone.Add(1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.charges[in.OrderID]
	if c != nil && c.charged {
		if c.amount != *in.Amount || c.card != in.Card {
			return chargeResult{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "order %s was already charged with another amount or card", in.OrderID), payMismatch)
		}
		return c.res, nil
	}
	if c != nil && in.Attempt <= c.voided {
		return chargeResult{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "the charge of order %s was voided", in.OrderID), "charge_voided") // as payments answers
	}
	r := chargeResult{Status: "approved", ChargeID: "ch_" + in.OrderID}
	if in.Card == "4000000000000002" {
		r = chargeResult{Status: "declined", Reason: "card_declined"}
	}
	f.charges[in.OrderID] = &fakeCharge{res: r, amount: *in.Amount, card: in.Card, charged: true}
	f.made.Add(1)
	return r, nil
}

// charged reports the status of the order's recorded charge ("" if none).
func (f *fakePayments) charged(order string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.charges[order]; c != nil && c.charged {
		return c.res.Status
	}
	return ""
}

func (f *fakePayments) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.charges {
		if c.charged {
			n++
		}
	}
	return n
}

type shop struct {
	h       *fntest.Harness
	inv     *fakeInventory
	invInst *fn.Instance
	pay     *fakePayments
	js      jetstream.JetStream
}

func startShop(t *testing.T, opts ...fn.Option) *shop {
	t.Helper()
	opts = append([]fn.Option{fn.WithTimeout(10 * time.Second)}, opts...)
	s := &shop{
		h:   fntest.Start(t, Config, fn.Handle(Place, opts...)),
		inv: newFakeInventory(),
		pay: &fakePayments{charges: map[string]*fakeCharge{}},
	}
	serve(t, s.h, fn.Config{Name: "catalog", CoreOnly: true}, fn.Handle(fakeCatalog))
	s.invInst = serve(t, s.h, fn.Config{Name: "inventory", CoreOnly: true}, fn.Handle(s.inv.handle))
	serve(t, s.h, fn.Config{Name: "payments", CoreOnly: true}, fn.Handle(s.pay.handle))
	var err error
	if s.js, err = jetstream.New(s.h.NC); err != nil {
		t.Fatal(err)
	}
	return s
}

func serve(t *testing.T, h *fntest.Harness, cfg fn.Config, handler *fn.Handler) *fn.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, h.NC, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	return inst
}

// stopInventory makes inventory unreachable: its instance stops, and an
// agent answers that it is not deployed, so calls fail fast with
// fn.NotDelivered. The returned func starts it again.
func (s *shop) stopInventory(t *testing.T) (restart func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.invInst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	notDeployed := &wire.Error{Code: wire.CodeNotFound, Message: "inventory is not deployed"}
	body, _ := json.Marshal(notDeployed)
	sub, err := s.h.NC.Subscribe(wire.ActivatePrefix+"inventory", func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Header: nats.Header(notDeployed.Headers()), Data: body})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.h.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		s.invInst = serve(t, s.h, fn.Config{Name: "inventory", CoreOnly: true}, fn.Handle(s.inv.handle))
	}
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
	if !isCode(err, wire.CodeUnavailable) || fn.ReasonOf(err) != ReasonFailed {
		t.Fatalf("got %v, want unavailable, order_failed", err)
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
	if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeUnavailable) || fn.ReasonOf(err) != ReasonPending {
		t.Fatalf("got %v, want unavailable, order_pending", err)
	}
	// Paid, so the stock is committed first; the event waits for a retry.
	if st, _ := s.inv.state("p-1"); st != "committed" {
		t.Fatalf("reservation %s, want committed", st)
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
	if n := s.pay.count(); n != 1 {
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

// placeAll places the same order from n goroutines at once and returns
// the answers.
func placeAll(t *testing.T, s *shop, in PlaceOrder, n int) ([]Order, []error) {
	t.Helper()
	orders, errs := make([]Order, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			orders[i], errs[i] = fntest.Invoke[Order](t, s.h, in)
		}()
	}
	wg.Wait()
	return orders, errs
}

// checkBooks checks the invariants of one order across the fakes: at most
// one charge; paid ⇔ charged and stock taken; no failed or out-of-stock
// order with a live charge.
func (s *shop) checkBooks(t *testing.T, id string, initial map[string]int, qty map[string]int) record {
	t.Helper()
	rec := s.stored(t, id)
	charge := s.pay.charged(id)
	_, stock := s.inv.state(id)
	if n := s.pay.count(); n > 1 {
		t.Errorf("%d charges", n)
	}
	switch rec.Status {
	case StatusPaid:
		if charge != "approved" {
			t.Errorf("paid without a charge (%q)", charge)
		}
		for sku, q := range qty {
			if stock[sku] != initial[sku]-q {
				t.Errorf("%s: %d in stock, want %d", sku, stock[sku], initial[sku]-q)
			}
		}
	default:
		if charge == "approved" && rec.Status != StatusPending {
			t.Errorf("order %s but its card is charged", rec.Status)
		}
		if rec.Status != StatusPending {
			for sku := range qty {
				if stock[sku] != initial[sku] {
					t.Errorf("%s: %d in stock, want %d (nothing sold)", sku, stock[sku], initial[sku])
				}
			}
		}
	}
	return rec
}

var initialStock = map[string]int{"TEA-0001": 100, "TEA-0002": 0, "COF-0001": 50, "EQP-0001": 20}

func TestConcurrentAttemptsAtOneOrder(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "same", Items: []ItemIn{{"TEA-0001", 2}, {"EQP-0001", 1}}, Card: goodCard, Email: "ada@example.com"}
	orders, errs := placeAll(t, s, in, 20)
	paid := 0
	for i := range orders {
		switch {
		case errs[i] == nil && orders[i].Status == StatusPaid:
			paid++
		case isCode(errs[i], wire.CodeConflict) && fn.ReasonOf(errs[i]) == ReasonInProgress:
		default:
			t.Errorf("attempt %d: %+v %v", i, orders[i], errs[i])
		}
	}
	if paid == 0 {
		t.Fatal("no attempt answered paid")
	}
	if rec := s.checkBooks(t, "same", initialStock, map[string]int{"TEA-0001": 2, "EQP-0001": 1}); rec.Status != StatusPaid {
		t.Fatalf("stored %+v", rec)
	}
	if n := s.inv.released("same"); n != 0 {
		t.Errorf("released %d times", n)
	}
	if msgs := s.placedEvents(t); len(msgs) != 1 {
		t.Errorf("%d events", len(msgs))
	}
	// Afterwards every attempt gets the same outcome.
	if o, err := fntest.Invoke[Order](t, s.h, in); err != nil || o.Status != StatusPaid {
		t.Fatalf("after: %+v %v", o, err)
	}
}

// A client retries while the first attempt is still
// reserving. The second attempt must not release the first one's stock.
func TestRetryWhileFirstAttemptRuns(t *testing.T) {
	s := startShop(t)
	s.inv.gate, s.inv.entered = make(chan struct{}), make(chan string, 1)
	in := PlaceOrder{OrderID: "slow", Items: []ItemIn{{"TEA-0001", 1}, {"COF-0001", 1}}, Card: goodCard, Email: "ada@example.com"}
	first := make(chan error, 1)
	go func() {
		o, err := fntest.Invoke[Order](t, s.h, in)
		if err == nil && o.Status != StatusPaid {
			err = fmt.Errorf("first: %+v", o)
		}
		first <- err
	}()
	<-s.inv.entered // the first attempt is half-way through its reserve
	_, errs := placeAll(t, s, in, 5)
	for _, err := range errs {
		if !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonInProgress {
			t.Errorf("second attempt: %v, want 409 being placed", err)
		}
	}
	if n := s.inv.released("slow"); n != 0 {
		t.Fatalf("the second attempt released %d times", n)
	}
	close(s.inv.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	s.checkBooks(t, "slow", initialStock, map[string]int{"TEA-0001": 1, "COF-0001": 1})
}

func TestSameIDOtherBodyConflicts(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "body", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "ada@example.com"}
	if o, err := fntest.Invoke[Order](t, s.h, in); err != nil || o.Status != StatusPaid {
		t.Fatalf("place: %+v %v", o, err)
	}
	for _, other := range []PlaceOrder{
		{OrderID: "body", Items: []ItemIn{{"TEA-0001", 2}}, Card: goodCard, Email: "ada@example.com"},
		{OrderID: "body", Items: []ItemIn{{"TEA-0001", 1}}, Card: "4111111111111111", Email: "ada@example.com"},
		{OrderID: "body", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "bob@example.com"},
		{OrderID: "body", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "ada@example.com", Currency: "GBP"},
	} {
		if _, err := fntest.Invoke[Order](t, s.h, other); !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonMismatch {
			t.Errorf("%+v: %v, want conflict, order_mismatch", other, err)
		}
	}
	// EUR is the default: naming it is the same body.
	in.Currency = "EUR"
	if o, err := fntest.Invoke[Order](t, s.h, in); err != nil || o.Status != StatusPaid {
		t.Fatalf("same body: %+v %v", o, err)
	}
}

// Payments' 409 (the id charged with another amount) reaches the caller
// as 409, the other charge is refunded, and only this attempt's own
// reservation is given back: never failed with a charge.
func TestPaymentsConflictIs409(t *testing.T) {
	s := startShop(t)
	s.pay.charges["dup"] = &fakeCharge{res: chargeResult{Status: "approved", ChargeID: "ch_other"},
		amount: Money{1, "EUR"}, card: goodCard, charged: true}
	_, err := fntest.Invoke[Order](t, s.h, PlaceOrder{OrderID: "dup", Items: []ItemIn{{"EQP-0001", 1}}, Card: goodCard, Email: "a@b.co"})
	if !isCode(err, wire.CodeConflict) {
		t.Fatalf("got %v, want conflict", err)
	}
	if st, stock := s.inv.state("dup"); st != "released" || stock["EQP-0001"] != 20 {
		t.Fatalf("inventory %s %v", st, stock)
	}
	if rec := s.checkBooks(t, "dup", initialStock, map[string]int{"EQP-0001": 1}); rec.Status != StatusFailed {
		t.Fatalf("stored %+v", rec)
	}
	if c := s.pay.charged("dup"); c != "refunded" {
		t.Fatalf("the other charge is %q, want refunded", c)
	}
}

// Payments records the charge after orders stopped waiting: the order may
// end paid or failed, but never failed with a charge, and a retry charges
// at most once.
func TestLateChargeNeverLeavesFailedWithCharge(t *testing.T) {
	s := startShop(t, fn.WithTimeout(300*time.Millisecond))
	s.pay.late.Store(true)
	in := PlaceOrder{OrderID: "late", Items: []ItemIn{{"COF-0001", 2}}, Card: goodCard, Email: "a@b.co"}
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil && !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("got %+v %v", o, err)
	}
	natstest.WaitFor(t, 10*time.Second, "the late charge to be handled", func() bool { return s.pay.lateDone.Load() == 1 })
	rec := s.checkBooks(t, "late", initialStock, map[string]int{"COF-0001": 2})
	t.Logf("first attempt: %s (%s), charge %q", rec.Status, rec.Reason, s.pay.charged("late"))
	s.pay.late.Store(false)
	o, err = fntest.Invoke[Order](t, s.h, in)
	if err != nil || o.Status != StatusPaid {
		t.Fatalf("retry: %+v %v", o, err)
	}
	s.checkBooks(t, "late", initialStock, map[string]int{"COF-0001": 2})
}

// When payments fails unclearly and the charge cannot be checked, the order
// stays pending with its stock held; reconcile finishes it later.
func TestUncheckableChargeStaysPendingThenReconciles(t *testing.T) {
	s := startShop(t)
	s.pay.broken.Store(true)
	s.pay.blind.Store(true)
	in := PlaceOrder{OrderID: "blind", Items: []ItemIn{{"EQP-0001", 3}}, Card: goodCard, Email: "a@b.co"}
	if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("got %v, want unavailable", err)
	}
	if rec := s.stored(t, "blind"); rec.Status != StatusPending {
		t.Fatalf("stored %+v, want pending", rec)
	}
	if st, stock := s.inv.state("blind"); st != "held" || stock["EQP-0001"] != 17 || s.inv.released("blind") != 0 {
		t.Fatalf("inventory %s %v", st, stock)
	}
	// Reconcile cannot tell either: it leaves it.
	ctx := fn.WithConn(context.Background(), s.h.NC)
	if n, err := Reconcile(ctx); n != 0 || err == nil {
		t.Fatalf("blind reconcile: %d %v", n, err)
	}
	s.pay.blind.Store(false)
	if n, err := Reconcile(ctx); n != 1 || err != nil {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	rec := s.checkBooks(t, "blind", initialStock, map[string]int{"EQP-0001": 3})
	if rec.Status != StatusFailed {
		t.Fatalf("stored %+v, want failed (never charged)", rec)
	}
	// The charge is voided for the attempts so far: a late one cannot land.
	if _, err := s.pay.handle(ctx, fakeChargeIn{OrderID: "blind", Card: goodCard, Amount: &Money{3 * 7900, "EUR"}, Attempt: 1}); err == nil {
		t.Fatal("a late charge of attempt 1 went through")
	}
}

// seedPending stores an order as an attempt that died left it: pending,
// lease expired, indexed.
func (s *shop) seedPending(t *testing.T, in PlaceOrder, attempt int64) {
	t.Helper()
	ctx := fn.WithConn(context.Background(), s.h.NC)
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := fn.OpenKV(ctx, PendingBucket)
	if err != nil {
		t.Fatal(err)
	}
	total := Money{Currency: "EUR"}
	var lines []Line
	for _, it := range in.Items {
		p := prices[it.SKU]
		lines = append(lines, Line{SKU: it.SKU, Name: "name of " + it.SKU, Quantity: it.Quantity, UnitPrice: Money{p, "EUR"}, LineTotal: Money{p * int64(it.Quantity), "EUR"}})
		total.Amount += p * int64(it.Quantity)
	}
	now := time.Now().UTC()
	rec := record{Order: Order{OrderID: in.OrderID, Status: StatusPending, Total: total, Items: lines, CreatedAt: now, UpdatedAt: now},
		Email: in.Email, BodyHash: bodyHash(in, "EUR"), Lease: fn.Lease{Token: attempt, Until: now.Add(-time.Second)}}
	data, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, key(in.OrderID), data); err != nil {
		t.Fatal(err)
	}
	if err := indexPending(ctx, idx, in.OrderID); err != nil {
		t.Fatal(err)
	}
}

// A retry whose stock ran out although an earlier attempt charged the card
// refunds it and ends out of stock.
func TestRetryOutOfStockRefunds(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "refund-me", Items: []ItemIn{{"TEA-0002", 1}}, Card: goodCard, Email: "a@b.co"}
	s.seedPending(t, in, 1)
	s.pay.charges["refund-me"] = &fakeCharge{res: chargeResult{Status: "approved", ChargeID: "ch_x"},
		amount: Money{1490, "EUR"}, card: goodCard, charged: true}
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil || o.Status != StatusOutOfStock || o.Reason != ReasonRefunded {
		t.Fatalf("retry: %+v %v", o, err)
	}
	if c := s.pay.charged("refund-me"); c != "refunded" {
		t.Fatalf("charge %q, want refunded", c)
	}
	if s.pay.calls.Load() != 0 {
		t.Fatal("charged again")
	}
}

func TestReconcileFinishesAbandonedOrders(t *testing.T) {
	s := startShop(t)
	charged := PlaceOrder{OrderID: "abandoned-paid", Items: []ItemIn{{"TEA-0001", 4}}, Card: goodCard, Email: "a@b.co"}
	unpaid := PlaceOrder{OrderID: "abandoned-unpaid", Items: []ItemIn{{"COF-0001", 5}}, Card: goodCard, Email: "a@b.co"}
	ctx := fn.WithConn(context.Background(), s.h.NC)
	for _, in := range []PlaceOrder{charged, unpaid} {
		s.seedPending(t, in, 1)
		if _, err := s.inv.handle(ctx, fakeInvIn{Op: "reserve", OrderID: in.OrderID, Items: []ItemIn{{in.Items[0].SKU, in.Items[0].Quantity}}, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	s.pay.charges["abandoned-paid"] = &fakeCharge{res: chargeResult{Status: "approved", ChargeID: "ch_y"},
		amount: Money{4 * 1250, "EUR"}, card: goodCard, charged: true}
	// A live order is left alone.
	live := PlaceOrder{OrderID: "live", Items: []ItemIn{{"EQP-0001", 1}}, Card: goodCard, Email: "a@b.co"}
	s.seedPending(t, live, 1)
	kv, _ := fn.OpenKV(ctx, Bucket)
	if _, err := fn.UpdateJSON(ctx, kv, key("live"), func(r *record, _ bool) error {
		r.Until = time.Now().Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The scheduled input is valid, and the schedule's run finishes both.
	out, err := fntest.Invoke[Order](t, s.h, PlaceOrder{Op: "reconcile"})
	if err != nil || out.Status != StatusReconciled || out.Reconciled != 2 {
		t.Fatalf("reconcile: %+v %v", out, err)
	}
	if rec := s.checkBooks(t, "abandoned-paid", initialStock, map[string]int{"TEA-0001": 4}); rec.Status != StatusPaid {
		t.Fatalf("charged order: %+v", rec)
	}
	if st, _ := s.inv.state("abandoned-paid"); st != "committed" {
		t.Fatalf("charged order's reservation %s", st)
	}
	if rec := s.checkBooks(t, "abandoned-unpaid", initialStock, map[string]int{"COF-0001": 5}); rec.Status != StatusFailed {
		t.Fatalf("unpaid order: %+v", rec)
	}
	if rec := s.stored(t, "live"); rec.Status != StatusPending {
		t.Fatalf("live order: %+v", rec)
	}
	if msgs := s.placedEvents(t); len(msgs) != 1 {
		t.Fatalf("%d events", len(msgs))
	}
	// The paid order's entry went; the failed one's stays (a retry may be
	// about to claim it) until a reconcile finds it older than a lease.
	idx, _ := fn.OpenKV(ctx, PendingBucket)
	if keys, _ := idx.Keys(ctx); fmt.Sprint(keys) != "[abandoned-unpaid live]" {
		t.Fatalf("pending index %v, want [abandoned-unpaid live]", keys)
	}
	if _, err := idx.Put(ctx, "abandoned-unpaid", []byte(time.Now().Add(-2*Lease).Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	if n, err := Reconcile(ctx); n != 0 || err != nil {
		t.Fatalf("second reconcile: %d %v", n, err)
	}
	if keys, _ := idx.Keys(ctx); fmt.Sprint(keys) != "[live]" {
		t.Fatalf("pending index %v, want [live]", keys)
	}
}

// Attempt 1 charges the card, then its commit fails
// (inventory unreachable), so the order stays pending. A retry, and
// reconcile, run while inventory still fails: reserving fails, and the
// order must stay pending (503 "retry later"), never failed with the card
// charged. Once inventory is back, a retry or reconcile finishes it paid,
// or out of stock with the charge refunded.
func TestChargedOrderNeverFailsWhileInventoryFails(t *testing.T) {
	for _, mode := range []string{"unavailable", "unreachable"} {
		for _, end := range []string{"retry", "reconcile", "out-of-stock"} {
			t.Run(mode+"/"+end, func(t *testing.T) {
				s := startShop(t)
				ctx := fn.WithConn(context.Background(), s.h.NC)
				in := PlaceOrder{OrderID: "stuck", Items: []ItemIn{{"EQP-0001", 2}}, Card: goodCard, Email: "a@b.co"}
				qty := map[string]int{"EQP-0001": 2}

				s.inv.failCommit.Store(true)
				if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeUnavailable) {
					t.Fatalf("first attempt: %v, want unavailable", err)
				}
				if rec := s.checkBooks(t, "stuck", initialStock, qty); rec.Status != StatusPending || s.pay.charged("stuck") != "approved" {
					t.Fatalf("after attempt 1: %s (%s), charge %q", rec.Status, rec.Reason, s.pay.charged("stuck"))
				}

				// Inventory fails now for reserve too.
				restart := func() { s.inv.down.Store(false) }
				if mode == "unreachable" {
					restart = s.stopInventory(t)
				} else {
					s.inv.down.Store(true)
				}
				s.inv.failCommit.Store(false)
				retry := func(i int) {
					t.Helper()
					_, err := fntest.Invoke[Order](t, s.h, in)
					if !isCode(err, wire.CodeUnavailable) || fn.ReasonOf(err) != ReasonPending {
						t.Errorf("retry %d: %v, want unavailable, order_pending", i, err)
					}
					if rec := s.checkBooks(t, "stuck", initialStock, qty); rec.Status != StatusPending {
						t.Fatalf("retry %d left it %s (%s) with the card %s", i, rec.Status, rec.Reason, s.pay.charged("stuck"))
					}
				}
				reconcile := func() {
					t.Helper()
					if n, err := Reconcile(ctx); n != 0 || err == nil {
						t.Errorf("reconcile while inventory fails: %d %v", n, err)
					}
					if rec := s.checkBooks(t, "stuck", initialStock, qty); rec.Status != StatusPending {
						t.Fatalf("reconcile left it %s (%s) with the card %s", rec.Status, rec.Reason, s.pay.charged("stuck"))
					}
				}
				if end == "reconcile" {
					reconcile()
					retry(0)
				} else {
					retry(0)
					retry(1)
					reconcile()
				}
				if s.pay.charged("stuck") != "approved" || s.pay.calls.Load() != 1 {
					t.Fatalf("charge %q after %d charge calls", s.pay.charged("stuck"), s.pay.calls.Load())
				}

				if end == "out-of-stock" {
					// Meanwhile the reservation was swept and the stock sold.
					s.inv.mu.Lock()
					s.inv.giveBack(s.inv.res["stuck"])
					s.inv.res["stuck"].state = "released"
					s.inv.stock["EQP-0001"] = 1
					s.inv.mu.Unlock()
				}
				restart()

				var o Order
				var err error
				if end == "reconcile" {
					var n int
					if n, err = Reconcile(ctx); n != 1 || err != nil {
						t.Fatalf("reconcile: %d %v", n, err)
					}
					o = s.stored(t, "stuck").Order
				} else {
					o, err = fntest.Invoke[Order](t, s.h, in)
				}
				if err != nil {
					t.Fatal(err)
				}
				if end == "out-of-stock" {
					if o.Status != StatusOutOfStock || o.Reason != ReasonRefunded || s.pay.charged("stuck") != "refunded" {
						t.Fatalf("got %+v, charge %q; want out_of_stock, refunded", o, s.pay.charged("stuck"))
					}
					if _, stock := s.inv.state("stuck"); stock["EQP-0001"] != 1 {
						t.Fatalf("stock %v", stock)
					}
				} else {
					if o.Status != StatusPaid {
						t.Fatalf("got %+v, want paid", o)
					}
					s.checkBooks(t, "stuck", initialStock, qty)
					if st, _ := s.inv.state("stuck"); st != "committed" {
						t.Fatalf("reservation %s, want committed", st)
					}
					if msgs := s.placedEvents(t); len(msgs) != 1 {
						t.Fatalf("%d events", len(msgs))
					}
				}
				if s.pay.made.Load() != 1 {
					t.Fatalf("%d charges made, want 1", s.pay.made.Load())
				}
				// The entries of the attempts that gave up are dropped by the
				// next reconcile, which finds nothing to do.
				if n, err := Reconcile(ctx); n != 0 || err != nil {
					t.Fatalf("reconcile after: %d %v", n, err)
				}
				idx, _ := fn.OpenKV(ctx, PendingBucket)
				if keys, _ := idx.Keys(ctx); len(keys) != 0 {
					t.Fatalf("pending index %v, want empty", keys)
				}
			})
		}
	}
}

// The paid() path: the commit finds the reservation released (swept), and
// reserving again fails: the charged order stays pending, and a retry
// finishes it paid once inventory is back.
func TestPaidOrderWhoseReservationWasSweptStaysPending(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "swept", Items: []ItemIn{{"COF-0001", 3}}, Card: goodCard, Email: "a@b.co"}
	qty := map[string]int{"COF-0001": 3}
	s.inv.releaseOnCommit.Store(true)
	_, err := fntest.Invoke[Order](t, s.h, in)
	if !isCode(err, wire.CodeUnavailable) || fn.ReasonOf(err) != ReasonPending {
		t.Fatalf("got %v, want unavailable, order_pending", err)
	}
	if rec := s.checkBooks(t, "swept", initialStock, qty); rec.Status != StatusPending || s.pay.charged("swept") != "approved" {
		t.Fatalf("stored %s (%s), charge %q", rec.Status, rec.Reason, s.pay.charged("swept"))
	}
	s.inv.down.Store(false)
	o, err := fntest.Invoke[Order](t, s.h, in)
	if err != nil || o.Status != StatusPaid {
		t.Fatalf("retry: %+v %v", o, err)
	}
	s.checkBooks(t, "swept", initialStock, qty)
	if s.pay.made.Load() != 1 {
		t.Fatalf("%d charges made, want 1", s.pay.made.Load())
	}
}

// A retry whose reserve fails when no charge exists (binding) still fails
// the order, and gives back what it took.
func TestRetryWithoutChargeFailsOnInventoryError(t *testing.T) {
	s := startShop(t)
	in := PlaceOrder{OrderID: "nocharge", Items: []ItemIn{{"TEA-0001", 1}}, Card: goodCard, Email: "a@b.co"}
	s.seedPending(t, in, 1)
	s.inv.down.Store(true)
	if _, err := fntest.Invoke[Order](t, s.h, in); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("got %v, want unavailable", err)
	}
	if rec := s.checkBooks(t, "nocharge", initialStock, map[string]int{"TEA-0001": 1}); rec.Status != StatusFailed {
		t.Fatalf("stored %+v, want failed", rec)
	}
	// The status was binding: attempt 1 cannot charge late.
	ctx := fn.WithConn(context.Background(), s.h.NC)
	if _, err := s.pay.handle(ctx, fakeChargeIn{OrderID: "nocharge", Card: goodCard, Amount: &Money{1250, "EUR"}, Attempt: 1}); err == nil {
		t.Fatal("a late charge of attempt 1 went through")
	}
}
