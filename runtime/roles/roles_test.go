package roles_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type order struct {
	N int `json:"n"`
}

type placed struct {
	N int `json:"n"`
}

// The functions under test, with their declarations: orders calls
// payments, publishes orders.placed, keeps a counter in a bucket and runs
// on a schedule; notify consumes orders.placed.
var (
	ordersCfg = fn.Config{Name: "orders", Calls: []string{"payments"}, Publishes: []string{"orders.placed"},
		Buckets: []string{"orders_kv"}, Streams: []fn.Stream{{Name: "ORDERS", Subjects: []string{"orders.>"}}},
		Schedules: []fn.Schedule{{Cron: "@every 1s", Input: order{N: 1000}}}}
	paymentsCfg = fn.Config{Name: "payments"}
)

// specOf is the spec the platform computes rights from; the test writes
// the declarations out as an operator reading the manifest would.
func specOf(cfg fn.Config, events ...string) *registry.Spec {
	return &registry.Spec{Name: cfg.Name, Calls: cfg.Calls, Publishes: cfg.Publishes, Buckets: cfg.Buckets, Events: events}
}

func user(name string, r *roles.Rights) *natsserver.User {
	u := &natsserver.User{Username: name, Password: name + "-secret"}
	if r != nil {
		u.Permissions = &natsserver.Permissions{
			Publish:   &natsserver.SubjectPermission{Allow: r.Publish},
			Subscribe: &natsserver.SubjectPermission{Allow: r.Subscribe},
		}
		if r.Responses {
			u.Permissions.Response = &natsserver.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
		}
	}
	return u
}

// violations collects the permission errors the server sends a connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) add(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

func (v *violations) saw(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(strings.ToLower(e), "permissions violation") && strings.Contains(e, `"`+subject+`"`) {
			return true
		}
	}
	return false
}

// connectAs connects with the inbox prefix of a function (fn.Main does the
// same), collecting permission violations.
func connectAs(t *testing.T, s *natstest.Server, name, inbox string, v *violations) *nats.Conn {
	opts := []nats.Option{nats.UserInfo(name, name+"-secret")}
	if inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(inbox))
	}
	if v != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { v.add(err) }))
	}
	return natstest.Connect(t, s, opts...)
}

