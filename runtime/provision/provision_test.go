package provision

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func scheduled(name string) *registry.Spec {
	return &registry.Spec{Name: name, Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Schedules: []registry.Schedule{{Cron: "@every 1h", Input: json.RawMessage(`{}`)}}}
}

// TestSweepRemovesUnservedFunctions: a function run without a deploy whose
// instances died unannounced goes, schedules and all, after two sweeps
// with no instance answering; a deployed one stays.
func TestSweepRemovesUnservedFunctions(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js, _ := jetstream.New(nc)
	p, err := New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := p.Serve(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// A registration whose instance never serves (it was SIGKILLed).
	body, _ := json.Marshal(scheduled("ghost"))
	m, err := nc.Request(wire.RegisterPrefix+"ghost", body, 10*time.Second)
	if err != nil || wire.ReplyError(m.Header, m.Data) != nil {
		t.Fatalf("register: %v %v", m, err)
	}
	deployed := scheduled("kept")
	if _, err := p.reg.Deploy(ctx, deployed, 0); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, deployed); err != nil {
		t.Fatal(err)
	}
	if s, err := p.store.Schedules(ctx, "ghost"); err != nil || len(s) != 1 {
		t.Fatalf("ghost's schedules: %v %v", s, err)
	}
	go p.Sweep(ctx, nc, 50*time.Millisecond)
	natstest.WaitFor(t, 10*time.Second, "the unserved function to go", func() bool {
		_, err := p.reg.Get(ctx, "ghost")
		s, serr := p.store.Schedules(ctx, "ghost")
		return err != nil && serr == nil && len(s) == 0
	})
	if _, err := p.reg.Get(ctx, "kept"); err != nil {
		t.Fatalf("a deployed function went: %v", err)
	}
	if s, err := p.store.Schedules(ctx, "kept"); err != nil || len(s) != 1 {
		t.Fatalf("a deployed function's schedules: %v %v", s, err)
	}
}

// TestUnregisterChecksTheRevision: a spec rewritten after it was read (an
// instance registered meanwhile) is not dropped.
func TestUnregisterChecksTheRevision(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	p, err := New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.reg.Register(ctx, scheduled("dev")); err != nil {
		t.Fatal(err)
	}
	_, rev, err := p.reg.GetEntry(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.reg.Register(ctx, scheduled("dev")); err != nil { // the same spec, from a new instance
		t.Fatal(err)
	}
	if dropped, err := p.reg.Unregister(ctx, "dev", rev); err != nil || dropped {
		t.Fatalf("dropped a spec registered again since: %v %v", dropped, err)
	}
	if _, err := p.reg.Get(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
}

// TestDeclarationsOfAnother: a function cannot be provisioned into another
// function's bucket, nor redeclare a stream with other subjects; a stream
// declared alike by two functions is shared.
func TestDeclarationsOfAnother(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	p, err := New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := registry.Stream{Name: "SHOP", Subjects: []string{"orders.>"}}
	owner := &registry.Spec{Name: "payments", Timeout: registry.Duration(time.Second), Buckets: []string{"shop_payments"}, Streams: []registry.Stream{events}}
	if err := p.Apply(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, &registry.Spec{Name: "notify", Timeout: registry.Duration(time.Second), Streams: []registry.Stream{events}}); err != nil {
		t.Fatalf("a stream declared alike: %v", err)
	}
	for _, spy := range []*registry.Spec{
		{Name: "spy", Timeout: registry.Duration(time.Second), Buckets: []string{"shop_payments"}},
		{Name: "spy", Timeout: registry.Duration(time.Second), Streams: []registry.Stream{{Name: "SHOP", Subjects: []string{"orders.>", "spy.>"}}}},
	} {
		if err := p.Apply(ctx, spy); err == nil || !strings.Contains(err.Error(), "belongs to function payments") && !strings.Contains(err.Error(), "exists with subjects") {
			t.Errorf("%+v: %v", spy, err)
		}
	}
	if err := p.Apply(ctx, owner); err != nil {
		t.Fatalf("the owner again: %v", err)
	}
	// Registered that way, it is refused and not left in the registry.
	stop, err := p.Serve(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	body, _ := json.Marshal(&registry.Spec{Name: "spy", Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`), Buckets: []string{"shop_payments"}})
	m, err := nc.Request(wire.RegisterPrefix+"spy", body, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if we := wire.ReplyError(m.Header, m.Data); we == nil || !strings.Contains(we.Message, "belongs to function payments") {
		t.Fatalf("registration answered %s", m.Data)
	}
	if _, err := p.reg.Get(ctx, "spy"); err == nil {
		t.Fatal("a registration that failed to provision stayed in the registry")
	}
}
