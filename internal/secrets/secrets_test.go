package secrets

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func setup(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc := natstest.Connect(t, natstest.Run(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestSetNamesLoadRemove(t *testing.T) {
	ctx := context.Background()
	js := setup(t)

	// Reading before anything was set neither fails nor creates the bucket.
	if names, err := Names(ctx, js, "greet"); err != nil || len(names) != 0 {
		t.Fatalf("names before: %v, %v", names, err)
	}
	if got, err := Load(ctx, js, "greet"); err != nil || len(got) != 0 {
		t.Fatalf("load before: %v, %v", got, err)
	}
	if _, err := js.KeyValue(ctx, wire.BucketSecrets); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a read created the bucket: %v", err)
	}

	want := map[string]string{"API_TOKEN": "s3cr3t", "DB_URL": "postgres://u:p@db/x", "EMPTY": ""}
	for k, v := range want {
		if err := Set(ctx, js, "greet", k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := Set(ctx, js, "greet-two", "API_TOKEN", "other"); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, wire.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.History() != 1 {
		t.Fatalf("bucket history: %v", err)
	}
	names, err := Names(ctx, js, "greet")
	if err != nil || !slices.Equal(names, []string{"API_TOKEN", "DB_URL", "EMPTY"}) {
		t.Fatalf("names: %v, %v", names, err)
	}
	got, err := Load(ctx, js, "greet")
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("load: %v, %v", got, err)
	}
	// Overwrite, then remove.
	if err := Set(ctx, js, "greet", "API_TOKEN", "rotated"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, js, "greet", "DB_URL"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, js, "greet", "DB_URL"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	got, err = Load(ctx, js, "greet")
	if err != nil || !maps.Equal(got, map[string]string{"API_TOKEN": "rotated", "EMPTY": ""}) {
		t.Fatalf("load after: %v, %v", got, err)
	}
	if got, err := Load(ctx, js, "greet-two"); err != nil || !maps.Equal(got, map[string]string{"API_TOKEN": "other"}) {
		t.Fatalf("another function's secrets: %v, %v", got, err)
	}
}

func TestInvalid(t *testing.T) {
	ctx := context.Background()
	js := setup(t)
	const value = "hunter2-do-not-print"
	for _, tt := range []struct{ fn, name, value string }{
		{"Bad.Name", "A", value},
		{"greet", "1A", value},
		{"greet", "A-B", value},
		{"greet", "A.B", value},
		{"greet", "", value},
		{"greet", "NATS_URL", value},
		{"greet", "NATS_CREDS", value},
		{"greet", "YARD_VERSION", value},
		{"greet", "A", value + "\x00"},
		{"greet", "A", value + strings.Repeat("x", MaxValueSize)},
	} {
		err := Set(ctx, js, tt.fn, tt.name, tt.value)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Set(%q, %q): %v, want ErrInvalid", tt.fn, tt.name, err)
		} else if strings.Contains(err.Error(), value) {
			t.Errorf("the error shows the value: %v", err)
		}
	}
	if _, err := js.KeyValue(ctx, wire.BucketSecrets); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a refused Set created the bucket: %v", err)
	}
	if err := Remove(ctx, js, "greet", "YARD_X"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("remove reserved: %v", err)
	}
	if err := Remove(ctx, js, "greet", "A"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove without a bucket: %v", err)
	}
}

// TestLoadRefusesForeignEntries: an entry written around Set fails the
// load, naming the key and not the value.
func TestLoadRefusesForeignEntries(t *testing.T) {
	ctx := context.Background()
	js := setup(t)
	if err := Set(ctx, js, "greet", "OK", "fine"); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, wire.BucketSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "greet.YARD_INSTANCE", "sneaky-value"); err != nil {
		t.Fatal(err)
	}
	_, err = Load(ctx, js, "greet")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "greet.YARD_INSTANCE") || strings.Contains(err.Error(), "sneaky") {
		t.Fatalf("load: %v", err)
	}
}