// TestFunctionRole runs functions on a server whose users hold exactly the
// rights of roles.Function, and drives everything a function does: sync,
// async with retries and a dead letter, an event, a schedule tick, KV, a
// call to another function and a callback. Then it shows orders' identity
// cannot touch another function's subjects or results, or the registry.
func TestFunctionRole(t *testing.T) {
	rights := func(spec *registry.Spec) roles.Rights {
		r, err := roles.Function(spec)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	orders, payments := rights(specOf(ordersCfg)), rights(specOf(paymentsCfg))
	notifyCfg := fn.Config{Name: "notify"}
	notify := rights(specOf(notifyCfg, "orders.placed"))
	caller := roles.Caller(roles.CallerInbox("caller"), "orders")
	s := natstest.RunWithUsers(t, []*natsserver.User{
		user("platform", nil), user("orders", &orders), user("payments", &payments),
		user("notify", &notify), user("caller", &caller),
	})
	ctx := context.Background()
	platform := connectAs(t, s, "platform", "", nil)
	fntest.Platform(t, platform)
	// The gateway, as the platform, delivers callbacks.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(ctx, platform, gateway.Config{Addr: "127.0.0.1:0", AllowPrivateCallbacks: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)

	var charges, ticks, events atomic.Int64
	start := func(nc *nats.Conn, cfg fn.Config, h *fn.Handler) {
		t.Helper()
		inst, err := fn.Start(ctx, nc, cfg, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	}
	pv, nv := &violations{}, &violations{}
	start(connectAs(t, s, "payments", wire.InboxPrefix("payments"), pv), paymentsCfg, fn.Handle(func(ctx context.Context, o order) (order, error) {
		charges.Add(1)
		return o, nil
	}))
	ov := &violations{}
	onc := connectAs(t, s, "orders", wire.InboxPrefix("orders"), ov)
	start(onc, ordersCfg, fn.Handle(func(ctx context.Context, o order) (order, error) {
		switch {
		case o.N == 1000:
			ticks.Add(1)
			return o, nil
		case o.N < 0:
			return o, errors.New("this order always fails")
		}
		kv, err := fn.OpenKV(ctx, "orders_kv")
		if err != nil {
			return o, err
		}
		if _, err := fn.UpdateJSON(ctx, kv, "count", func(n *int, _ bool) error { *n++; return nil }); err != nil {
			return o, err
		}
		if _, err := fn.Invoke[order](ctx, "payments", o); err != nil {
			return o, err
		}
		return o, fn.Publish(ctx, "orders.placed", placed(o))
	}, fn.WithRetry(2, 10*time.Millisecond)))
	notifyCfg.Events = []fn.Subscription{fn.On("orders.placed", func(ctx context.Context, p placed) error {
		events.Add(1)
		return nil
	})}
	start(connectAs(t, s, "notify", wire.InboxPrefix("notify"), nv), notifyCfg, fn.Handle(func(ctx context.Context, o order) (order, error) { return o, nil }))

	// Sync, from a plain caller: a KV write, a call and an event.
	cnc := connectAs(t, s, "caller", roles.CallerInbox("caller"), nil)
	m, err := cnc.Request("fn.orders", []byte(`{"n":7}`), 10*time.Second)
	if err != nil || wire.ReplyError(m.Header, m.Data) != nil || string(m.Data) != `{"n":7}` {
		t.Fatalf("sync: %v %v", m, err)
	}
	if charges.Load() != 1 {
		t.Fatalf("%d charges, want 1", charges.Load())
	}
	natstest.WaitFor(t, 10*time.Second, "notify to get the event", func() bool { return events.Load() == 1 })

	// Async, with a callback; and one that fails into the dead letters.
	hooks := make(chan invocation.Record, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec invocation.Record
		if json.NewDecoder(r.Body).Decode(&rec) == nil {
			hooks <- rec
		}
	}))
	defer hook.Close()
	js, _ := jetstream.New(platform)
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ok, _, err := store.Submit(ctx, invocation.Submission{Function: "orders", Body: []byte(`{"n":2}`), CallbackURL: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	bad, _, err := store.Submit(ctx, invocation.Submission{Function: "orders", Body: []byte(`{"n":-1}`)})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case rec := <-hooks:
		if rec.ID != ok.ID || rec.Status != invocation.Succeeded {
			t.Fatalf("callback %+v", rec)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no callback")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rec, err := store.Wait(wctx, bad.ID)
	if err != nil || rec.Status != invocation.Dead || rec.Attempts != 2 {
		t.Fatalf("failing invocation: %+v %v", rec, err)
	}
	if dl, err := store.DeadLetters(ctx, "orders", 10); err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %+v %v", dl, err)
	}
	natstest.WaitFor(t, 10*time.Second, "a schedule tick", func() bool { return ticks.Load() > 0 })
	kv, err := js.KeyValue(ctx, "orders_kv")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "count"); err != nil || string(e.Value()) != "2" {
		t.Fatalf("counter: %v %v", e, err)
	}

	// Everything above needed no right beyond the role's.
	for name, v := range map[string]*violations{"orders": ov, "payments": pv, "notify": nv} {
		v.mu.Lock()
		if len(v.errs) > 0 {
			t.Errorf("%s hit its permissions: %v", name, v.errs)
		}
		v.mu.Unlock()
	}

	// What orders' identity may not do.
	ojs, _ := jetstream.New(onc)
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	denied := map[string]func(){
		"fn.payments": func() { _, _ = onc.QueueSubscribe("fn.payments", "fn.payments", func(*nats.Msg) {}) },
		"yard.results.payments.>": func() {
			_, _ = onc.Subscribe("yard.results.payments.>", func(*nats.Msg) {})
		},
		"$KV.yard_functions.orders": func() { _ = onc.Publish("$KV.yard_functions.orders", []byte(`{}`)) },
		"$JS.API.STREAM.INFO.KV_yard_functions": func() {
			_, _ = ojs.KeyValue(short(), wire.BucketFunctions)
		},
		"$KV.yard_results.payments.x": func() { _ = onc.Publish("$KV.yard_results.payments.x", []byte(`{}`)) },
		"$JS.API.DIRECT.GET.KV_yard_results.$KV.yard_results.payments." + ok.ID: func() {
			_, _ = onc.RequestWithContext(short(), "$JS.API.DIRECT.GET.KV_yard_results.$KV.yard_results.payments."+ok.ID, nil)
		},
		// Listing the results bucket's keys would reveal every invocation id.
		"$JS.API.STREAM.INFO.KV_yard_results": func() {
			_, _ = onc.RequestWithContext(short(), "$JS.API.STREAM.INFO.KV_yard_results", []byte(`{"subjects_filter":">"}`))
		},
		"$JS.API.STREAM.PURGE.YARD_ASYNC": func() { _, _ = onc.RequestWithContext(short(), "$JS.API.STREAM.PURGE.YARD_ASYNC", nil) },
		"$JS.API.CONSUMER.MSG.NEXT.YARD_ASYNC.fn-payments": func() {
			_ = onc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.YARD_ASYNC.fn-payments", wire.InboxPrefix("orders")+".x", []byte(`{"batch":1}`))
		},
		"yard.schedules.orders.x": func() { _ = onc.Publish("yard.schedules.orders.x", []byte(`{}`)) },
		"fn.greet":                func() { _ = onc.Publish("fn.greet", []byte(`{}`)) },
	}
	for subject, try := range denied {
		try()
		natstest.WaitFor(t, 5*time.Second, "a permissions violation for "+subject, func() bool { return ov.saw(subject) })
	}
	// And orders still serves: the violations changed nothing.
	if m, err := cnc.Request("fn.orders", []byte(`{"n":8}`), 10*time.Second); err != nil || string(m.Data) != `{"n":8}` {
		t.Fatalf("after the attempts: %v %v", m, err)
	}
}

// TestNoRightsOutsideOwnSpace: declarations that would reach into another
// function's or the platform's subjects get no rights at all.
func TestNoRightsOutsideOwnSpace(t *testing.T) {
	for _, spec := range []*registry.Spec{
		{Name: "spy", Events: []string{"$KV.yard_results.>"}},
		{Name: "spy", Events: []string{"yard.dlq.>"}},
		{Name: "spy", Events: []string{">"}},
		{Name: "spy", Publishes: []string{">"}},
		{Name: "spy", Publishes: []string{"*.payments"}},
		{Name: "spy", Publishes: []string{"fn.payments"}},
		{Name: "spy", Buckets: []string{"yard_functions"}},
		{Name: "spy", Streams: []registry.Stream{{Name: "GRAB", Subjects: []string{"fn.*"}}}},
		{Name: "spy", Streams: []registry.Stream{{Name: "GRAB", Subjects: []string{"*.*"}}}},
		{Name: "spy", Calls: []string{"fn.>"}},
		{Name: "Spy"},
	} {
		if r, err := roles.Function(spec); err == nil {
			t.Errorf("%+v got rights %+v", spec, r)
		}
	}
}

type itemAdded struct {
	SKU string `json:"sku"`
}

// TestEntityRole: declaring an entity stream is enough to append to it,
// load it and keep snapshots; nothing more on it (no deletes, purges or
// consumers of others), and a function that does not declare it cannot
// touch it.
func TestEntityRole(t *testing.T) {
	carts := fn.Stream{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true}
	cartCfg := fn.Config{Name: "cart", Streams: []fn.Stream{carts}}
	cartSpec := specOf(cartCfg)
	cartSpec.Streams = []registry.Stream{{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true}}
	cartRights, err := roles.Function(cartSpec)
	if err != nil {
		t.Fatal(err)
	}
	nosyRights, err := roles.Function(&registry.Spec{Name: "nosy"})
	if err != nil {
		t.Fatal(err)
	}
	caller := roles.Caller(roles.CallerInbox("caller"), "cart")
	s := natstest.RunWithUsers(t, []*natsserver.User{
		user("platform", nil), user("cart", &cartRights), user("nosy", &nosyRights), user("caller", &caller),
	})
	ctx := context.Background()
	platform := connectAs(t, s, "platform", "", nil)
	fntest.Platform(t, platform)
	fold := func(n int, ev fn.Event) (int, error) { return n + 1, nil }
	cv := &violations{}
	cnc := connectAs(t, s, "cart", wire.InboxPrefix("cart"), cv)
	inst, err := fn.Start(ctx, cnc, cartCfg, fn.Handle(func(ctx context.Context, a itemAdded) (int, error) {
		n, _, err := fn.Update(ctx, "cart.c1", fold, func(int) (any, error) { return a, nil }, fn.Snapshot(1))
		return n, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	callerNC := connectAs(t, s, "caller", roles.CallerInbox("caller"), nil)
	for want := 1; want <= 3; want++ {
		m, err := callerNC.Request("fn.cart", []byte(`{"sku":"tea"}`), 10*time.Second)
		if err != nil || wire.ReplyError(m.Header, m.Data) != nil || string(m.Data) != fmt.Sprint(want) {
			t.Fatalf("add %d: %v %v", want, m, err)
		}
	}
	js, _ := jetstream.New(platform)
	if kv, err := js.KeyValue(ctx, registry.SnapshotBucket("CARTS")); err != nil {
		t.Fatal(err)
	} else if _, err := kv.Get(ctx, fn.SnapshotKey("cart", "cart.c1")); err != nil {
		t.Fatalf("no snapshot kept: %v", err)
	}
	cv.mu.Lock()
	if len(cv.errs) > 0 {
		t.Errorf("cart hit its permissions: %v", cv.errs)
	}
	cv.mu.Unlock()

	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	nv := &violations{}
	nnc := connectAs(t, s, "nosy", wire.InboxPrefix("nosy"), nv)
	for subject, try := range map[string]func(){
		"cart.c1":                     func() { _ = nnc.Publish("cart.c1", []byte(`{}`)) },
		"$JS.API.DIRECT.GET.CARTS":    func() { _, _ = nnc.RequestWithContext(short(), "$JS.API.DIRECT.GET.CARTS", []byte(`{"seq":1}`)) },
		"$KV.snap_CARTS.cart.cart.c1": func() { _ = nnc.Publish("$KV.snap_CARTS.cart.cart.c1", []byte(`{}`)) },
		"$JS.API.STREAM.INFO.CARTS":   func() { _, _ = nnc.RequestWithContext(short(), "$JS.API.STREAM.INFO.CARTS", nil) },
	} {
		try()
		natstest.WaitFor(t, 5*time.Second, "a permissions violation for "+subject, func() bool { return nv.saw(subject) })
	}
	for subject, try := range map[string]func(){
		"$JS.API.STREAM.MSG.DELETE.CARTS": func() { _, _ = cnc.RequestWithContext(short(), "$JS.API.STREAM.MSG.DELETE.CARTS", []byte(`{"seq":1}`)) },
		"$JS.API.STREAM.PURGE.CARTS":      func() { _, _ = cnc.RequestWithContext(short(), "$JS.API.STREAM.PURGE.CARTS", nil) },
		"$JS.API.CONSUMER.CREATE.CARTS":   func() { _, _ = cnc.RequestWithContext(short(), "$JS.API.CONSUMER.CREATE.CARTS", []byte(`{}`)) },
		"$JS.API.DIRECT.GET.KV_yard_creds": func() {
			_, _ = cnc.RequestWithContext(short(), "$JS.API.DIRECT.GET.KV_yard_creds", []byte(`{"seq":1}`))
		},
		// Another declarer's snapshots, which its loads would trust.
		"$KV.snap_CARTS.audit.cart.c1": func() { _ = cnc.Publish("$KV.snap_CARTS.audit.cart.c1", []byte(`{}`)) },
		"$JS.API.DIRECT.GET.KV_snap_CARTS.$KV.snap_CARTS.audit.cart.c1": func() {
			_, _ = cnc.RequestWithContext(short(), "$JS.API.DIRECT.GET.KV_snap_CARTS.$KV.snap_CARTS.audit.cart.c1", nil)
		},
	} {
		try()
		natstest.WaitFor(t, 5*time.Second, "a permissions violation for "+subject, func() bool { return cv.saw(subject) })
	}
}
