package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func subscriber(name string, events []string, opts map[string]registry.EventOptions, streams ...registry.Stream) *registry.Spec {
	return &registry.Spec{Name: name, Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Events: events, EventOptions: opts, Streams: streams}
}

// TestEntityStreams: an entity stream keeps its events forever, refuses to
// delete one, answers direct gets and has a snapshot bucket; a plain
// declaration of it by a subscriber does not shorten its retention.
func TestEntityStreams(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	p, err := New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	carts := registry.Stream{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true}
	if err := p.Apply(ctx, subscriber("cart", nil, nil, carts)); err != nil {
		t.Fatal(err)
	}
	plain := registry.Stream{Name: "CARTS", Subjects: []string{"cart.>"}}
	if err := p.Apply(ctx, subscriber("audit", []string{"cart.>"}, nil, plain)); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "CARTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != 0 || !cfg.DenyDelete || !cfg.AllowDirect || cfg.Metadata[MetaEntity] != "true" {
		t.Fatalf("entity stream: max age %s, deny delete %v, direct %v, metadata %v", cfg.MaxAge, cfg.DenyDelete, cfg.AllowDirect, cfg.Metadata)
	}
	if _, err := js.KeyValue(ctx, registry.SnapshotBucket("CARTS")); err != nil {
		t.Fatalf("snapshot bucket: %v", err)
	}
	ack, err := js.Publish(ctx, "cart.c1", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, ack.Sequence); err == nil {
		t.Fatal("an entity's event was deleted")
	}
	// Retention only grows: a year, then a week asked, stays a year.
	for _, age := range []time.Duration{365 * 24 * time.Hour, 0} {
		if err := p.Apply(ctx, subscriber("sales", nil, nil, registry.Stream{Name: "SALES", Subjects: []string{"sales.>"}, MaxAge: registry.Duration(age)})); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := js.Stream(ctx, "SALES"); st.CachedInfo().Config.MaxAge != 365*24*time.Hour {
		t.Fatalf("retention shortened: %s", st.CachedInfo().Config.MaxAge)
	}
	// A plain stream declared later as an entity stream becomes one.
	if err := p.Apply(ctx, subscriber("ledger", nil, nil, registry.Stream{Name: "LEDGER", Subjects: []string{"ledger.>"}})); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, subscriber("ledger", nil, nil, registry.Stream{Name: "LEDGER", Subjects: []string{"ledger.>"}, Entity: true})); err != nil {
		t.Fatal(err)
	}
	st, _ = js.Stream(ctx, "LEDGER")
	if cfg := st.CachedInfo().Config; cfg.MaxAge != 0 || !cfg.AllowDirect || !cfg.DenyDelete || cfg.Metadata[MetaEntity] != "true" {
		t.Fatalf("stream made an entity stream: %+v", cfg)
	}
}

