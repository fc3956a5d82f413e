package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func TestOneNotificationPerOrder(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Get))
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), h.NC), 20*time.Second)
	defer cancel()

	if _, err := fntest.Invoke[Notification](t, h, Query{OrderID: "o-1"}); !isCode(err, wire.CodeNotFound) {
		t.Fatalf("before: %v, want not_found", err)
	}
	ev := OrderPlaced{OrderID: "o-1", Email: "ada@example.com", Total: Money{2540, "EUR"},
		Items:    []Line{{SKU: "TEA-0001", Name: "Assam", Quantity: 2, UnitPrice: Money{1250, "EUR"}, LineTotal: Money{2500, "EUR"}}},
		PlacedAt: time.Now().UTC()}
	// Published twice under different ids: the stream keeps both, and
	// notify sees both.
	for _, id := range []string{"a", "b"} {
		if err := fn.Publish(ctx, "orders.placed", ev, fn.WithEventID(id)); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(h.NC)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "both events handled", func() bool {
		st, err := js.Stream(ctx, "SHOP_ORDERS")
		if err != nil {
			return false
		}
		lister := st.ListConsumers(ctx)
		for ci := range lister.Info() {
			if ci.AckFloor.Stream == 2 && ci.NumAckPending == 0 && ci.NumPending == 0 {
				return true
			}
		}
		return false
	})
	n, err := fntest.Invoke[Notification](t, h, Query{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Email != "ada@example.com" || n.Message != "Order o-1 is paid: 25.40 EUR" {
		t.Fatalf("notification %+v", n)
	}
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v, want one notification", keys, err)
	}
	_, rev, _ := kv.Get(ctx, keys[0])
	if rev != 1 {
		t.Fatalf("notification written %d times", rev)
	}
}

func TestFormatMoney(t *testing.T) {
	for m, want := range map[Money]string{{5, "EUR"}: "0.05 EUR", {123456, "GBP"}: "1234.56 GBP", {0, "USD"}: "0.00 USD"} {
		if got := FormatMoney(m); got != want {
			t.Errorf("%v: %q, want %q", m, got, want)
		}
	}
}

func isCode(err error, code wire.Code) bool {
	we, ok := err.(*wire.Error)
	return ok && we.Code == code
}

// An event whose order id is not an order id fails as invalid_argument
// (and is dead-lettered, not retried): no notification is recorded.
func TestBadOrderIDIsRefused(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Get))
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), h.NC), 20*time.Second)
	defer cancel()
	for _, id := range []string{"Bad_ID", "a.b", "-x"} {
		ev := OrderPlaced{OrderID: id, Email: "ada@example.com", Total: Money{100, "EUR"}, Items: []Line{}, PlacedAt: time.Now().UTC()}
		if err := fn.Publish(ctx, "orders.placed", ev, fn.WithEventID("bad-"+id)); err != nil {
			t.Fatal(err)
		}
		if _, err := fntest.Invoke[Notification](t, h, Query{OrderID: id}); !isCode(err, wire.CodeInvalidArgument) {
			t.Errorf("get %q: %v, want invalid_argument", id, err)
		}
	}
	js, err := jetstream.New(h.NC)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the events to be handled", func() bool {
		st, err := js.Stream(ctx, "SHOP_ORDERS")
		if err != nil {
			return false
		}
		for ci := range st.ListConsumers(ctx).Info() {
			if ci.AckFloor.Stream == 3 && ci.NumAckPending == 0 && ci.NumPending == 0 {
				return true
			}
		}
		return false
	})
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("keys %v %v, want none", keys, err)
	}
}
