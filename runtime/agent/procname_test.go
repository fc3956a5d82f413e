package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/agent"
)

// TestInstanceProcess looks at a running instance the way an operator
// does, through /proc: ps shows the function, version and instance, top
// the function's name; the environment holds what the platform gives and
// nothing of the agent's own; every log line names its instance.
func TestInstanceProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Setenv("YARD_TEST_SECRET", "x") // the agent has it; the instance must not
	var logs natstest.Buffer
	e := newEnvWith(t, agent.Config{Output: &logs})
	e.deploy("Hi", 1)
	var o out
	e.waitFor("v1 to serve", func() bool {
		var err error
		o, err = e.call()
		return err == nil
	})
	ins := e.ag.Instances()["echo"]
	if len(ins) != 1 {
		t.Fatalf("instances %+v", ins)
	}
	id := ins[0].ID
	proc := filepath.Join("/proc", strconv.Itoa(o.PID))

	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "yard-fn echo v1 " + id + "\x00"; string(cmdline) != want {
		t.Errorf("cmdline %q, want %q", cmdline, want)
	}
	comm, err := os.ReadFile(filepath.Join(proc, "comm"))
	if err != nil {
		t.Fatal(err)
	}
	if string(comm) != "echo\n" {
		t.Errorf("comm %q, want %q", comm, "echo\n")
	}

	environ, err := os.ReadFile(filepath.Join(proc, "environ"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(bytes.TrimSuffix(environ, []byte{0}), []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		env[k] = v
	}
	if _, ok := env["YARD_TEST_SECRET"]; ok {
		t.Errorf("the instance sees the agent's YARD_TEST_SECRET: %q", environ)
	}
	for k, want := range map[string]string{"GREETING": "Hi", "YARD_INSTANCE": id, "YARD_VERSION": "1", "PATH": "/usr/local/bin:/usr/bin:/bin"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if env["NATS_URL"] == "" || !strings.HasSuffix(env["HOME"], id) || env["TMPDIR"] != filepath.Join(env["HOME"], "tmp") {
		t.Errorf("environment %q", environ)
	}
	allowed := map[string]bool{"GREETING": true, "NATS_URL": true, "PATH": true, "HOME": true, "TMPDIR": true,
		"TZ": true, "LANG": true, "LC_ALL": true, "SSL_CERT_FILE": true, "SSL_CERT_DIR": true}
	for k := range env {
		if !allowed[k] && !strings.HasPrefix(k, "YARD_") || k == "YARD_TEST_SECRET" {
			t.Errorf("unexpected variable %s in the instance's environment", k)
		}
	}

	// The SDK logs a line once it serves; on the agent's output it starts
	// with the instance.
	prefix := "echo/" + strings.TrimPrefix(id, "echo-") + ": "
	e.waitFor("a log line of the instance", func() bool { return strings.Contains(logs.String(), prefix) })
	for line := range strings.Lines(logs.String()) {
		if !strings.HasPrefix(line, prefix) {
			t.Errorf("log line without %q: %q", prefix, line)
		}
	}
}
