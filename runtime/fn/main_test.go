package fn

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type manifestIn struct {
	Name string `json:"name"`
}

func TestManifest(t *testing.T) {
	h := Handle(func(ctx context.Context, in manifestIn) (manifestIn, error) { return in, nil })
	var stdout, stderr bytes.Buffer
	code := run([]string{wire.ManifestFlag}, func(string) string { return "" }, &stdout, &stderr, Config{Name: "echo", Description: "echoes"}, h)
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
	env := func(k string) string { return map[string]string{"NATS_URL": "nats://127.0.0.1:1"}[k] }
	if code := run(nil, env, &out, &errb, Config{Name: "echo"}, h); code != 1 ||
		!strings.Contains(errb.String(), "connect") {
		t.Errorf("no server: exit %d, %s", code, errb.String())
	}
}

func TestDeployEnv(t *testing.T) {
	h := Handle(func(ctx context.Context, in manifestIn) (manifestIn, error) { return in, nil })
	env := map[string]string{wire.EnvVersion: "3", wire.EnvTimeout: "2s", wire.EnvConcurrency: "7", wire.EnvMaxAttempts: "2", wire.EnvBackoff: "10ms, 1s"}
	var cfg Config
	if err := applyDeployEnv(func(k string) string { return env[k] }, &cfg, h); err != nil {
		t.Fatal(err)
	}
	if cfg.DeployedVersion != 3 || h.timeout != 2*time.Second || h.concurrency != 7 || h.maxAttempts != 2 ||
		len(h.backoff) != 2 || h.backoff[1] != time.Second {
		t.Errorf("applied: %+v %+v", cfg, h)
	}
	bad := map[string]string{wire.EnvVersion: "0", wire.EnvTimeout: "soon", wire.EnvConcurrency: "-1", wire.EnvMaxAttempts: "x", wire.EnvBackoff: "1s,,2s"}
	err := applyDeployEnv(func(k string) string { return bad[k] }, &cfg, h)
	for k := range bad {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("no error for %s in %v", k, err)
		}
	}
}
