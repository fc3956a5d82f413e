package fn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type in struct {
	N int `json:"n" jsonschema:"minimum=0,maximum=1000"`
}

type out struct {
	N int `json:"n" jsonschema:"minimum=0"`
}

func double(ctx context.Context, i in) (out, error) { return out{N: 2 * i.N}, nil }

// startFn starts an instance on nc and stops it when the test ends.
func startFn(t *testing.T, nc *nats.Conn, cfg fn.Config, h *fn.Handler) *fn.Instance {
	t.Helper()
	inst, err := fn.Start(context.Background(), nc, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	return inst
}

func TestInvoke(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	got, err := fntest.Invoke[out](t, h, in{N: 21})
	if err != nil || got.N != 42 {
		t.Fatalf("got %v, %v", got, err)
	}
	_, err = fntest.Invoke[out](t, h, in{N: 1001})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeInvalidArgument || we.Errors[0].Pointer != "/n" {
		t.Fatalf("out of range: %v", err)
	}
	if _, we := h.Request(t, []byte(`{"n":1}{"n":2}`)); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("trailing data: %v", we)
	}
}

// TestConcurrency proves handlers run at once: each waits until all have
// started, which can only happen with concurrency >= n.
func TestConcurrency(t *testing.T) {
	const n = 16
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	h := fntest.Start(t, fn.Config{Name: "wait"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		started.Done()
		select {
		case <-all:
			return out{N: i.N}, nil
		case <-ctx.Done():
			return out{}, ctx.Err()
		}
	}, fn.WithConcurrency(n), fn.WithTimeout(10*time.Second)))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fntest.Invoke[out](t, h, in{N: k}); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d calls failed", failed.Load())
	}
}

// TestConcurrencyLimit: with a limit of 2 no more than 2 run at once.
func TestConcurrencyLimit(t *testing.T) {
	var running, peak atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "limited"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return out{}, nil
	}, fn.WithConcurrency(2)))
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = fntest.Invoke[out](t, h, in{}) }()
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || p > 2 {
		t.Fatalf("peak concurrency %d, want 1..2", p)
	}
}

func TestDeadlineHeader(t *testing.T) {
	var got atomic.Value
	h := fntest.Start(t, fn.Config{Name: "dl"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		d, _ := ctx.Deadline()
		got.Store(d)
		return out{}, nil
	}, fn.WithTimeout(time.Minute)))
	want := time.Now().Add(7 * time.Second).UTC().Truncate(time.Microsecond)
	msg := &nats.Msg{Subject: "fn.dl", Data: []byte(`{"n":1}`), Header: nats.Header{}}
	msg.Header.Set(wire.HeaderDeadline, want.Format(time.RFC3339Nano))
	if _, err := h.NC.RequestMsg(msg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := got.Load().(time.Time); !d.Equal(want) {
		t.Errorf("handler deadline %s, want %s", d, want)
	}

	// A deadline already past is refused without running the handler.
	got.Store(time.Time{})
	msg.Header.Set(wire.HeaderDeadline, time.Now().Add(-time.Second).Format(time.RFC3339Nano))
	reply, err := h.NC.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if we := wire.ReplyError(reply.Header, reply.Data); we == nil || we.Code != wire.CodeDeadlineExceeded {
		t.Errorf("past deadline: %v", we)
	}
	if !got.Load().(time.Time).IsZero() {
		t.Error("handler ran for a request whose deadline had passed")
	}
}

func TestErrorsAndPanics(t *testing.T) {
	var calls atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "bad"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		switch i.N {
		case 1:
			panic("kaboom")
		case 2:
			return out{}, errors.New("secret detail")
		case 3:
			return out{N: -5}, nil // violates the output schema
		case 4:
			return out{}, fn.Errorf(fn.CodeConflict, "already there")
		}
		calls.Add(1)
		return out{N: 1}, nil
	}))
	for _, tt := range []struct {
		n    int
		code wire.Code
	}{{1, wire.CodeInternal}, {2, wire.CodeInternal}, {3, wire.CodeInternal}, {4, wire.CodeConflict}} {
		data, we := h.Request(t, []byte(`{"n":`+string(rune('0'+tt.n))+`}`))
		if we == nil || we.Code != tt.code {
			t.Fatalf("n=%d: got %v", tt.n, we)
		}
		if bytes.Contains(data, []byte("secret")) || bytes.Contains(data, []byte("kaboom")) {
			t.Fatalf("n=%d leaked: %s", tt.n, data)
		}
	}
	if _, err := fntest.Invoke[out](t, h, in{N: 0}); err != nil || calls.Load() != 1 {
		t.Fatalf("after a panic the instance must keep serving: %v", err)
	}
	if st := h.Instance.Stats(); st.Panics != 1 || st.Failed != 4 || st.Completed != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestDrain: Stop waits for a request already running and its caller gets
