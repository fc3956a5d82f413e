package cli

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// eventsPlatform runs a server with the platform, a running function
// ledger subscribed to orders.placed (stream ORDERS) that records the
// sequence of every event it handles, a function projector registered
// with the same subscription and no instance, a function plain without
// subscriptions, and an entity stream ACCOUNTS; no event published yet.
type eventsPlatform struct {
	env  map[string]string
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	seen []uint64 // ledger's handled events, by stream sequence
}

func (p *eventsPlatform) handled() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// consumer is the info of a function's consumer on orders.placed.
func (p *eventsPlatform) consumer(t *testing.T, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := p.js.Consumer(context.Background(), "ORDERS", wire.EventConsumer(name, "orders.placed"))
	if err != nil {
		t.Fatalf("consumer of %s: %v", name, err)
	}
	return c.CachedInfo()
}

func startEventsPlatform(t *testing.T) *eventsPlatform {
	t.Helper()
	ctx := context.Background()
	s := natstest.Run(t)
	p := &eventsPlatform{env: map[string]string{"NATS_URL": s.ClientURL()}, nc: natstest.Connect(t, s)}
	fntest.Platform(t, p.nc)
	js, err := jetstream.New(p.nc)
	if err != nil {
		t.Fatal(err)
	}
	p.js = js
	inst, err := fn.Start(ctx, p.nc, fn.Config{Name: "ledger",
		Streams: []fn.Stream{{Name: "ORDERS", Subjects: []string{"orders.>"}}},
		Events: []fn.Subscription{fn.On("orders.placed", func(ctx context.Context, ev struct {
			Order string `json:"order"`
		}) error {
			meta, _ := fn.EventMeta(ctx)
			p.mu.Lock()
			p.seen = append(p.seen, meta.Seq)
			p.mu.Unlock()
			return nil
		})}},
		fn.Handle(func(ctx context.Context, in struct{}) (struct{}, error) { return in, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []*registry.Spec{
		{Name: "projector", Streams: []registry.Stream{{Name: "ORDERS", Subjects: []string{"orders.>"}}}, Events: []string{"orders.placed"},
			Buckets: []string{"projection"}},
		{Name: "plain"},
	} {
		spec.Timeout, spec.InputSchema, spec.OutputSchema = registry.Duration(time.Second), json.RawMessage(`{}`), json.RawMessage(`{}`)
		if _, err := reg.Register(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "the platform to provision projector's subscription", func() bool {
		_, err := js.Consumer(ctx, "ORDERS", wire.EventConsumer("projector", "orders.placed"))
		return err == nil
	})
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACCOUNTS", Subjects: []string{"accounts.>"},
		Metadata: map[string]string{provision.MetaEntity: "true"}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *eventsPlatform) publish(t *testing.T, subject, typ, data string) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{}}
	if typ != "" {
		msg.Header.Set(fn.HeaderEventType, typ)
	}
	if _, err := p.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// tailLines decodes the output of yard events tail --json.
func tailLines(t *testing.T, r result) []eventLine {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("tail: %+v", r)
	}
	var lines []eventLine
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var e eventLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("tail --json line %q: %v", l, err)
		}
		lines = append(lines, e)
	}
	return lines
}

