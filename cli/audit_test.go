package cli

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func auditEvents(t *testing.T, env map[string]string, args ...string) []audit.Event {
	t.Helper()
	r := yard(t, env, "", append([]string{"audit", "--json"}, args...)...)
	var evs []audit.Event
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &evs) != nil {
		t.Fatalf("audit --json %v: %+v", args, r)
	}
	return evs
}

// TestAuditCommands: rollback and rm are audited with their outcome, and
// --since, --limit and the table work.
func TestAuditCommands(t *testing.T) {
	env, js := startJS(t)
	ctx := context.Background()

	// Nothing audited yet: an empty list, and no stream made by listing.
	if evs := auditEvents(t, env); len(evs) != 0 {
		t.Fatalf("before: %+v", evs)
	}
	if _, err := js.Stream(ctx, wire.StreamAudit); err == nil {
		t.Fatal("yard audit created the stream")
	}

	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := reg.Deploy(ctx, &registry.Spec{Name: "greet", Timeout: registry.Duration(time.Second),
			InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if r := yard(t, env, "", "rollback", "greet"); r.code != 0 {
		t.Fatalf("rollback: %+v", r)
	}
	if r := yard(t, env, "", "rm", "nope"); r.code != ExitError {
		t.Fatalf("rm of an unknown function: %+v", r)
	}
	evs := auditEvents(t, env)
	if len(evs) != 2 {
		t.Fatalf("events: %+v", evs)
	}
	if e := evs[0]; e.Action != "rollback" || e.Target != "greet" || e.Outcome != "ok" || e.Detail != "v1" || e.Who != "admin" ||
		time.Since(e.Time) > time.Minute {
		t.Fatalf("rollback event: %+v", e)
	}
	if e := evs[1]; e.Action != "remove" || e.Target != "nope" || !strings.Contains(e.Outcome, `function "nope" not found`) {
		t.Fatalf("failed rm event: %+v", e)
	}
	aDone := time.Now()

	// --since: only what happened after a moment between two batches.
	natstest.WaitFor(t, 5*time.Second, "time to pass", func() bool { return time.Since(aDone) > 300*time.Millisecond })
	bStart := time.Now()
	if r := yard(t, env, "", "rm", "greet"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	mid := bStart.Add(-bStart.Sub(aDone) / 2)
	evs = auditEvents(t, env, "--since", time.Since(mid).String())
	if len(evs) != 1 || evs[0].Action != "remove" || evs[0].Target != "greet" || evs[0].Outcome != "ok" {
		t.Fatalf("--since: %+v", evs)
	}
	if evs = auditEvents(t, env, "--limit", "2"); len(evs) != 2 || evs[0].Target != "nope" || evs[1].Target != "greet" {
		t.Fatalf("--limit 2: %+v", evs)
	}
	if evs = auditEvents(t, env, "--since", "0"); len(evs) != 3 {
		t.Fatalf("--since 0: %+v", evs)
	}

	r := yard(t, env, "", "audit")
	if r.code != 0 || !regexpMatch(`TIME\s+WHO\s+ACTION\s+TARGET\s+OUTCOME`, r.stdout) ||
		!regexpMatch(`\dZ\s+admin\s+remove\s+nope\s+function "nope" not found`, r.stdout) {
		t.Fatalf("table: %+v", r)
	}
	for _, args := range [][]string{{"audit", "--limit", "0"}, {"audit", "--since", "-1h"}, {"audit", "extra"}} {
		if r := yard(t, env, "", args...); r.code != ExitUsage {
			t.Errorf("%v: %+v", args, r)
		}
	}
}

// TestDeploySecretAndAudit: yard deploy --secret stores the deployer's
// variable as a secret, and the deploy and the secret are audited; the
// value is nowhere in the output or the log.
func TestDeploySecretAndAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function")
	}
	env, js := startJS(t)
	ctx := context.Background()
	const value = "greet-secret-value-6"

	// Refused before anything is built or stored.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "../functions/greet", "--secret", "UNSET_VAR"}, "UNSET_VAR is not set"},
		{[]string{"deploy", "../functions/greet", "--secret", "YARD_X"}, "reserved"},
		{[]string{"deploy", "../functions/greet", "--secret", "A-B"}, "names are a letter"},
	} {
		if r := yard(t, env, "", tt.args...); r.code != ExitUsage || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "building") {
			t.Errorf("%v: %+v", tt.args, r)
		}
	}

	denv := maps.Clone(env)
	denv["GREET_TOKEN"] = value
	r := yard(t, denv, "", "deploy", "../functions/greet", "--secret", "GREET_TOKEN")
	if r.code != 0 || !strings.Contains(r.stderr, "set secret GREET_TOKEN of greet") || !strings.Contains(r.stderr, "deployed greet v1") {
		t.Fatalf("deploy: %+v", r)
	}
	noValue(t, "deploy", r, value)
	if got, err := secrets.Load(ctx, js, "greet"); err != nil || got["GREET_TOKEN"] != value {
		t.Fatalf("load: %v, %v", got, err)
	}
	evs := auditEvents(t, env)
	if len(evs) != 2 || evs[0].Action != "secret.set" || evs[0].Detail != "GREET_TOKEN" ||
		evs[1].Action != "deploy" || evs[1].Target != "greet" || evs[1].Outcome != "ok" || !strings.HasPrefix(evs[1].Detail, "v1 sha256:") {
		t.Fatalf("audit: %+v", evs)
	}
	r = yard(t, env, "", "audit", "--json")
	noValue(t, "audit", r, value)
	r = yard(t, env, "", "describe", "greet", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"GREET_TOKEN"`) {
		t.Fatalf("describe: %+v", r)
	}
	noValue(t, "describe --json", r, value)

	// A refused deploy is audited with its error, and changes nothing:
	// not even the secret it brought.
	denv["GREET_TOKEN"] = "greet-secret-value-7"
	if r = yard(t, denv, "", "deploy", "testdata/greet-v2", "--secret", "GREET_TOKEN"); r.code != ExitError {
		t.Fatalf("breaking deploy: %+v", r)
	}
	evs = auditEvents(t, env)
	if e := evs[len(evs)-1]; e.Action != "deploy" || !strings.Contains(e.Outcome, "refusing to deploy greet") {
		t.Fatalf("refused deploy: %+v", e)
	}
	if got, err := secrets.Load(ctx, js, "greet"); err != nil || got["GREET_TOKEN"] != value {
		t.Fatalf("a refused deploy changed the secret: %v, %v", got, err)
	}
}
