package fn_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
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
