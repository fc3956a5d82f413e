package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

func TestDeployCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds functions")
	}
	s := natstest.Run(t)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	fntest.Platform(t, natstest.Connect(t, s)) // provisions what is deployed, as agents do

	r := yard(t, env, "", "deploy", "../functions/greet", "--json", "--timeout", "5s", "--env", "GREETING=Hi")
	var v1 registry.Spec
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v1) != nil || v1.Version != 1 || v1.Timeout.D().String() != "5s" ||
		v1.Env["GREETING"] != "Hi" || v1.Artifact == nil || !strings.Contains(r.stderr, "uploaded") {
		t.Fatalf("first deploy: %+v", r)
	}
	// The same binary and settings: nothing new.
	r = yard(t, env, "", "deploy", "../functions/greet", "--timeout", "5s", "--env", "GREETING=Hi")
	if r.code != 0 || !strings.Contains(r.stderr, "already stored") || !strings.Contains(r.stderr, "unchanged: greet v1") {
		t.Fatalf("same deploy: %+v", r)
	}
	// New settings make a new version without a new upload.
	if r = yard(t, env, "", "deploy", "../functions/greet", "--timeout", "7s"); r.code != 0 || !strings.Contains(r.stderr, "deployed greet v2") {
		t.Fatalf("settings change: %+v", r)
	}
	// A breaking schema change is refused, naming the change.
	r = yard(t, env, "", "deploy", "testdata/greet-v2")
	if r.code != ExitError || !strings.Contains(r.stderr, "/title") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("breaking change: %+v", r)
	}
	if r = yard(t, env, "", "deploy", "testdata/greet-v2", "--force"); r.code != 0 || !strings.Contains(r.stderr, "deployed greet v3") {
		t.Fatalf("--force: %+v", r)
	}
	// Bad input: each a clear error, nothing deployed.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deploy", "testdata/greet-v3"}, ExitUsage, "bogus"},
		{[]string{"deploy", "testdata/nowhere"}, ExitUsage, "not a folder"},
		{[]string{"deploy", "../functions/greet", "--timeout", "soon"}, ExitUsage, "timeout"},
		{[]string{"deploy", "../functions/greet", "--env", "NOEQUALS"}, ExitUsage, "KEY=VALUE"},
		{[]string{"deploy", "../functions/greet", "--env", "YARD_X=1"}, ExitUsage, "YARD_"},
		{[]string{"deploy", "../functions/greet", "--min", "3", "--max", "2"}, ExitUsage, "max"},
	} {
		if r := yard(t, env, "", tt.args...); r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, %q; want %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}

	// A function deployed at zero instances gets its schedules at once:
	// inventory sweeps every minute.
	if r = yard(t, env, "", "deploy", "../functions/inventory", "--min", "0"); r.code != 0 {
		t.Fatalf("deploy inventory: %+v", r)
	}
	var entries []lsEntry
	found := false
	natstest.WaitFor(t, 10*time.Second, "inventory's schedule", func() bool {
		r = yard(t, env, "", "ls", "--json")
		if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
			t.Fatalf("ls: %+v", r)
		}
		for _, e := range entries {
			if e.Name == "inventory" {
				found = true
				if e.Instances != 0 || e.State != "scaled to zero" {
					t.Fatalf("inventory at zero: %+v", e)
				}
				return len(e.Schedules) == 1 && e.Schedules[0].Cron == "@every 1m0s" && e.NextRun != ""
			}
		}
		return false
	})
	if !found {
		t.Fatalf("ls does not list inventory: %+v", entries)
	}
	if r = yard(t, env, "", "rm", "inventory"); r.code != 0 {
		t.Fatalf("rm inventory: %+v", r)
	}

	// describe, rollback, rm.
	r = yard(t, env, "", "describe", "greet")
	if r.code != 0 || !regexpMatch(`live version\s+v3`, r.stdout) || !regexpMatch(`v1\s.*\n\s+v2`, r.stdout) {
		t.Fatalf("describe: %+v", r)
	}
	if r = yard(t, env, "", "rollback", "greet"); r.code != 0 || !strings.Contains(r.stderr, "v2 is live again") {
		t.Fatalf("rollback: %+v", r)
	}
	if r = yard(t, env, "", "rollback", "greet", "--to", "1", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"version": 1`) {
		t.Fatalf("rollback --to: %+v", r)
	}
	if r = yard(t, env, "", "rollback", "greet", "--to", "9"); r.code == 0 {
		t.Fatalf("rollback to a missing version: %+v", r)
	}
	if r = yard(t, env, "", "rm", "greet"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if r = yard(t, env, "", "describe", "greet"); r.code != ExitError || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("describe after rm: %+v", r)
	}
	if r = yard(t, env, "", "rm", "greet"); r.code != ExitError {
		t.Fatalf("rm twice: %+v", r)
	}
}

// TestDeploySchedules: schedules from yard.json replace the function's own
// and are checked, line and input, before anything is deployed.
func TestDeploySchedules(t *testing.T) {
	spec := func() *registry.Spec {
		return &registry.Spec{Name: "report", Timeout: registry.Duration(time.Second),
			InputSchema:  json.RawMessage(`{"type":"object","properties":{"day":{"type":"string"}},"required":["day"]}`),
			OutputSchema: json.RawMessage(`{}`), Schedules: []registry.Schedule{{Cron: "@daily", Input: json.RawMessage(`{"day":"today"}`)}}}
	}
	var st settings
	if err := json.Unmarshal([]byte(`{"schedules":[{"cron":"*/10 * * * *","input":{"day":"now"}}]}`), &st); err != nil {
		t.Fatal(err)
	}
	s := spec()
	if err := st.apply(s); err != nil || len(s.Schedules) != 1 || s.Schedules[0].Cron != "*/10 * * * *" {
		t.Fatalf("apply: %v, %+v", err, s.Schedules)
	}
	off := settings{Schedules: &[]registry.Schedule{}}
	if s := spec(); off.apply(s) != nil || len(s.Schedules) != 0 {
		t.Fatalf("an empty list must turn schedules off: %+v", s.Schedules)
	}
	bad := settings{Schedules: &[]registry.Schedule{{Cron: "@often"}, {Cron: "@hourly", Input: json.RawMessage(`{"day":1}`)}}}
	err := bad.apply(spec())
	for _, want := range []string{"schedules/0: cron \"@often\"", "schedules/1: input does not match the input schema: /day"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

// TestEventSchemaCompatibility: a new version must read every event type
// the live one appended to an entity stream.
func TestEventSchemaCompatibility(t *testing.T) {
	added := json.RawMessage(`{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer"}},"required":["sku"]}`)
	spec := func(schemas map[string]json.RawMessage, entity bool) *registry.Spec {
		return &registry.Spec{Name: "cart", InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
			Streams: []registry.Stream{{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: entity, EventSchemas: schemas}}}
	}
	live := spec(map[string]json.RawMessage{"ItemAdded": added, "ItemRemoved": json.RawMessage(`{"type":"object"}`)}, true)
	for name, c := range map[string]struct {
		next *registry.Spec
		want []string
	}{
		"same":              {live, nil},
		"new optional type": {spec(map[string]json.RawMessage{"ItemAdded": added, "ItemRemoved": json.RawMessage(`{"type":"object"}`), "CheckedOut": json.RawMessage(`{}`)}, true), nil},
		"required added": {spec(map[string]json.RawMessage{"ItemRemoved": json.RawMessage(`{"type":"object"}`),
			"ItemAdded": json.RawMessage(`{"type":"object","properties":{"sku":{"type":"string"},"qty":{"type":"integer"},"price":{"type":"integer"}},"required":["sku","price"]}`)}, true),
			[]string{"event CARTS/ItemAdded /price", "required_added"}},
		"type removed":          {spec(map[string]json.RawMessage{"ItemAdded": added}, true), []string{"event CARTS/ItemRemoved", "event_type_removed"}},
		"stream no longer used": {&registry.Spec{Name: "cart", InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`)}, nil},
		"no longer an entity":   {spec(nil, false), []string{"stream CARTS", "entity_removed"}},
	} {
		got := strings.Join(compatibility(live, c.next), "\n")
		if c.want == nil && got != "" {
			t.Fatalf("%s: breaks %q", name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: want %q in %q", name, w, got)
			}
		}
	}
}