// TestSubscriptionStartsAndReplay: a new subscription starts where its
// options say, an existing one keeps its start when the spec changes, and
// Replay moves it back.
func TestSubscriptionStartsAndReplay(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	p, err := New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	orders := registry.Stream{Name: "ORDERS", Subjects: []string{"orders.>"}}
	if err := p.Apply(ctx, subscriber("shipping", nil, nil, orders)); err != nil {
		t.Fatal(err)
	}
	for k := range 10 {
		if _, err := js.Publish(ctx, "orders.placed", fmt.Appendf(nil, `{"n":%d}`, k)); err != nil {
			t.Fatal(err)
		}
	}
	consumer := func(name string) *jetstream.ConsumerInfo {
		t.Helper()
		c, err := js.Consumer(ctx, "ORDERS", wire.EventConsumer(name, "orders.placed"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	events := []string{"orders.placed"}
	fromStart := map[string]registry.EventOptions{"orders.placed": {From: "start", Ordered: true}}
	cases := []struct {
		name    string
		opts    map[string]registry.EventOptions
		pending uint64
	}{
		{"notify", nil, 0},
		{"sales", fromStart, 10},
		{"recent", map[string]registry.EventOptions{"orders.placed": {From: "8"}}, 3},
	}
	for _, c := range cases {
		if err := p.Apply(ctx, subscriber(c.name, events, c.opts, orders)); err != nil {
			t.Fatal(err)
		}
		if got := consumer(c.name).NumPending; got != c.pending {
			t.Fatalf("%s starts with %d pending, want %d", c.name, got, c.pending)
		}
	}
	if consumer("sales").Config.MaxAckPending != 1 || consumer("notify").Config.MaxAckPending == 1 {
		t.Fatal("ordered subscriptions take one event at a time, others more")
	}
	// A changed spec keeps the existing consumer's start.
	if err := p.Apply(ctx, subscriber("notify", events, fromStart, orders)); err != nil {
		t.Fatal(err)
	}
	if info := consumer("notify"); info.NumPending != 0 || info.Config.DeliverPolicy != jetstream.DeliverNewPolicy {
		t.Fatalf("re-provisioned subscription moved: %+v", info.Config)
	}
	// Replay from the start, and from a sequence.
	got, err := Replay(ctx, js, subscriber("notify", events, nil), "", registry.EventStart{All: true})
	if err != nil || len(got) != 1 || got[0].Pending != 10 || got[0].From != "start" {
		t.Fatalf("replay: %+v %v", got, err)
	}
	if info := consumer("notify"); info.NumPending != 10 || info.Config.AckWait == 0 {
		t.Fatalf("after replay: %+v", info)
	}
	if got, err := Replay(ctx, js, subscriber("notify", events, nil), "orders.placed", registry.EventStart{Seq: 6}); err != nil || got[0].Pending != 5 {
		t.Fatalf("replay from 6: %+v %v", got, err)
	}
	// A rebuild clears while the subscription is paused, then replays.
	cleared := false
	got, err = Rebuild(ctx, js, subscriber("notify", events, nil), "", registry.EventStart{All: true}, func(ctx context.Context) error {
		cleared = consumer("notify").Paused
		return nil
	})
	if err != nil || !cleared || got[0].Pending != 10 || consumer("notify").Paused {
		t.Fatalf("rebuild: cleared while paused %v, %+v %v", cleared, got, err)
	}
	// A clear that fails (half way, maybe) still replays, and says so:
	// putting the subscription back would leave what was cleared lost.
	got, err = Rebuild(ctx, js, subscriber("notify", events, nil), "", registry.EventStart{Seq: 9}, func(context.Context) error {
		return errors.New("no")
	})
	if err == nil || !strings.Contains(err.Error(), "replayed anyway") || len(got) != 1 || consumer("notify").Paused ||
		consumer("notify").Config.OptStartSeq != 9 {
		t.Fatalf("rebuild with a failing clear: %+v %v %+v", got, err, consumer("notify").Config)
	}
	// A replay whose context ends once the clearing is done (Ctrl-C) still
	// recreates the consumer: none is left missing.
	cctx, cancel := context.WithCancel(ctx)
	if _, err := Rebuild(cctx, js, subscriber("notify", events, nil), "", registry.EventStart{All: true}, func(context.Context) error {
		cancel()
		return nil
	}); err != nil {
		t.Fatalf("rebuild cancelled after the clearing: %v", err)
	}
	if info := consumer("notify"); info.NumPending != 10 || info.Paused {
		t.Fatalf("after a cancelled rebuild: %+v", info)
	}
	for _, bad := range []struct {
		spec    *registry.Spec
		subject string
	}{
		{subscriber("notify", events, nil), "orders.paid"},
		{subscriber("lonely", nil, nil), ""},
		{subscriber("ghost", events, nil), ""},
	} {
		if _, err := Replay(ctx, js, bad.spec, bad.subject, registry.EventStart{All: true}); err == nil {
			t.Fatalf("replay of %s on %q accepted", bad.spec.Name, bad.subject)
		}
	}
}
