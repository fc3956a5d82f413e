package fn

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

type manifestIn struct {
	Name string `json:"name"`
}

func TestManifest(t *testing.T) {
	h := Handle(func(ctx context.Context, in manifestIn) (manifestIn, error) { return in, nil })
	var stdout, stderr bytes.Buffer
	code := run([]string{ManifestFlag}, func(string) string { return "" }, &stdout, &stderr, Config{Name: "echo", Description: "echoes"}, h)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var spec registry.Spec
	if err := json.Unmarshal(stdout.Bytes(), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "echo" || spec.Description != "echoes" || spec.Timeout.D() != DefaultTimeout ||
		!strings.Contains(string(spec.InputSchema), `"name"`) || spec.SchemaHash == "" {
		t.Errorf("manifest %+v", spec)
	}
	if err := spec.Validate(); err != nil {
		t.Errorf("manifest does not validate: %v", err)
	}
}

func TestRunUsage(t *testing.T) {
	h := Handle(func(ctx context.Context, in manifestIn) (manifestIn, error) { return in, nil })
	var out, errb bytes.Buffer
	if code := run([]string{"--bogus"}, func(string) string { return "" }, &out, &errb, Config{Name: "echo"}, h); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code := run(nil, func(string) string { return "" }, &out, &errb, Config{Name: "Echo"}, h); code != 2 {
		t.Errorf("bad name: exit %d", code)
	}
	// No server at the URL: a clear error and exit 1, not a hang.
	errb.Reset()
	if code := run(nil, func(string) string { return "nats://127.0.0.1:1" }, &out, &errb, Config{Name: "echo"}, h); code != 1 ||
		!strings.Contains(errb.String(), "connect") {
		t.Errorf("no server: exit %d, %s", code, errb.String())
	}
}
