package cli

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestServersCommand: yard servers lists the one server of yard server,
// as a table and as JSON, for the admin only.
func TestServersCommand(t *testing.T) {
	natsPort := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stop, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", natsPort, "--allow-anonymous")
	defer stop()
	url := "nats://127.0.0.1:" + natsPort
	admin := map[string]string{"NATS_URL": url, "NATS_CREDS": filepath.Join(data, "admin.creds")}

	r := yard(t, admin, "", "servers", "--json", "--no-context")
	if r.code != 0 {
		t.Fatalf("servers --json: %+v", r)
	}
	var rows []serverRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if len(rows) != 1 {
		t.Fatalf("rows %+v", rows)
	}
	row := rows[0]
	if !row.Answering || !row.MetaLeader || row.State != "current" || row.ClientURL != url || row.PID == 0 ||
		!slices.Contains(row.Leads, "YARD_ASYNC") || row.Cluster != "" {
		t.Fatalf("row %+v", row)
	}
	r = yard(t, admin, "", "servers", "--no-context")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "YARD_ASYNC") || !strings.Contains(r.stdout, url) {
		t.Fatalf("servers: %+v", r)
	}
	// Anonymous callers get no answer: only admins may ask.
	r = yard(t, map[string]string{"NATS_URL": url}, "", "servers", "--no-context")
	if r.code != ExitError || !strings.Contains(r.stderr, "cannot list the servers") || !strings.Contains(r.stderr, "Permissions Violation") {
		t.Fatalf("servers as anonymous: %+v", r)
	}
}

// TestClusterFlags: bad cluster flags are usage errors that start nothing.
func TestClusterFlags(t *testing.T) {
	port := strconv.Itoa(natstest.FreePort(t))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--cluster", "127.0.0.1:0"}, "--server-name"},
		{[]string{"server", "--routes", "nats://a:6222"}, "--routes needs --cluster"},
		{[]string{"server", "--server-name", "a b", "--cluster", "127.0.0.1:0"}, "--server-name"},
		{[]string{"server", "--server-name", "a", "--cluster", "nowhere"}, "--cluster"},
		{[]string{"server", "--server-name", "a", "--cluster", "127.0.0.1:0", "--routes", "http://a:1"}, "--routes"},
		{[]string{"server", "--replicas", "9"}, "--replicas"},
		{[]string{"up", "--cluster", "2", "--no-functions", "--nats-port", port}, "--cluster 2"},
		{[]string{"up", "--replicas", "3", "--no-functions", "--nats-port", port}, "--replicas goes with --cluster"},
		{[]string{"up", "--cluster", "3", "--replicas", "5", "--no-functions", "--nats-port", port}, "--replicas 5"},
	} {
		args := append(c.args, "--data", t.TempDir())
		r := yard(t, nil, "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("yard %s: %+v, want a usage error naming %q", strings.Join(c.args, " "), r, c.want)
		}
	}
}
