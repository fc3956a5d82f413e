package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func line(sku string, qty int, amount int64, cur string) Line {
	return Line{SKU: sku, Name: sku, Quantity: qty, UnitPrice: Money{amount / int64(qty), cur}, LineTotal: Money{amount, cur}}
}

// events are four paid orders over two days (UTC) and three currencies;
// o-2 lists a SKU twice, o-4 was placed on 2 March in Paris, still 1 March
// in UTC.
var events = []OrderPlaced{
	{OrderID: "o-1", Email: "a@example.com", Total: Money{4390, "EUR"}, PlacedAt: at("2026-03-01T09:00:00Z"),
		Items: []Line{line("TEA-0001", 2, 2500, "EUR"), line("COF-0001", 1, 1890, "EUR")}},
	{OrderID: "o-2", Email: "b@example.com", Total: Money{2700, "USD"}, PlacedAt: at("2026-03-01T10:00:00Z"),
		Items: []Line{line("TEA-0001", 1, 1350, "USD"), line("TEA-0001", 1, 1350, "USD")}},
	{OrderID: "o-3", Email: "c@example.com", Total: Money{7900, "EUR"}, PlacedAt: at("2026-03-02T08:00:00Z"),
		Items: []Line{line("EQP-0001", 1, 7900, "EUR")}},
	{OrderID: "o-4", Email: "d@example.com", Total: Money{3214, "GBP"}, PlacedAt: at("2026-03-02T00:30:00+01:00"),
		Items: []Line{line("COF-0001", 2, 3214, "GBP")}},
}

const want = `{"days":[` +
	`{"day":"2026-03-01","revenue":[{"amount":4390,"currency":"EUR"},{"amount":3214,"currency":"GBP"},{"amount":2700,"currency":"USD"}],"skus":[` +
	`{"sku":"COF-0001","quantity":3,"orders":2,"revenue":[{"amount":1890,"currency":"EUR"},{"amount":3214,"currency":"GBP"}]},` +
	`{"sku":"TEA-0001","quantity":4,"orders":2,"revenue":[{"amount":2500,"currency":"EUR"},{"amount":2700,"currency":"USD"}]}]},` +
	`{"day":"2026-03-02","revenue":[{"amount":7900,"currency":"EUR"}],"skus":[` +
	`{"sku":"EQP-0001","quantity":1,"orders":1,"revenue":[{"amount":7900,"currency":"EUR"}]}]}]}`

// project starts sales, publishes the events and waits until it has
// handled them.
func project(t *testing.T) (*fntest.Harness, *natstest.Buffer, context.Context) {
	t.Helper()
	logs := &natstest.Buffer{}
	cfg := Config
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h := fntest.Start(t, cfg, fn.Handle(Sales))
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), h.NC), 30*time.Second)
	t.Cleanup(cancel)
	for _, ev := range events {
		if err := fn.Publish(ctx, SubjectPlaced, ev, fn.WithEventID(ev.OrderID)); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t, h, uint64(len(events)))
	return h, logs, ctx
}

// caughtUp waits until sales' subscription has handled every event up to
// stream sequence last.
func caughtUp(t *testing.T, h *fntest.Harness, last uint64) {
	t.Helper()
	js, _ := jetstream.New(h.NC)
	natstest.WaitFor(t, 20*time.Second, "sales to handle every event", func() bool {
		c, err := js.Consumer(context.Background(), "SHOP_ORDERS", wire.EventConsumer("sales", SubjectPlaced))
		if err != nil {
			return false
		}
		ci, err := c.Info(context.Background())
		return err == nil && ci.AckFloor.Stream == last && ci.NumPending == 0 && ci.NumAckPending == 0
	})
}