// TestEventsLsAndTail: ls lists the event streams (not the platform's),
// entity ones as such; tail prints events from where --from says.
func TestEventsLsAndTail(t *testing.T) {
	p := startEventsPlatform(t)
	env := p.env

	// Only the platform's streams and buckets so far: they are no event
	// streams, but ORDERS (declared by ledger) and ACCOUNTS are.
	r := yard(t, env, "", "events", "ls")
	if r.code != 0 || strings.Contains(r.stdout, "YARD_") || strings.Contains(r.stdout, "KV_") ||
		!regexpMatch(`NAME\s+SUBJECTS\s+KIND\s+MESSAGES\s+BYTES\s+FIRST\s+LAST\s+RETENTION\s+REPLICAS\s+CONSUMERS\n`, r.stdout) ||
		!regexpMatch(`ACCOUNTS\s+accounts\.>\s+entity\s+0\s+0 B\s+-\s+-\s+forever\s+1\s+0\n`, r.stdout) ||
		!regexpMatch(`ORDERS\s+orders\.>\s+events\s+0\s+0 B\s+-\s+-\s+7d\s+1\s+2\n`, r.stdout) {
		t.Fatalf("ls before events: %+v", r)
	}

	for _, o := range []string{"o1", "o2", "o3"} {
		p.publish(t, "orders.placed", "order.placed", `{ "order": "`+o+`" }`)
	}
	p.publish(t, "accounts.a1.opened", "", "not json")
	natstest.WaitFor(t, 10*time.Second, "ledger to handle the events", func() bool { return len(p.handled()) == 3 })

	r = yard(t, env, "", "events", "ls")
	if r.code != 0 || !regexpMatch(`ACCOUNTS\s+accounts\.>\s+entity\s+1\s+\d+ B\s+\d{4}-\d\d-\d\dT\S+Z\s+\d{4}-\d\d-\d\dT\S+Z\s+forever\s+1\s+0\n`, r.stdout) ||
		!regexpMatch(`ORDERS\s+orders\.>\s+events\s+3\s+\d+ B\s+\S+\s+\S+\s+7d\s+1\s+2\n`, r.stdout) {
		t.Fatalf("ls: %+v", r)
	}
	r = yard(t, env, "", "events", "ls", "--json")
	var entries []eventStreamEntry
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &entries) != nil || len(entries) != 2 {
		t.Fatalf("ls --json: %+v", r)
	}
	acc, ord := entries[0], entries[1]
	if acc.Name != "ACCOUNTS" || acc.Kind != "entity" || acc.Messages != 1 || acc.MaxAge != "0s" || acc.Retention != "forever" || acc.FirstEvent == nil ||
		ord.Name != "ORDERS" || ord.Kind != "events" || ord.Messages != 3 || ord.Bytes == 0 || ord.Retention != "7d" || ord.MaxAge != "168h0m0s" ||
		ord.Replicas != 1 || ord.Consumers != 2 || !slices.Equal(ord.Subjects, []string{"orders.>"}) || ord.LastEvent.Before(*ord.FirstEvent) {
		t.Fatalf("ls --json: %+v", entries)
	}
	for _, key := range []string{`"name"`, `"subjects"`, `"kind"`, `"messages"`, `"bytes"`, `"first_event"`, `"last_event"`, `"max_age"`, `"retention"`, `"replicas"`, `"consumers"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("ls --json lacks %s: %s", key, r.stdout)
		}
	}

	// From the start, three events, as JSON (the data compacted).
	lines := tailLines(t, yard(t, env, "", "events", "tail", "orders.>", "--from", "start", "-n", "3", "--json"))
	if len(lines) != 3 {
		t.Fatalf("tail -n 3: %+v", lines)
	}
	for i, l := range lines {
		if l.Stream != "ORDERS" || l.Seq != uint64(i+1) || l.Subject != "orders.placed" || l.Type != "order.placed" ||
			string(l.Data) != `{"order":"o`+string(rune('1'+i))+`"}` || l.Time.IsZero() {
			t.Fatalf("tail line %d: %+v", i, l)
		}
	}
	// From a sequence, as text; from a time (the third event's).
	r = yard(t, env, "", "events", "tail", "orders.placed", "--from", "2", "-n", "1")
	if r.code != 0 || !regexpMatch(`^2  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  orders\.placed  order\.placed  \{"order":"o2"\}\n$`, r.stdout) ||
		!strings.Contains(r.stderr, "tailing orders.placed on stream ORDERS from 2") {
		t.Fatalf("tail --from 2: %+v", r)
	}
	byTime := tailLines(t, yard(t, env, "", "events", "tail", "orders.>", "--from", lines[2].Time.Format(time.RFC3339Nano), "-n", "1", "--json"))
	if len(byTime) != 1 || byTime[0].Seq != 3 {
		t.Fatalf("tail --from <time>: %+v", byTime)
	}
	// Data that is not JSON is a JSON string; no type header is "-".
	if l := tailLines(t, yard(t, env, "", "events", "tail", "accounts.*.opened", "--from", "start", "-n", "1", "--json")); string(l[0].Data) != `"not json"` || l[0].Type != "" {
		t.Fatalf("tail of non-JSON data: %+v", l)
	}
	if r := yard(t, env, "", "events", "tail", "accounts.>", "--from", "start", "-n", "1"); !regexpMatch(`^1  \S+  accounts\.a1\.opened  -  "not json"\n$`, r.stdout) {
		t.Fatalf("tail of non-JSON data: %+v", r)
	}

	// The default, new: only what is published once it runs; it ends with
	// its context.
	var out, errb natstest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"events", "tail", "accounts.>"}, IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errb},
			func(k string) string { return env[k] })
	}()
	natstest.WaitFor(t, 10*time.Second, "tail to start", func() bool { return strings.Contains(errb.String(), "tailing accounts.>") })
	p.publish(t, "accounts.a2.opened", "account.opened", `{"id":"a2"}`)
	natstest.WaitFor(t, 10*time.Second, "tail to print the new event", func() bool { return strings.Contains(out.String(), "account.opened") })
	cancel()
	select {
	case code := <-done:
		if code != 0 || !regexpMatch(`^2  \S+  accounts\.a2\.opened  account\.opened  \{"id":"a2"\}\n$`, out.String()) {
			t.Fatalf("tail --from new: exit %d, %q, %q", code, out.String(), errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not end with its context")
	}
}

// TestEventsLsEmpty: no event streams is said, not shown as an empty table.
func TestEventsLsEmpty(t *testing.T) {
	s := natstest.Run(t)
	fntest.Platform(t, natstest.Connect(t, s)) // the platform's own streams and buckets
	env := map[string]string{"NATS_URL": s.ClientURL()}
	if r := yard(t, env, "", "events", "ls"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no event streams yet") {
		t.Fatalf("ls: %+v", r)
	}
	if r := yard(t, env, "", "events", "ls", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("ls --json: %+v", r)
	}
}

// TestEventsReplay: replay moves a subscription's consumer back; a running
// instance goes through the events again, --wait follows it; each replay
// is audited.
func TestEventsReplay(t *testing.T) {
	p := startEventsPlatform(t)
	env := p.env
	for _, o := range []string{"o1", "o2", "o3"} {
		p.publish(t, "orders.placed", "order.placed", `{"order":"`+o+`"}`)
	}
	natstest.WaitFor(t, 10*time.Second, "ledger to handle the events", func() bool { return len(p.handled()) == 3 })
	// projector runs nowhere: its consumer, created before the events,
	// holds all three.
	if info := p.consumer(t, "projector"); info.NumPending != 3 || info.Config.DeliverPolicy != jetstream.DeliverNewPolicy {
		t.Fatalf("projector before: %+v", info)
	}

	r := yard(t, env, "", "events", "replay", "projector", "--from", "2", "--json")
	var replayed []provision.Replayed
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &replayed) != nil || len(replayed) != 1 ||
		replayed[0] != (provision.Replayed{Subject: "orders.placed", Stream: "ORDERS", Consumer: wire.EventConsumer("projector", "orders.placed"), From: "2", Pending: 2}) ||
		!strings.Contains(r.stderr, "no instance of projector runs") {
		t.Fatalf("replay projector --from 2: %+v", r)
	}
	if info := p.consumer(t, "projector"); info.NumPending != 2 || info.Config.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || info.Config.OptStartSeq != 2 ||
		info.Config.FilterSubject != "orders.placed" || info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		t.Fatalf("projector after: %+v", info)
	}

	// A rebuild empties the projection's bucket first; only a bucket the
	// function declares.
	natstest.WaitFor(t, 10*time.Second, "the projection bucket", func() bool {
		_, err := p.js.KeyValue(context.Background(), "projection")
		return err == nil
	})
	kv, _ := p.js.KeyValue(context.Background(), "projection")
	if _, err := kv.Put(context.Background(), "total", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if r := yard(t, env, "", "events", "replay", "projector", "--clear-bucket", "projection"); r.code != 0 {
		t.Fatalf("replay --clear-bucket: %+v", r)
	}
	if _, err := kv.Get(context.Background(), "total"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the bucket was not cleared: %v", err)
	}
	if r := yard(t, env, "", "events", "replay", "projector", "--clear-bucket", "yard_functions"); r.code != ExitUsage || !strings.Contains(r.stderr, "not a bucket projector declares") {
		t.Fatalf("clearing another bucket: %+v", r)
	}

	// ledger runs: by default from the start, every event again.
	r = yard(t, env, "", "events", "replay", "ledger")
	if r.code != 0 || !regexpMatch(`SUBJECT\s+STREAM\s+CONSUMER\s+FROM\s+EVENTS AGAIN\norders\.placed\s+ORDERS\s+on-ledger-\w+\s+start\s+3\n`, r.stdout) {
		t.Fatalf("replay ledger: %+v", r)
	}
	natstest.WaitFor(t, 20*time.Second, "ledger to handle the events again", func() bool { return len(p.handled()) == 6 })
	// Handlers run concurrently: in any order, each event once more.
	if got := slices.Sorted(slices.Values(p.handled())); !slices.Equal(got, []uint64{1, 1, 2, 2, 3, 3}) {
		t.Fatalf("ledger handled %v", got)
	}
	if info := p.consumer(t, "ledger"); info.Config.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Fatalf("ledger after: %+v", info.Config)
	}
	// --wait returns once ledger went through them again.
	r = yard(t, env, "", "events", "replay", "ledger", "--subject", "orders.placed", "--from", "3", "--wait")
	if r.code != 0 || !regexpMatch(`orders\.placed\s+ORDERS\s+on-ledger-\w+\s+3\s+1\n`, r.stdout) || !strings.Contains(r.stderr, "caught up") {
		t.Fatalf("replay --wait: %+v", r)
	}
	if got := slices.Sorted(slices.Values(p.handled())); !slices.Equal(got, []uint64{1, 1, 2, 2, 3, 3, 3}) {
		t.Fatalf("ledger handled %v after --wait", got)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"events", "replay", "nobody"}, ExitError, `function "nobody" not found`},
		{[]string{"events", "replay", "plain"}, ExitError, "plain has no event subscriptions"},
		{[]string{"events", "replay", "ledger", "--subject", "orders.shipped"}, ExitError, "ledger has no subscription on orders.shipped; it subscribes to orders.placed"},
		{[]string{"events", "replay", "Bad.Name"}, ExitUsage, "invalid function name"},
		{[]string{"events", "replay", "ledger", "--from", "yesterday"}, ExitUsage, `--from: "yesterday" is not a start`},
		{[]string{"events", "replay", "ledger", "--from", "new"}, ExitUsage, "would skip events"},
		{[]string{"events", "replay"}, ExitUsage, "one function name"},
		{[]string{"events", "tail", "nosuch.>"}, ExitError, "no stream holds the subject nosuch.>"},
		{[]string{"events", "tail", "orders..x"}, ExitUsage, "is not a subject"},
		{[]string{"events", "tail", "orders.>.x"}, ExitUsage, "is not a subject"},
		{[]string{"events", "tail", "orders.a b"}, ExitUsage, "is not a subject"},
		{[]string{"events", "tail", "orders.>", "--from", "bogus"}, ExitUsage, `--from: "bogus" is not a start`},
		{[]string{"events", "tail", "orders.>", "-n", "-1"}, ExitUsage, "-n must be"},
		{[]string{"events", "tail"}, ExitUsage, "a subject"},
		{[]string{"events", "ls", "extra"}, ExitUsage, "unknown command"},
		{[]string{"events", "bogus"}, ExitUsage, "unknown command"},
	} {
		if r := yard(t, env, "", tt.args...); r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, %q; want %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	if info := p.consumer(t, "ledger"); info.Config.OptStartSeq != 3 {
		t.Fatalf("a refused replay moved ledger: %+v", info.Config)
	}

	// Every replay that reached the platform is in the audit log, with its
	// outcome.
	var seen []string
	for _, e := range auditEvents(t, env) {
		if e.Action == "events.replay" {
			seen = append(seen, e.Target+" | "+e.Detail+" | "+e.Outcome)
		}
	}
	want := []string{
		"projector | from 2: orders.placed (2 events) | ok",
		"projector | from start: orders.placed (3 events); cleared projection | ok",
		"projector | from start: all subscriptions; cleared yard_functions | --clear-bucket yard_functions: not a bucket projector declares (it declares projection)",
		"ledger | from start: orders.placed (3 events) | ok",
		"ledger | from 3: orders.placed (1 events) | ok",
		`nobody | from start: all subscriptions | function "nobody" not found (see ` + "`yard ls`)",
		"plain | from start: all subscriptions | plain has no event subscriptions: nothing to replay",
		"ledger | from start: orders.shipped | ledger has no subscription on orders.shipped; it subscribes to orders.placed",
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("audit of replays:\n%s", strings.Join(seen, "\n"))
	}
}
