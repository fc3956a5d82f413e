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
	a := &Agent{cfg: Config{NATSURL: "nats://127.0.0.1:4222", Creds: "/etc/yard.creds", Env: []string{"YARD_ALLOW=1"}}}
	spec := &registry.Spec{Name: "greet", Version: 3, Env: map[string]string{"GREETING": "Hi"}}
	dir := filepath.Join(t.TempDir(), "greet-v3-abcd1234")
	env := a.env(spec, "greet-v3-abcd1234", dir)
	for _, want := range []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + filepath.Join(dir, "tmp"), "TZ=Europe/Paris",
		"NATS_URL=nats://127.0.0.1:4222", "NATS_CREDS=/etc/yard.creds", "YARD_VERSION=3", "YARD_INSTANCE=greet-v3-abcd1234",
		"YARD_READY_FILE=" + filepath.Join(dir, "ready"), "GREETING=Hi", "YARD_ALLOW=1",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "YARD_TEST_SECRET=") {
			t.Errorf("the agent's own variable reached the instance: %q", env)
		}
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
