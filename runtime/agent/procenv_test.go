package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// TestInstanceEnv: an instance's environment is the platform's variables,
// the spec's Env and the safe base, never the agent's own variables.
func TestInstanceEnv(t *testing.T) {
	t.Setenv("YARD_TEST_SECRET", "x")
	t.Setenv("TZ", "Europe/Paris")
	a := &Agent{cfg: Config{NATSURL: "tls://127.0.0.1:4222", CA: "/etc/yard-ca.pem", Env: []string{"YARD_ALLOW=1"}}}
	spec := &registry.Spec{Name: "greet", Version: 3, Env: map[string]string{"GREETING": "Hi"}}
	dir := filepath.Join(t.TempDir(), "greet-v3-abcd1234")
	env := a.env(spec, "greet-v3-abcd1234", dir)
	for _, want := range []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + filepath.Join(dir, "tmp"), "TZ=Europe/Paris",
		"NATS_URL=tls://127.0.0.1:4222", "NATS_CA=/etc/yard-ca.pem", "YARD_VERSION=3", "YARD_INSTANCE=greet-v3-abcd1234",
		"YARD_READY_FILE=" + filepath.Join(dir, "ready"), "GREETING=Hi", "YARD_ALLOW=1",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %q", want, env)
		}
	}
	for _, kv := range env {
		// The credential is the instance's own, added at each start.
		if strings.HasPrefix(kv, "YARD_TEST_SECRET=") || strings.HasPrefix(kv, "NATS_CREDS=") {
			t.Errorf("the agent's own variable reached the instance: %q", env)
		}
	}
}

// TestInstanceOTelEnv: the agent's OTEL_* settings reach the instance,
// with the function's own service name unless the spec sets one.
func TestInstanceOTelEnv(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_SERVICE_NAME", "yard")
	t.Setenv("NOT_OTEL_X", "1")
	a := &Agent{cfg: Config{NATSURL: "nats://127.0.0.1:4222"}}
	dir := filepath.Join(t.TempDir(), "greet-v1-abcd1234")
	env := a.env(&registry.Spec{Name: "greet", Version: 1}, "greet-v1-abcd1234", dir)
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_SERVICE_NAME=greet"} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %q", want, env)
		}
	}
	if slices.Contains(env, "OTEL_SERVICE_NAME=yard") || slices.Contains(env, "NOT_OTEL_X=1") {
		t.Errorf("the agent's own variables reached the instance: %q", env)
	}
	// A spec's env comes later, and the last value of a name wins.
	env = a.env(&registry.Spec{Name: "greet", Version: 1, Env: map[string]string{"OTEL_SERVICE_NAME": "shop-greet"}}, "greet-v1-abcd1234", dir)
	if i, j := slices.Index(env, "OTEL_SERVICE_NAME=greet"), slices.Index(env, "OTEL_SERVICE_NAME=shop-greet"); j < i {
		t.Errorf("the spec's service name does not come last: %q", env)
	}
}

// TestNamedBinary: the binary an instance runs is the artifact itself
// under the function's name, and follows the artifact when it is replaced.
func TestNamedBinary(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: Config{Dir: dir}}
	art := filepath.Join(dir, "artifact")
	if err := os.WriteFile(art, []byte("one"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := &registry.Spec{Name: "greet", Version: 3, Artifact: &registry.Artifact{Digest: "sha256:0123456789abcdef"}}
	check := func(want string) {
		t.Helper()
		path, err := a.namedBinary(spec, art)
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, "bin", "greet-v3-0123456789ab", "greet") {
			t.Fatalf("path %s", path)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Fatalf("%s holds %q, %v; want %q", path, b, err, want)
		}
	}
	check("one")
	check("one") // reused
	// A fetch replaces the artifact's file (a new inode): the name follows.
	if err := os.WriteFile(art+".new", []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(art+".new", art); err != nil {
		t.Fatal(err)
	}
	check("two")
	if left, _ := filepath.Glob(filepath.Join(dir, "bin", "*", ".*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
