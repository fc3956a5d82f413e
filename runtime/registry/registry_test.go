package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func open(t *testing.T) (*registry.Registry, jetstream.JetStream) {
	t.Helper()
	s := natstest.Run(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return reg, js
}

func spec(name, hash string) *registry.Spec {
	return &registry.Spec{Name: name, InputSchema: []byte(`{}`), OutputSchema: []byte(`true`), SchemaHash: hash,
		Timeout: registry.Duration(5 * time.Second)}
}

func TestPutGetList(t *testing.T) {
	reg, js := open(t)
	ctx := context.Background()
	for _, n := range []string{"zeta", "alpha"} {
		if err := reg.Put(ctx, spec(n, "h1")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := reg.Get(ctx, "zeta")
	if err != nil || got.SchemaHash != "h1" || got.Timeout.D() != 5*time.Second || got.UpdatedAt.IsZero() {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "zeta" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := reg.Get(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get unknown = %v", err)
	}
	if _, err := reg.Get(ctx, "a.b"); !errors.Is(err, wire.ErrInvalidName) {
		t.Errorf("Get bad name = %v", err)
	}

	// Writing the same spec again does not add a revision.
	kv, _ := js.KeyValue(ctx, wire.BucketFunctions)
	before, _ := kv.Get(ctx, "zeta")
	if err := reg.Put(ctx, spec("zeta", "h1")); err != nil {
		t.Fatal(err)
	}
	after, _ := kv.Get(ctx, "zeta")
	if before.Revision() != after.Revision() {
		t.Errorf("unchanged spec rewritten: revision %d -> %d", before.Revision(), after.Revision())
	}
	if err := reg.Put(ctx, spec("zeta", "h2")); err != nil {
		t.Fatal(err)
	}
	if changed, _ := kv.Get(ctx, "zeta"); changed.Revision() == after.Revision() {
		t.Error("changed spec not written")
	}
	if err := reg.Delete(ctx, "zeta"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "zeta"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func TestPutRejectsBadSpecs(t *testing.T) {
	reg, _ := open(t)
	bad := []*registry.Spec{
		{Name: "Bad", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`), Timeout: registry.Duration(time.Second)},
		{Name: "ok", InputSchema: []byte(`{`), OutputSchema: []byte(`{}`), Timeout: registry.Duration(time.Second)},
		{Name: "ok", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`)},
		{Name: "ok", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`), Timeout: registry.Duration(time.Second), Concurrency: -1},
	}
	for _, s := range bad {
		if err := reg.Put(context.Background(), s); err == nil {
			t.Errorf("Put(%+v) succeeded", s)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d registry.Duration
	if err := d.UnmarshalJSON([]byte(`"1m30s"`)); err != nil || d.D() != 90*time.Second {
		t.Errorf("got %v, %v", d, err)
	}
	for _, bad := range []string{`90`, `"soon"`, `null`} {
		if err := d.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	b, _ := registry.Duration(2 * time.Second).MarshalJSON()
	if string(b) != `"2s"` {
		t.Errorf("marshal = %s", b)
	}
}
