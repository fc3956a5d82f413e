package fn_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestUndeclaredUseFails: a handler's call, publish or bucket that its
// Config does not declare fails with an error naming the declaration to
// add; declared ones work, and the platform created the declared bucket.
func TestUndeclaredUseFails(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	startFn(t, nc, fn.Config{Name: "double"}, fn.Handle(double))
	errs := make(chan error, 8)
	startFn(t, nc, fn.Config{
		Name: "user", Calls: []string{"double"}, Publishes: []string{"things.*"}, Buckets: []string{"things"},
		Streams: []fn.Stream{{Name: "THINGS", Subjects: []string{"things.>"}}},
	}, fn.Handle(func(ctx context.Context, i in) (out, error) {
		_, err := fn.Invoke[out](ctx, "double", in{N: 1})
		errs <- err
		_, err = fn.Invoke[out](ctx, "greet", in{N: 1})
		errs <- err
		errs <- fn.Publish(ctx, "things.made", in{N: 1})
		errs <- fn.Publish(ctx, "other.made", in{N: 1})
		_, err = fn.OpenKV(ctx, "things")
		errs <- err
		_, err = fn.OpenKV(ctx, "others")
		errs <- err
		return out{}, nil
	}))
	if _, err := nc.Request("fn.user", []byte(`{"n":1}`), 10e9); err != nil {
		t.Fatal(err)
	}
	for k, want := range []string{"", `add "greet" to Config.Calls`, "", "Config.Publishes", "", `add "others" to Config.Buckets`} {
		err := <-errs
		switch {
		case want == "" && err != nil:
			t.Errorf("use %d: declared, but %v", k, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fn.ErrUndeclared)):
			t.Errorf("use %d: %v, want an ErrUndeclared saying %q", k, err, want)
		}
	}
}

func TestDeclarationsChecked(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	for _, cfg := range []fn.Config{
		{Name: "x", Calls: []string{"Bad Name"}},
		{Name: "x", Publishes: []string{"yard.results.x"}},
		{Name: "x", Publishes: []string{"a..b"}},
		{Name: "x", Publishes: []string{"a.>.b"}},
		{Name: "x", Buckets: []string{"yard_functions"}},
		{Name: "x", Buckets: []string{"a.b"}},
		{Name: "x", Streams: []fn.Stream{{Name: "YARD_ASYNC", Subjects: []string{"x.>"}}}},
		{Name: "x", Streams: []fn.Stream{{Name: "X", Subjects: []string{"fn.>"}}}},
	} {
		if _, err := fn.Start(context.Background(), nc, cfg, fn.Handle(double)); err == nil || !strings.Contains(err.Error(), "invalid config") {
			t.Errorf("%+v: %v, want an invalid config", cfg, err)
		}
	}
}

// TestFailedStartLeavesNothingRunning: an undeployed instance of a
// deployed function that declares more than the deployment fails to start,
// says why, and pulls no work afterwards.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	fntest.Platform(t, nc)
	ctx := context.Background()
	js, _ := jetstream.New(nc)
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	spec := &registry.Spec{Name: "double", Version: 1, Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`)}
	if _, err := reg.Deploy(ctx, spec, 0); err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int64
	_, err = fn.Start(ctx, nc, fn.Config{Name: "double", Events: []fn.Subscription{fn.On("things.made", func(context.Context, in) error { return nil })},
		Streams: []fn.Stream{{Name: "THINGS", Subjects: []string{"things.>"}}}},
		fn.Handle(func(ctx context.Context, i in) (out, error) { ran.Add(1); return out{}, nil }))
	if err == nil || !strings.Contains(err.Error(), "provisioned v1's declarations") {
		t.Fatalf("start: %v", err)
	}
	s, _ := openStore(t, nc)
	natstest.WaitFor(t, 10*time.Second, "the deployed function's consumer", func() bool {
		_, err := js.Consumer(ctx, wire.StreamAsync, wire.AsyncConsumer("double"))
		return err == nil
	})
	// A proper instance serves the work; the failed one must take none.
	startFn(t, nc, fn.Config{Name: "double"}, fn.Handle(double))
	for range 20 {
		rec := submit(t, s, "double", `{"n":1}`)
		if got := wait(t, s, rec.ID); got.Status != invocation.Succeeded {
			t.Fatalf("%+v", got)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("the instance that failed to start ran %d invocations", n)
	}
}