// the answer.
func TestDrain(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	started := make(chan struct{})
	var once sync.Once
	release := make(chan struct{})
	ctx := context.Background()
	inst, err := fn.Start(ctx, nc, fn.Config{Name: "slow"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		if i.N == 2 {
			return out{}, nil // a probe sent before the unsubscribe took effect
		}
		once.Do(func() { close(started) })
		<-release
		return out{N: 7}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	caller := natstest.Connect(t, s)
	replies := make(chan *nats.Msg, 1)
	go func() {
		m, err := caller.Request("fn.slow", []byte(`{"n":1}`), 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		replies <- m
	}()
	<-started
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		stopped <- inst.Stop(sctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	// New requests are refused while draining: nobody listens any more.
	natstest.WaitFor(t, 5*time.Second, "subscription to go", func() bool {
		_, err := caller.Request("fn.slow", []byte(`{"n":2}`), time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if m := <-replies; m == nil || string(m.Data) != `{"n":7}` {
		t.Fatalf("in-flight request lost: %v", m)
	}
}

func TestMicroDiscovery(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double", Description: "doubles"}, fn.Handle(double))
	msg, err := h.NC.Request("$SRV.INFO.double", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "double" || info.Description != "doubles" || len(info.Endpoints) != 2 ||
		info.Endpoints[1].Subject != "yard.gw.double" || info.Endpoints[1].QueueGroup != "fn.double" {
		t.Fatalf("info %+v", info)
	}
	ep := info.Endpoints[0]
	if ep.Subject != "fn.double" || ep.QueueGroup != "fn.double" || !json.Valid([]byte(ep.Metadata["input_schema"])) ||
		!strings.Contains(ep.Metadata["output_schema"], `"n"`) {
		t.Errorf("endpoint %+v", ep)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	for _, tt := range []struct {
		cfg fn.Config
		h   *fn.Handler
	}{
		{fn.Config{Name: "Bad.Name"}, fn.Handle(double)},
		{fn.Config{Name: "ok"}, nil},
		{fn.Config{Name: "ok"}, fn.Handle(double, fn.WithTimeout(0))},
		{fn.Config{Name: "ok"}, fn.Handle(double, fn.WithConcurrency(0))},
		{fn.Config{Name: "ok"}, fn.Handle(func(context.Context, chan int) (out, error) { return out{}, nil })},
	} {
		if _, err := fn.Start(context.Background(), nc, tt.cfg, tt.h); err == nil {
			t.Errorf("Start(%+v) succeeded", tt.cfg)
		}
	}
}

func TestDeployedInstance(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	ctx := context.Background()
	// A deploy provisions the function; the instance only binds.
	js, _ := jetstream.New(nc)
	p, err := provision.New(ctx, js, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, &registry.Spec{Name: "double", Version: 2, Timeout: registry.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	startFn(t, nc, fn.Config{Name: "double", DeployedVersion: 2}, fn.Handle(double))
	for _, subj := range []string{"fn.double", "fn.double.v2"} {
		m, err := nc.Request(subj, []byte(`{"n":2}`), 5*time.Second)
		if err != nil || string(m.Data) != `{"n":4}` {
			t.Fatalf("%s: %v %v", subj, m, err)
		}
	}
	m, err := nc.Request("$SRV.INFO.double", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(m.Data, &info); err != nil || info.Version != "2.0.0" || len(info.Endpoints) != 3 {
		t.Fatalf("info %+v", info)
	}
	// The deploy owns the spec: a deployed instance writes none.
	if kv, err := js.KeyValue(ctx, wire.BucketFunctions); err == nil {
		if _, err := kv.Get(ctx, "double"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("deployed instance wrote its spec: %v", err)
		}
	}
}

// TestIntegralNumbers: 1.0 and 1e2 are integers to JSON Schema, and the
// handler gets them as such instead of a Go decoding error.
func TestIntegralNumbers(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	for body, want := range map[string]string{`{"n":1.0}`: `{"n":2}`, `{"n":1e2}`: `{"n":200}`, `{"n":2.50e1}`: `{"n":50}`} {
		data, we := h.Request(t, []byte(body))
		if we != nil || string(data) != want {
			t.Errorf("%s: got %s %v, want %s", body, data, we, want)
		}
	}
	if _, we := h.Request(t, []byte(`{"n":1.5}`)); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Errorf("1.5 for an integer: %v", we)
	}
}

// TestServe: Serve serves until its context ends, then drains and returns.
func TestServe(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn.Serve(ctx, nc, fn.Config{Name: "double"}, fn.Handle(double)) }()
	natstest.WaitFor(t, 5*time.Second, "Serve to answer", func() bool {
		m, err := nc.Request("fn.double", []byte(`{"n":3}`), time.Second)
		return err == nil && string(m.Data) == `{"n":6}`
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request("fn.double", []byte(`{"n":3}`), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("after Serve returned: %v", err)
	}
}

// TestRequestIDChecked: a NATS caller's Yard-Request-Id is held to the
// gateway's rule, since it goes into logs and records as it is.
func TestRequestIDChecked(t *testing.T) {
	var ran atomic.Int32
	h := fntest.Start(t, fn.Config{Name: "rid"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		ran.Add(1)
		return out{N: i.N}, nil
	}))
	for _, id := range []string{"ok-1", "x\nlevel=ERROR msg=forged", strings.Repeat("a", 200)} {
		msg := &nats.Msg{Subject: "fn.rid", Data: []byte(`{"n":1}`), Header: nats.Header{}}
		msg.Header.Set(wire.HeaderRequestID, id)
		reply, err := h.NC.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		we := wire.ReplyError(reply.Header, reply.Data)
		if valid := wire.ValidateRequestID(id) == nil; valid != (we == nil) {
			t.Errorf("id %q: error %v", id, we)
		} else if !valid && (we.Code != wire.CodeInvalidArgument || reply.Header.Get(wire.HeaderRequestID) == id) {
			t.Errorf("id %q: %v, echoed %q", id, we, reply.Header.Get(wire.HeaderRequestID))
		}
	}
	if ran.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", ran.Load())
	}
}

// TestGatewaySubject: requests on yard.gw.<name> from a gateway (its
// reply goes to the gateway's inbox) that checked them against this
// instance's schemas are not checked again; any other request there is
// (other schemas, another sender's inbox). The output is always checked.
func TestGatewaySubject(t *testing.T) {
	h := fntest.Start(t, fn.Config{Name: "double"}, fn.Handle(double))
	gw := natstest.ConnectURL(t, h.NC.ConnectedUrl(), nats.CustomInboxPrefix(roles.GatewayInbox))
	js, err := jetstream.New(h.NC)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := reg.Get(context.Background(), "double")
	if err != nil || spec.SchemaHash == "" {
		t.Fatalf("double's spec: %+v, %v", spec, err)
	}
	mine := spec.SchemaHash
	call := func(nc *nats.Conn, hash, body string) *wire.Error {
		t.Helper()
		msg := &nats.Msg{Subject: "yard.gw.double", Data: []byte(body), Header: nats.Header{wire.HeaderSchemaHash: {hash}}}
		m, err := nc.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if we := wire.ReplyError(m.Header, m.Data); we != nil {
			return we
		}
		if body == `{"n":5000}` && string(m.Data) != `{"n":10000}` {
			t.Fatalf("yard.gw.double %s: %s", body, m.Data)
		}
		return nil
	}
	if we := call(gw, mine, `{"n":5000}`); we != nil {
		t.Fatalf("validated input, same schemas: %v", we)
	}
	if we := call(gw, "other", `{"n":5000}`); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("checked against other schemas: %v; want it checked again", we)
	}
	if we := call(h.NC, mine, `{"n":5000}`); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("not from a gateway's inbox: %v; want it checked again", we)
	}
	if _, we := h.Request(t, []byte(`{"n":5000}`)); we == nil || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("fn.double still validates: %v", we)
	}
	if we := call(gw, mine, `{"n":-1}`); we == nil || we.Code != wire.CodeInternal {
		t.Fatalf("output off its schema: %v", we)
	}
}

// TestJetStreamDeliveriesIgnored: a push consumer may deliver to any
// subject, whatever its creator may publish to; an instance takes no
// request delivered that way (its reply is a JetStream ack subject).
func TestJetStreamDeliveriesIgnored(t *testing.T) {
	var ran atomic.Int64
	h := fntest.Start(t, fn.Config{Name: "count"}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		ran.Add(1)
		return out{N: i.N}, nil
	}))
	js, err := jetstream.New(h.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "INJECT", Subjects: []string{"inject.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "inject.a", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	// A push consumer (the legacy API: deliver_subject) aimed at fn.count.
	acks, err := h.NC.SubscribeSync("$JS.ACK.INJECT.>")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := h.NC.SubscribeSync("fn.count")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"stream_name": "INJECT", "config": map[string]any{
		"deliver_subject": "fn.count", "ack_policy": "explicit", "ack_wait": int64(time.Hour)}})
	if _, err := h.NC.Request("$JS.API.CONSUMER.CREATE.INJECT", cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := seen.NextMsg(10 * time.Second); err != nil || !strings.HasPrefix(m.Reply, "$JS.ACK.INJECT.") {
		t.Fatalf("the delivery on fn.count: %v, %v", m, err)
	}
	// The instance neither ran nor answered on the ack subject; a real
	// request after it is served.
	if _, we := h.Request(t, []byte(`{"n":2}`)); we != nil {
		t.Fatal(we)
	}
	if n := ran.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want 1 (only the real request)", n)
	}
	if m, err := acks.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("the instance answered the delivery on %s", m.Subject)
	}
}
