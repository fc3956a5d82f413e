package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
)

func TestKeys(t *testing.T) {
	s := natstest.Run(t)
	env := map[string]string{"NATS_URL": s.ClientURL()}

	for _, args := range [][]string{
		{"keys", "create", "Bad Name", "--functions", "orders"},
		{"keys", "create", "shop"},
		{"keys", "create", "shop", "--functions", "fn.>"},
		{"keys", "create", "shop", "--functions", "orders", "--rate", "fast"},
		{"keys", "create", "shop", "--functions", "orders", "--rate", "50/d"},
		{"keys", "create"},
		{"keys", "create", "ops", "--operator", "--functions", "orders"},
		{"keys", "revoke"},
	} {
		if r := yard(t, env, "", args...); r.code != ExitUsage || r.stderr == "" {
			t.Errorf("%v: %+v, want exit %d", args, r, ExitUsage)
		}
	}

	r := yard(t, env, "", "keys", "create", "shop", "--functions", "orders,inventory", "--rate", "10/s")
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "only this once") {
		t.Fatalf("create: %+v", r)
	}
	id, _, err := apikeys.Parse(key)
	if err != nil {
		t.Fatalf("create printed %q: %v", key, err)
	}
	r = yard(t, env, "", "keys", "create", "admin", "--functions", "*", "--json")
	var created map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("create --json: %+v", r)
	}
	for _, k := range []string{"id", "name", "key", "functions", "rate", "created"} {
		if _, ok := created[k]; !ok {
			t.Errorf("create --json lacks %q: %s", k, r.stdout)
		}
	}
	if _, _, err := apikeys.Parse(created["key"].(string)); err != nil || created["name"] != "admin" {
		t.Errorf("create --json: %s", r.stdout)
	}

	r = yard(t, env, "", "keys", "create", "ops", "--operator", "--json")
	var op map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &op) != nil || op["operator"] != true || fmt.Sprint(op["functions"]) != "[*]" {
		t.Fatalf("create --operator: %+v", r)
	}
	if created["operator"] != false {
		t.Errorf("a plain key says operator %v", created["operator"])
	}

	r = yard(t, env, "", "keys", "ls")
	if r.code != 0 || !regexpMatch(id+`\s+shop\s+inventory,orders\s+10/s\s+\S+\s+-`, r.stdout) || !strings.Contains(r.stdout, "admin") ||
		!regexpMatch(`ops\s+\* \(operator\)`, r.stdout) {
		t.Fatalf("ls: %+v", r)
	}
	r = yard(t, env, "", "keys", "ls", "--json")
	var rows []map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 3 {
		t.Fatalf("ls --json: %+v", r)
	}
	for _, row := range rows {
		if _, ok := row["key"]; ok {
			t.Errorf("ls --json shows a key: %s", r.stdout)
		}
		if _, ok := row["hash"]; ok {
			t.Errorf("ls --json shows a hash: %s", r.stdout)
		}
	}
	if strings.Contains(r.stdout, key[len(key)-20:]) {
		t.Error("ls shows the secret")
	}

	if r := yard(t, env, "", "keys", "revoke", "nobody"); r.code != ExitError || !strings.Contains(r.stderr, "no such API key") {
		t.Errorf("revoke unknown: %+v", r)
	}
	if r := yard(t, env, "", "keys", "revoke", "shop"); r.code != 0 || !strings.Contains(r.stderr, id) {
		t.Fatalf("revoke: %+v", r)
	}
	r = yard(t, env, "", "keys", "ls", "--json")
	if !strings.Contains(r.stdout, `"revoked"`) {
		t.Errorf("ls after revoke: %s", r.stdout)
	}
}

func TestGatewayFlags(t *testing.T) {
	for _, args := range [][]string{
		{"gateway", "--cors-origin", "ftp://shop.example"},
		{"gateway", "--cors-origin", "https://shop.example/path"},
		{"gateway", "--cors-origin", "shop.example"},
		{"gateway", "--anonymous-rate", "fast"},
		{"gateway", "--key-rate", "0/s"},
		{"gateway", "--max-conns", "-2"},
		{"gateway", "--max-conns-per-ip", "-5"},
	} {
		if r := yard(t, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "", args...); r.code != ExitUsage {
			t.Errorf("%v: %+v, want exit %d", args, r, ExitUsage)
		}
	}
}
