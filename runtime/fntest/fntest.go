// Package fntest runs a function in a test the way production does: on a
// real, embedded NATS server with JetStream, reached over NATS
// request-reply. A function's test calls it in a few lines:
//
//	h := fntest.Start(t, fn.Config{Name: "greet"}, fn.Handle(Greet))
//	out, err := fntest.Invoke[GreetOut](t, h, GreetIn{Name: "Ada"})
package fntest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Harness is a running function and a client connection to call it.
type Harness struct {
	Name     string
	NC       *nats.Conn
	Server   *natsserver.Server
	Instance *fn.Instance
}

// Start serves h on a fresh embedded server and stops both when the test
// ends.
func Start(t testing.TB, cfg fn.Config, h *fn.Handler) *Harness {
	t.Helper()
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	Platform(t, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, nc, cfg, h)
	if err != nil {
		t.Fatalf("fntest: start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := inst.Stop(ctx); err != nil {
			t.Errorf("fntest: stop %s: %v", cfg.Name, err)
		}
	})
	return &Harness{Name: cfg.Name, NC: nc, Server: s.Server, Instance: inst}
}

// Platform does in-process what the agents do, short of running
// processes: it answers the registrations of functions run without a
// deploy, and provisions every spec in the registry (consumers, streams,
// buckets, schedules) as it changes, until the test ends. Start calls it;
// call it yourself before fn.Start on a server of your own.
func Platform(t testing.TB, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("fntest: %v", err)
	}
	p, err := provision.New(ctx, js, nil)
	if err != nil {
		t.Fatalf("fntest: platform: %v", err)
	}
	stop, err := p.Serve(context.Background(), nc)
	if err != nil {
		t.Fatalf("fntest: platform: %v", err)
	}
	fctx, cancelFollow := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		_ = p.Follow(fctx)
	}()
	t.Cleanup(func() {
		stop()
		cancelFollow()
		<-followed
	})
}

// Buckets creates key-value buckets as the platform does for the buckets a
// function declares, for tests that use fn.OpenKV outside a handler (with
// fn.WithConn).
func Buckets(t testing.TB, nc *nats.Conn, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("fntest: %v", err)
	}
	for _, b := range names {
		if err := provision.EnsureBucket(ctx, js, b, ""); err != nil {
			t.Fatalf("fntest: %v", err)
		}
	}
}

// Request sends raw bytes to the function and returns the reply data or
// the error it answered with.
func (h *Harness) Request(t testing.TB, data []byte) ([]byte, *wire.Error) {
	t.Helper()
	subject, err := wire.FnSubject(h.Name)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := h.NC.RequestMsg(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, 10*time.Second)
	if err != nil {
		t.Fatalf("fntest: request %s: %v", subject, err)
	}
	return msg.Data, wire.ReplyError(msg.Header, msg.Data)
}

// Invoke sends in as JSON and decodes the reply into Out. A function error
// is returned as *wire.Error with its code; anything else fails the test.
func Invoke[Out any](t testing.TB, h *Harness, in any) (Out, error) {
	t.Helper()
	var out Out
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("fntest: encode input: %v", err)
	}
	reply, we := h.Request(t, data)
	if we != nil {
		return out, we
	}
	if err := json.Unmarshal(reply, &out); err != nil {
		t.Fatalf("fntest: decode reply %q: %v", reply, err)
	}
	return out, nil
}
