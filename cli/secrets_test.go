package cli

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// startJS runs a server and returns yard's environment for it and a
// JetStream context to look behind the commands.
func startJS(t *testing.T) (map[string]string, jetstream.JetStream) {
	t.Helper()
	s := natstest.Run(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"NATS_URL": s.ClientURL()}, js
}

// noValue fails the test when any of values shows in r's output.
func noValue(t *testing.T, what string, r result, values ...string) {
	t.Helper()
	for _, v := range values {
		if strings.Contains(r.stdout, v) || strings.Contains(r.stderr, v) {
			t.Fatalf("%s shows the value %q:\nstdout: %s\nstderr: %s", what, v, r.stdout, r.stderr)
		}
	}
}

func TestSecretsCommands(t *testing.T) {
	env, js := startJS(t)
	ctx := context.Background()
	const tok, pass, piped, envValue = "tok-value-1", "pw-value-2", "piped-value-3", "env-value-4"
	values := []string{tok, pass, piped, envValue}

	r := yard(t, env, "", "secrets", "set", "greet", "API_TOKEN="+tok, "DB_PASS="+pass)
	if r.code != 0 || !strings.Contains(r.stderr, "set secret API_TOKEN of greet") {
		t.Fatalf("set: %+v", r)
	}
	noValue(t, "set", r, values...)
	// KEY alone reads the value from stdin, one trailing newline dropped.
	if r = yard(t, env, piped+"\n", "secrets", "set", "greet", "FROM_STDIN"); r.code != 0 {
		t.Fatalf("set from stdin: %+v", r)
	}
	got, err := secrets.Load(ctx, js, "greet")
	want := map[string]string{"API_TOKEN": tok, "DB_PASS": pass, "FROM_STDIN": piped}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("load: %v, %v", got, err)
	}

	r = yard(t, env, "", "secrets", "ls", "greet")
	if r.code != 0 || r.stdout != "API_TOKEN\nDB_PASS\nFROM_STDIN\n" {
		t.Fatalf("ls: %+v", r)
	}
	r = yard(t, env, "", "secrets", "ls", "greet", "--json")
	var names []string
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &names) != nil || !slices.Equal(names, []string{"API_TOKEN", "DB_PASS", "FROM_STDIN"}) {
		t.Fatalf("ls --json: %+v", r)
	}
	noValue(t, "ls --json", r, values...)
	if r = yard(t, env, "", "secrets", "ls", "nobody", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("ls of a function without secrets: %+v", r)
	}

	if r = yard(t, env, "", "secrets", "rm", "greet", "DB_PASS"); r.code != 0 || !strings.Contains(r.stderr, "removed secret DB_PASS of greet") {
		t.Fatalf("rm: %+v", r)
	}
	if r = yard(t, env, "", "secrets", "rm", "greet", "DB_PASS"); r.code != ExitError || !strings.Contains(r.stderr, "has no secret DB_PASS") {
		t.Fatalf("rm twice: %+v", r)
	}
	delete(want, "DB_PASS")

	// Bad input: a usage error, the value never echoed, nothing stored.
	const bad = "bad-value-5"
	for _, tt := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"secrets", "set", "Greet", "A=" + bad}, "invalid function name"},
		{"", []string{"secrets", "set", "greet"}, "at least one"},
		{"", []string{"secrets", "set", "greet", "1A=" + bad}, "names are a letter"},
		{"", []string{"secrets", "set", "greet", "A-B=" + bad}, "names are a letter"},
		{"", []string{"secrets", "set", "greet", "=" + bad}, "names are a letter"},
		{"", []string{"secrets", "set", "greet", "NATS_URL=" + bad}, "reserved"},
		{"", []string{"secrets", "set", "greet", "NATS_CREDS=" + bad}, "reserved"},
		{"", []string{"secrets", "set", "greet", "YARD_VERSION=" + bad}, "reserved"},
		{"", []string{"secrets", "set", "greet", "OK=1", "YARD_X=" + bad}, "reserved"},
		{"", []string{"secrets", "set", "greet", "A=" + bad + "\x00"}, "NUL"},
		{"", []string{"secrets", "set", "greet", "A=" + bad + strings.Repeat("x", secrets.MaxValueSize)}, "limit"},
		{"", []string{"secrets", "set", "greet", "A=" + bad, "A=2"}, "twice"},
		{bad, []string{"secrets", "set", "greet", "A", "B"}, "at most one"},
		{"", []string{"secrets", "set", "greet", "EMPTY_STDIN"}, "stdin is empty"},
		{"", []string{"secrets", "rm", "greet", "YARD_X"}, "reserved"},
		{"", []string{"secrets", "rm", "greet"}, "a function name and a secret name"},
		{"", []string{"secrets", "rm", "Greet", "A"}, "invalid function name"},
		{"", []string{"secrets", "ls", "Greet"}, "invalid function name"},
		{"", []string{"secrets", "bogus"}, "unknown command"},
	} {
		r := yard(t, env, tt.stdin, tt.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, %q; want %d with %q", tt.args, r.code, r.stderr, ExitUsage, tt.want)
		}
		noValue(t, strings.Join(tt.args[:min(3, len(tt.args))], " "), r, bad)
	}
	if got, err := secrets.Load(ctx, js, "greet"); err != nil || !maps.Equal(got, want) {
		t.Fatalf("bad input changed the secrets: %v, %v", got, err)
	}

	// describe and ls show names, never values: neither the secrets'
	// nor the spec's env.
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Deploy(ctx, &registry.Spec{Name: "greet", Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`), Env: map[string]string{"GREETING": envValue}}, 0); err != nil {
		t.Fatal(err)
	}
	r = yard(t, env, "", "describe", "greet")
	if r.code != 0 || !regexpMatch(`env\s+GREETING\n`, r.stdout) || !regexpMatch(`secrets\s+API_TOKEN, FROM_STDIN\n`, r.stdout) {
		t.Fatalf("describe: %+v", r)
	}
	noValue(t, "describe", r, values...)
	r = yard(t, env, "", "describe", "greet", "--json")
	var d struct {
		Spec     registry.Spec    `json:"spec"`
		Versions []*registry.Spec `json:"versions"`
		Env      []string         `json:"env"`
		Secrets  []string         `json:"secrets"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &d) != nil || d.Spec.Name != "greet" || len(d.Versions) != 1 ||
		!slices.Equal(d.Env, []string{"GREETING"}) || !slices.Equal(d.Secrets, []string{"API_TOKEN", "FROM_STDIN"}) {
		t.Fatalf("describe --json: %+v", r)
	}
	noValue(t, "describe --json", r, values...)
	if r = yard(t, env, "", "ls", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"greet"`) {
		t.Fatalf("ls --json: %+v", r)
	}
	noValue(t, "ls --json", r, values...)
	if r = yard(t, env, "", "ls"); r.code != 0 {
		t.Fatalf("ls: %+v", r)
	}
	noValue(t, "ls", r, values...)

	// The audit log names each secret set or removed, never its value.
	r = yard(t, env, "", "audit", "--json")
	var evs []audit.Event
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &evs) != nil {
		t.Fatalf("audit: %+v", r)
	}
	var seen []string
	for _, e := range evs {
		if e.Target == "greet" && strings.HasPrefix(e.Action, "secret.") {
			seen = append(seen, e.Action+" "+e.Detail+" "+e.Outcome)
		}
	}
	wantSeen := []string{"secret.set API_TOKEN ok", "secret.set DB_PASS ok", "secret.set FROM_STDIN ok", "secret.remove DB_PASS ok"}
	if !slices.Equal(seen[:4], wantSeen) || len(seen) != 5 || !strings.HasPrefix(seen[4], "secret.remove DB_PASS secret not found") {
		t.Fatalf("audit events of secrets: %q", seen)
	}
	noValue(t, "audit --json", r, values...)
}
