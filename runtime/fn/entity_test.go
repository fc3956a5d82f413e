package fn_test

import (
	"context"
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
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

type itemAdded struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type itemRemoved struct {
	SKU string `json:"sku"`
}

type cartState struct {
	Items  map[string]int `json:"items"`
	Events int            `json:"events"`
}

func foldCart(s cartState, ev fn.Event) (cartState, error) {
	if s.Items == nil {
		s.Items = map[string]int{}
	}
	s.Events++
	if a, ok := fn.EventAs[itemAdded](ev); ok {
		s.Items[a.SKU] += a.Qty
	} else if r, ok := fn.EventAs[itemRemoved](ev); ok {
		delete(s.Items, r.SKU)
	} else {
		return s, fmt.Errorf("unknown event type %q", ev.Type)
	}
	return s, nil
}

var cartStream = fn.Stream{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true,
	EventTypes: []fn.EventType{fn.EventOf[itemAdded](), fn.EventOf[itemRemoved]()}}

// entityServer runs a server with the CARTS entity stream provisioned as
// the platform does it.
func entityServer(t *testing.T) (*nats.Conn, context.Context) {
	t.Helper()
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	js, _ := jetstream.New(nc)
	p, err := provision.New(context.Background(), js, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := &registry.Spec{Name: "carts", Streams: []registry.Stream{{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true}}}
	if err := p.Apply(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	return nc, fn.WithConn(context.Background(), nc)
}

// TestAppendExpectVersion: an append that expects a version conflicts
// once someone else appended, with the error a caller sees as 409.
func TestAppendExpectVersion(t *testing.T) {
	_, ctx := entityServer(t)
	v1, err := fn.Append(ctx, "cart.c1", itemAdded{SKU: "tea", Qty: 1}, fn.ExpectVersion(0))
	if err != nil || v1 == 0 {
		t.Fatalf("first append: %d %v", v1, err)
	}
	// Another cart's events do not move this one's version.
	if _, err := fn.Append(ctx, "cart.c2", itemAdded{SKU: "cup", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = fn.Append(ctx, "cart.c1", itemAdded{SKU: "tea", Qty: 1}, fn.ExpectVersion(0))
	var we *fn.Error
	if !errors.Is(err, fn.ErrVersionConflict) || !errors.As(err, &we) || we.Code != fn.CodeConflict || fn.ReasonOf(err) != fn.ReasonVersionConflict {
		t.Fatalf("stale append: %v", err)
	}
	v2, err := fn.Append(ctx, "cart.c1", itemRemoved{SKU: "tea"}, fn.ExpectVersion(v1))
	if err != nil || v2 <= v1 {
		t.Fatalf("append at the current version: %d %v", v2, err)
	}
	st, v, err := fn.Load(ctx, "cart.c1", foldCart)
	if err != nil || v != v2 || st.Events != 2 || len(st.Items) != 0 {
		t.Fatalf("load: %+v %d %v", st, v, err)
	}
	// An entity without events: zero state, version 0, which an append
	// may expect.
	st, v, err = fn.Load(ctx, "cart.none", foldCart)
	if err != nil || v != 0 || st.Events != 0 {
		t.Fatalf("empty entity: %+v %d %v", st, v, err)
	}
	// The same append id twice is one event.
	for range 2 {
		if _, err := fn.Append(ctx, "cart.c3", itemAdded{SKU: "pot", Qty: 1}, fn.WithAppendID("c3-1")); err != nil {
			t.Fatal(err)
		}
	}
	if st, _, _ := fn.Load(ctx, "cart.c3", foldCart); st.Events != 1 {
		t.Fatalf("duplicate append kept: %+v", st)
	}
	// A command retried with the same append id appends once, and its
	// answer is what is stored.
	add := func(c cartState) (any, error) { return itemAdded{SKU: "mug", Qty: 1}, nil }
	for range 2 {
		st, v, err := fn.Update(ctx, "cart.c4", foldCart, add, fn.AppendWith(fn.WithAppendID("cmd-1")))
		if err != nil || st.Events != 1 || st.Items["mug"] != 1 || v == 0 {
			t.Fatalf("retried command: %+v %d %v", st, v, err)
		}
	}
	// An append id is the entity's: the same id on another entity is
	// another event.
	if _, err := fn.Append(ctx, "cart.c5", itemAdded{SKU: "mug", Qty: 1}, fn.WithAppendID("cmd-1")); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := fn.Load(ctx, "cart.c5", foldCart); st.Events != 1 {
		t.Fatalf("an append id of another entity dropped this one's event: %+v", st)
	}
	// Update folds the event as stored, its type name included.
	type renamed struct{ N int }
	byName := func(n int, ev fn.Event) (int, error) {
		if ev.Type != "counter.bumped" {
			return n, fmt.Errorf("unknown type %s", ev.Type)
		}
		return n + 1, nil
	}
	if n, _, err := fn.Update(ctx, "cart.c6", byName, func(int) (any, error) { return renamed{1}, nil },
		fn.AppendWith(fn.WithEventType("counter.bumped"))); err != nil || n != 1 {
		t.Fatalf("update with a type name: %d %v", n, err)
	}
	// Bad subjects and untyped events are refused before anything is sent.
	for _, subj := range []string{"cart.*", "cart.>", "", "cart..x", "cart x"} {
		if _, err := fn.Append(ctx, subj, itemAdded{}); err == nil {
			t.Fatalf("append to %q accepted", subj)
		}
	}
	if _, err := fn.Append(ctx, "cart.c1", map[string]int{"x": 1}); err == nil {
		t.Fatal("an event without a type name was accepted")
	}
}

// TestLoadBatchesAndSnapshots: a long entity loads across several batches,
// and a snapshot makes the next load fold only the events after it.
func TestLoadBatchesAndSnapshots(t *testing.T) {
	nc, ctx := entityServer(t)
	js, _ := jetstream.New(nc)
	const n = 2500 // more than two batches
	for k := range n {
		if _, err := js.PublishAsync("cart.long", fmt.Appendf(nil, `{"sku":"s%d","qty":1}`, k%7),
			jetstream.WithMsgID(fmt.Sprint(k))); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	folds := 0
	count := func(s cartState, ev fn.Event) (cartState, error) {
		folds++
		if ev.Seq == 0 || ev.Time.IsZero() || ev.Subject != "cart.long" {
			return s, fmt.Errorf("event without its metadata: %+v", ev)
		}
		s.Events++
		return s, nil
	}
	st, v, err := fn.Load(ctx, "cart.long", count, fn.Snapshot(100))
	if err != nil || st.Events != n || folds != n {
		t.Fatalf("load: %+v folds %d %v", st, folds, err)
	}
	if _, err := fn.Append(ctx, "cart.long", itemAdded{SKU: "x", Qty: 1}, fn.ExpectVersion(v)); err != nil {
		t.Fatal(err)
	}
	folds = 0
	st, _, err = fn.Load(ctx, "cart.long", count, fn.Snapshot(100))
	if err != nil || st.Events != n+1 || folds != 1 {
		t.Fatalf("load from the snapshot: %+v folds %d %v", st, folds, err)
	}
	// Another state type does not read this snapshot.
	type other struct{ Events int }
	folds = 0
	o, _, err := fn.Load(ctx, "cart.long", func(s other, ev fn.Event) (other, error) { folds++; s.Events++; return s, nil }, fn.Snapshot(100))
	if err != nil || o.Events != n+1 || folds != n+1 {
		t.Fatalf("another state type: %+v folds %d %v", o, folds, err)
	}
	// A fold's error stops the load.
	boom := errors.New("boom")
	if _, _, err := fn.Load(ctx, "cart.long", func(s cartState, ev fn.Event) (cartState, error) { return s, boom }); !errors.Is(err, boom) {
		t.Fatalf("fold error: %v", err)
	}
}

type addReq struct {
	Cart string `json:"cart"`
	SKU  string `json:"sku"`
}

type addResp struct {
	Version  uint64 `json:"version"`
	Attempts int    `json:"attempts"`
}

// TestConcurrentAppendsFromInstances: instances of one function add to
// one cart at once; every add lands exactly once, conflicts retried.
func TestConcurrentAppendsFromInstances(t *testing.T) {
	nc, _ := entityServer(t)
	var conflicts atomic.Int64
	add := fn.Handle(func(ctx context.Context, r addReq) (addResp, error) {
		attempts := 0
		_, v, err := fn.Update(ctx, "cart."+r.Cart, foldCart, func(s cartState) (any, error) {
			if attempts++; attempts > 1 {
				conflicts.Add(1)
			}
			if s.Items[r.SKU] > 0 {
				return nil, fn.WithReason(fn.Errorf(fn.CodeConflict, "%s is in the cart already", r.SKU), "in_cart")
			}
			return itemAdded{SKU: r.SKU, Qty: 1}, nil
		})
		return addResp{Version: v, Attempts: attempts}, err
	}, fn.WithTimeout(30*time.Second))
	for range 3 {
		startFn(t, nc, fn.Config{Name: "cart", Streams: []fn.Stream{cartStream}}, add)
	}
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range n {
		wg.Go(func() {
			_, err := fn.Invoke[addResp](fn.WithConn(context.Background(), nc), "cart", addReq{Cart: "shared", SKU: fmt.Sprintf("s%d", k)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := fn.Load(fn.WithConn(context.Background(), nc), "cart.shared", foldCart)
	if err != nil || st.Events != n || len(st.Items) != n {
		t.Fatalf("after %d concurrent adds: %d events, %d items, %v", n, st.Events, len(st.Items), err)
	}
	t.Logf("%d adds, %d conflicts retried", n, conflicts.Load())
	// decide's refusal reaches the caller as it was made.
	_, err = fn.Invoke[addResp](fn.WithConn(context.Background(), nc), "cart", addReq{Cart: "shared", SKU: "s1"})
	if fn.ReasonOf(err) != "in_cart" {
		t.Fatalf("refused command: %v", err)
	}
}

// TestEntityUndeclared: a handler may append to and load only the entity
// streams its function declares.
func TestEntityUndeclared(t *testing.T) {
	nc, _ := entityServer(t)
	h := fn.Handle(func(ctx context.Context, r addReq) (addResp, error) {
		_, err := fn.Append(ctx, "cart."+r.Cart, itemAdded{SKU: r.SKU, Qty: 1})
		if !errors.Is(err, fn.ErrUndeclared) {
			return addResp{}, fmt.Errorf("append: %v", err)
		}
		_, _, err = fn.Load(ctx, "cart."+r.Cart, foldCart)
		if !errors.Is(err, fn.ErrUndeclared) {
			return addResp{}, fmt.Errorf("load: %v", err)
		}
		return addResp{}, nil
	})
	startFn(t, nc, fn.Config{Name: "nosy"}, h)
	if _, err := fn.Invoke[addResp](fn.WithConn(context.Background(), nc), "nosy", addReq{Cart: "c1", SKU: "x"}); err != nil {
		t.Fatal(err)
	}
	// With EventTypes declared, only those types may be appended: the
	// deploy check could not see the others.
	type giftWrapped struct{ SKU string }
	typed := fn.Handle(func(ctx context.Context, r addReq) (addResp, error) {
		if _, err := fn.Append(ctx, "cart."+r.Cart, giftWrapped{SKU: r.SKU}); !errors.Is(err, fn.ErrUndeclared) {
			return addResp{}, fmt.Errorf("undeclared type: %v", err)
		}
		v, err := fn.Append(ctx, "cart."+r.Cart, itemAdded{SKU: r.SKU, Qty: 1})
		return addResp{Version: v}, err
	})
	startFn(t, nc, fn.Config{Name: "typed", Streams: []fn.Stream{cartStream}}, typed)
	if _, err := fn.Invoke[addResp](fn.WithConn(context.Background(), nc), "typed", addReq{Cart: "c1", SKU: "x"}); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotsPerFunctionAndVersion: two functions folding one entity
// differently keep snapshots of their own, and a new fold version ignores
// the old snapshot.
func TestSnapshotsPerFunctionAndVersion(t *testing.T) {
	nc, ctx := entityServer(t)
	for range 5 {
		if _, err := fn.Append(ctx, "cart.s1", itemAdded{SKU: "tea", Qty: 10}); err != nil {
			t.Fatal(err)
		}
	}
	var folds atomic.Int64
	count := func(n int, ev fn.Event) (int, error) { folds.Add(1); return n + 1, nil }
	sum := func(n int, ev fn.Event) (int, error) {
		folds.Add(1)
		a, _ := fn.EventAs[itemAdded](ev)
		return n + a.Qty, nil
	}
	fold := map[string]func(int, fn.Event) (int, error){"counter": count, "summer": sum}
	for _, name := range []string{"counter", "summer"} {
		f := fold[name]
		startFn(t, nc, fn.Config{Name: name, Streams: []fn.Stream{cartStream}}, fn.Handle(func(ctx context.Context, in addReq) (int, error) {
			n, _, err := fn.Load(ctx, "cart.s1", f, fn.Snapshot(2), fn.SnapshotVersion(in.SKU))
			return n, err
		}))
	}
	call := func(name, version string) int {
		t.Helper()
		n, err := fn.Invoke[int](ctx, name, addReq{Cart: "s1", SKU: version})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for range 2 { // the second load reads the snapshot the first kept
		if c, s := call("counter", "v1"), call("summer", "v1"); c != 5 || s != 50 {
			t.Fatalf("counter %d, summer %d: want 5 and 50", c, s)
		}
	}
	js, _ := jetstream.New(nc)
	kv, _ := js.KeyValue(context.Background(), registry.SnapshotBucket("CARTS"))
	for _, key := range []string{fn.SnapshotKey("counter", "cart.s1"), fn.SnapshotKey("summer", "cart.s1")} {
		if _, err := kv.Get(context.Background(), key); err != nil {
			t.Fatalf("snapshot %s: %v", key, err)
		}
	}
	// From its snapshot a load folds nothing; with another fold version it
	// folds every event again.
	folds.Store(0)
	if s := call("summer", "v1"); s != 50 || folds.Load() != 0 {
		t.Fatalf("summer v1 from its snapshot: %d, %d folds", s, folds.Load())
	}
	if s := call("summer", "v2"); s != 50 || folds.Load() != 5 {
		t.Fatalf("summer v2: %d, %d folds", s, folds.Load())
	}
}
