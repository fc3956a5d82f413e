package fn_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

type placed struct {
	Order string `json:"order"`
	Cents int    `json:"cents" jsonschema:"minimum=0"`
}

var ordersStream = []fn.Stream{{Name: "ORDERS", Subjects: []string{"orders.>"}}}

// TestEvents: every subscribing function gets every event once, spread
// over its instances; fn.Publish and a plain publish both trigger them.
func TestEvents(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string][]string{} // function -> orders
	handler := func(name string) fn.Subscription {
		return fn.On("orders.placed", func(ctx context.Context, ev placed) error {
			mu.Lock()
			seen[name] = append(seen[name], ev.Order)
			mu.Unlock()
			return nil
		})
	}
	for _, name := range []string{"notify", "notify", "ledger"} { // two instances of notify
		startFn(t, nc, fn.Config{Name: name, Streams: ordersStream, Events: []fn.Subscription{handler(name)}}, fn.Handle(double))
	}
	pctx := fn.WithConn(ctx, nc)
	for _, o := range []string{"o1", "o2"} {
		if err := fn.Publish(pctx, "orders.placed", placed{Order: o, Cents: 100}); err != nil {
			t.Fatal(err)
		}
	}
	// The same event id twice is one event.
	for range 2 {
		if err := fn.Publish(pctx, "orders.placed", placed{Order: "o3", Cents: 100}, fn.WithEventID("order-o3")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("orders.placed", []byte(`{"order":"o4","cents":5}`)); err != nil { // plain NATS
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "every function to see every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["notify"]) >= 4 && len(seen["ledger"]) >= 4
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen["notify"]) != 4 || len(seen["ledger"]) != 4 {
		t.Fatalf("each function must get each event once: %v", seen)
	}
}

func TestEventRetriesDeadLettersAndReplay(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx := context.Background()
	var broken atomic.Bool
	broken.Store(true)
	var calls, handled atomic.Int64
	var metas sync.Map // delivery → fn.EventInfo
	startFn(t, nc, fn.Config{Name: "notify", Streams: ordersStream, Events: []fn.Subscription{
		fn.On("orders.placed", func(ctx context.Context, ev placed) error {
			calls.Add(1)
			meta, _ := fn.EventMeta(ctx)
			if broken.Load() {
				metas.Store(calls.Load(), meta)
				return errors.New("mail server down")
			}
			metas.Store("replayed", meta)
			handled.Add(1)
			return nil
		}),
	}}, fn.Handle(double, fn.WithRetry(3, 5*time.Millisecond)))
	if err := fn.Publish(fn.WithConn(ctx, nc), "orders.placed", placed{Order: "o9", Cents: 1}); err != nil {
		t.Fatal(err)
	}
	store, _ := openStore(t, nc)
	var letters []invocation.DeadLetter
	natstest.WaitFor(t, 10*time.Second, "the event to be dead-lettered", func() bool {
		letters, _ = store.DeadLetters(ctx, "notify", 0)
		return len(letters) == 1
	})
	if calls.Load() != 3 || letters[0].Attempts != 3 {
		t.Fatalf("%d calls, dead letter %+v", calls.Load(), letters[0])
	}
	broken.Store(false)
	if _, err := store.Replay(ctx, letters[0].ID); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the replayed event to be handled", func() bool { return handled.Load() == 1 })
	// Each delivery tells the handler which event it is; the replay of
	// the dead letter, which came through the async queue, does not.
	first, _ := metas.Load(int64(1))
	third, _ := metas.Load(int64(3))
	replayed, _ := metas.Load("replayed")
	f, th, r := first.(fn.EventInfo), third.(fn.EventInfo), replayed.(fn.EventInfo)
	if f.Seq == 0 || f.Stream != "ORDERS" || f.Subject != "orders.placed" || f.Delivery != 1 || th.Delivery != 3 || th.Seq != f.Seq ||
		r != (fn.EventInfo{}) {
		t.Fatalf("event meta: first %+v, third %+v, replayed %+v", f, th, r)
	}
	// An event that does not fit the schema is dead-lettered at once.
	if err := nc.Publish("orders.placed", []byte(`{"order":"bad","cents":-1}`)); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the invalid event in the DLQ", func() bool {
		letters, _ = store.DeadLetters(ctx, "notify", 0)
		return len(letters) == 1 && letters[0].Error.Errors[0].Pointer == "/cents"
	})
}
