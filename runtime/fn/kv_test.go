package fn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
)

func kvContext(t *testing.T) context.Context {
	t.Helper()
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Buckets(t, nc, "kv_test-1", "kv_json", "kv_counter")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return fn.WithConn(ctx, nc)
}

func TestKVBasics(t *testing.T) {
	ctx := kvContext(t)
	kv, err := fn.OpenKV(ctx, "kv_test-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := fn.OpenKV(ctx, "kv_test-1")
	if err != nil || again != kv {
		t.Fatalf("second open: %p %v, want the cached %p", again, err, kv)
	}

	keys, err := kv.Keys(ctx)
	if err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("keys of empty bucket: %#v %v, want empty slice", keys, err)
	}
	if _, _, err := kv.Get(ctx, "a"); !errors.Is(err, fn.ErrKeyNotFound) {
		t.Fatalf("get missing: %v, want ErrKeyNotFound", err)
	}

	rev1, err := kv.Create(ctx, "a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "a", []byte("again")); !errors.Is(err, fn.ErrKeyExists) || errors.Is(err, fn.ErrRevisionConflict) {
		t.Fatalf("create existing: %v, want ErrKeyExists", err)
	}
	v, rev, err := kv.Get(ctx, "a")
	if err != nil || string(v) != "one" || rev != rev1 {
		t.Fatalf("get: %q %d %v, want one %d", v, rev, err, rev1)
	}

	rev2, err := kv.Update(ctx, "a", []byte("two"), rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("update: %d %v", rev2, err)
	}
	if _, err := kv.Update(ctx, "a", []byte("stale"), rev1); !errors.Is(err, fn.ErrRevisionConflict) || errors.Is(err, fn.ErrKeyExists) {
		t.Fatalf("stale update: %v, want ErrRevisionConflict", err)
	}
	if v, _, _ := kv.Get(ctx, "a"); string(v) != "two" {
		t.Fatalf("after stale update: %q, want two", v)
	}
	// Update of a missing key with revision 0 creates nothing it should not:
	// a non-zero revision on a missing key is a conflict.
	if _, err := kv.Update(ctx, "missing", []byte("x"), 42); !errors.Is(err, fn.ErrRevisionConflict) {
		t.Fatalf("update missing key: %v, want ErrRevisionConflict", err)
	}

	if _, err := kv.Put(ctx, "b", []byte("bee")); err != nil {
		t.Fatal(err)
	}
	keys, err = kv.Keys(ctx)
	if err != nil || len(keys) != 2 || keys[0] != "a" || keys[1] != "b" {
		t.Fatalf("keys: %v %v, want [a b]", keys, err)
	}

	if err := kv.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.Get(ctx, "a"); !errors.Is(err, fn.ErrKeyNotFound) {
		t.Fatalf("get deleted: %v, want ErrKeyNotFound", err)
	}
	keys, _ = kv.Keys(ctx)
	if len(keys) != 1 || keys[0] != "b" {
		t.Fatalf("keys after delete: %v, want [b]", keys)
	}
	// A deleted key can be created again.
	reborn, err := kv.Create(ctx, "a", []byte("reborn"))
	if err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	// A delete that names a stale revision changes nothing.
	if _, err := kv.Put(ctx, "a", []byte("newer")); err != nil {
		t.Fatal(err)
	}
	if err := kv.DeleteRevision(ctx, "a", reborn); !errors.Is(err, fn.ErrRevisionConflict) {
		t.Fatalf("stale delete: %v, want ErrRevisionConflict", err)
	}
	v, cur, err := kv.Get(ctx, "a")
	if err != nil || string(v) != "newer" {
		t.Fatalf("after stale delete: %q %v", v, err)
	}
	if err := kv.DeleteRevision(ctx, "a", cur); err != nil {
		t.Fatalf("delete at the current revision: %v", err)
	}
	if _, _, err := kv.Get(ctx, "a"); !errors.Is(err, fn.ErrKeyNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestOpenKVErrors(t *testing.T) {
	if _, err := fn.OpenKV(context.Background(), "ok"); !errors.Is(err, fn.ErrNoConn) {
		t.Errorf("no conn: %v, want ErrNoConn", err)
	}
	ctx := kvContext(t)
	for _, bad := range []string{"", "a.b", "a b", "a*", "a>", "ä"} {
		if _, err := fn.OpenKV(ctx, bad); err == nil {
			t.Errorf("bucket %q: no error", bad)
		}
	}
}

type counter struct {
	N int `json:"n"`
}

func TestUpdateJSON(t *testing.T) {
	ctx := kvContext(t)
	kv, err := fn.OpenKV(ctx, "kv_json")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fn.GetJSON[counter](ctx, kv, "c"); !errors.Is(err, fn.ErrKeyNotFound) {
		t.Fatalf("GetJSON missing: %v", err)
	}
	v, err := fn.UpdateJSON(ctx, kv, "c", func(c *counter, exists bool) error {
		if exists {
			t.Error("exists on first update")
		}
		c.N = 5
		return nil
	})
	if err != nil || v.N != 5 {
		t.Fatalf("first update: %+v %v", v, err)
	}
	boom := errors.New("boom")
	if _, err := fn.UpdateJSON(ctx, kv, "c", func(c *counter, exists bool) error {
		c.N = 99
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("change error: %v, want boom", err)
	}
	got, _, err := fn.GetJSON[counter](ctx, kv, "c")
	if err != nil || got.N != 5 {
		t.Fatalf("after failed change: %+v %v, want 5 (nothing written)", got, err)
	}
}

func TestUpdateJSONConcurrentIncrements(t *testing.T) {
	ctx := kvContext(t)
	kv, err := fn.OpenKV(ctx, "kv_counter")
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := fn.UpdateJSON(ctx, kv, "hits", func(c *counter, _ bool) error {
					c.N++
					return nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _, err := fn.GetJSON[counter](ctx, kv, "hits")
	if err != nil || got.N != workers*each {
		t.Fatalf("counter %d (%v), want %d", got.N, err, workers*each)
	}
}