func report(t *testing.T, h *fntest.Harness, q Query) string {
	t.Helper()
	rep, err := fntest.Invoke[json.RawMessage](t, h, q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	return string(rep)
}

func TestProjection(t *testing.T) {
	h, _, _ := project(t)
	if got := report(t, h, Query{}); got != want {
		t.Fatalf("every day:\n%s\nwant\n%s", got, want)
	}
	var all Report
	_ = json.Unmarshal([]byte(want), &all)
	one := func(d Day) string { b, _ := json.Marshal(Report{Days: []Day{d}}); return string(b) }
	if got := report(t, h, Query{Day: "2026-03-02"}); got != one(all.Days[1]) {
		t.Fatalf("2 March: %s", got)
	}
	tea := all.Days[0]
	tea.SKUs, tea.Revenue = tea.SKUs[1:], tea.SKUs[1].Revenue
	if got := report(t, h, Query{Day: "2026-03-01", SKU: "TEA-0001"}); got != one(tea) {
		t.Fatalf("tea on 1 March: %s, want %s", got, one(tea))
	}
	if got := report(t, h, Query{Day: "2026-03-03"}); got != `{"days":[]}` {
		t.Fatalf("a day without sales: %s", got)
	}
	for _, day := range []string{"2026-02-30", "1 March", "2026-03-01T00:00:00Z"} {
		_, err := fntest.Invoke[Report](t, h, Query{Day: day})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeInvalidArgument || we.Errors[0].Pointer != "/day" {
			t.Errorf("day %q: %v, want invalid_argument at /day", day, err)
		}
	}
}

// entries reads the projection: every key's value and revision.
func entries(t *testing.T, ctx context.Context, h *fntest.Harness) map[string]jetstream.KeyValueEntry {
	t.Helper()
	js, _ := jetstream.New(h.NC)
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]jetstream.KeyValueEntry{}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = e
	}
	return out
}

func replay(t *testing.T, ctx context.Context, h *fntest.Harness) {
	t.Helper()
	js, _ := jetstream.New(h.NC)
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := reg.Get(ctx, "sales")
	if err != nil {
		t.Fatal(err)
	}
	r, err := provision.Replay(ctx, js, spec, SubjectPlaced, registry.EventStart{All: true})
	if err != nil || len(r) != 1 || r[0].Pending != uint64(len(events)) {
		t.Fatalf("replay: %+v %v", r, err)
	}
	caughtUp(t, h, uint64(len(events)))
}

// TestReplayIsIdempotent: a replay of every event writes nothing that is
// applied already (the revisions stay), and rebuilds what is gone, as it
// was.
func TestReplayIsIdempotent(t *testing.T) {
	h, logs, ctx := project(t)
	before := entries(t, ctx, h)
	if len(before) != 3 {
		t.Fatalf("%d tallies, want 3", len(before))
	}
	replay(t, ctx, h)
	after := entries(t, ctx, h)
	for k, e := range before {
		if after[k].Revision() != e.Revision() {
			t.Errorf("%s rewritten by the replay: revision %d, was %d", k, after[k].Revision(), e.Revision())
		}
	}
	if n := strings.Count(logs.String(), "event applied already; skipped"); n != len(events) {
		t.Errorf("%d events skipped, want %d", n, len(events))
	}
	// A lost tally comes back as it was; the others stay.
	js, _ := jetstream.New(h.NC)
	kv, _ := js.KeyValue(ctx, Bucket)
	const lost = "sales.2026-03-01.COF-0001"
	if err := kv.Delete(ctx, lost); err != nil {
		t.Fatal(err)
	}
	replay(t, ctx, h)
	after = entries(t, ctx, h)
	for k, e := range before {
		switch {
		case string(after[k].Value()) != string(e.Value()):
			t.Errorf("%s after the replay: %s, was %s", k, after[k].Value(), e.Value())
		case k == lost && after[k].Revision() == e.Revision():
			t.Errorf("%s was not written again", k)
		case k != lost && after[k].Revision() != e.Revision():
			t.Errorf("%s rewritten by the replay", k)
		}
	}
	if got := report(t, h, Query{}); got != want {
		t.Fatalf("after the replays:\n%s\nwant\n%s", got, want)
	}
}
