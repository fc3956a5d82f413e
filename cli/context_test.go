package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// writeContext writes a nats context file as natscli does, under
// <cfg>/nats/context.
func writeContext(t *testing.T, cfg, name string, c map[string]any) string {
	t.Helper()
	dir := filepath.Join(cfg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNATSContext: yard reads the nats context named by --context,
// $NATS_CONTEXT or the selection file, for the server and the credential;
// flags and NATS_URL/NATS_CREDS beat it; an unknown one is a usage error
// naming those there are.
func TestNATSContext(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stop, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", port)
	defer stop()
	url := "nats://127.0.0.1:" + port
	admin := filepath.Join(data, "admin.creds")

	cfg := t.TempDir()
	writeContext(t, cfg, "x", map[string]any{"description": "test", "url": url, "creds": admin,
		"inbox_prefix": roles.AdminInbox, "ca": "", "nkey": "", "jetstream_domain": "", "windows_ca_certs_match": []string{}})
	writeContext(t, cfg, "other", map[string]any{"url": "nats://127.0.0.1:1"})
	// natscli's forms of a path: ~, $VARS, file://; no inbox_prefix (yard
	// then derives it from the credential).
	writeContext(t, cfg, "tilde", map[string]any{"url": url, "creds": "~/admin.creds"})
	writeContext(t, cfg, "vars", map[string]any{"url": url, "creds": "$DATA/admin.creds"})
	writeContext(t, cfg, "fileurl", map[string]any{"url": url, "creds": "file://" + admin})
	writeContext(t, cfg, "domain", map[string]any{"url": url, "creds": admin, "jetstream_domain": "hub"})
	writeContext(t, cfg, "op", map[string]any{"url": url, "creds": "op://vault/item/creds"})
	outside := filepath.Join(t.TempDir(), "loose.json")
	if err := os.WriteFile(outside, []byte(`{"url":"`+url+`","creds":"`+admin+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	env := func(kv ...string) map[string]string {
		m := map[string]string{"XDG_CONFIG_HOME": cfg, "HOME": data, "DATA": data}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	ok := func(name string, e map[string]string, args ...string) {
		t.Helper()
		if r := yard(t, e, "", args...); r.code != ExitOK {
			t.Errorf("%s: yard %s: %+v", name, strings.Join(args, " "), r)
		}
	}
	fails := func(name string, e map[string]string, code int, want string, args ...string) {
		t.Helper()
		if r := yard(t, e, "", args...); r.code != code || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: yard %s: %+v, want exit %d with %q", name, strings.Join(args, " "), r, code, want)
		}
	}

	// Without a context (and without ./.yard) the server refuses an
	// anonymous connection: what gets in below holds the context's credential.
	fails("anonymous", env("NATS_URL", url), ExitError, "Authorization", "ls")
	ok("--context", env(), "--context", "x", "ls")
	ok("$NATS_CONTEXT", env("NATS_CONTEXT", "x"), "ls")
	for _, name := range []string{"tilde", "vars", "fileurl"} {
		ok(name, env(), "--context", name, "ls")
	}
	ok("a context file", env(), "--context", outside, "ls")

	// The selected context (nats context select).
	if err := os.WriteFile(filepath.Join(cfg, "nats", "context.txt"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok("selected", env(), "ls")
	fails("--no-context", env("NATS_URL", url), ExitError, "Authorization", "--no-context", "ls")
	fails("--context beats the selection", env(), ExitError, "127.0.0.1:1", "--context", "other", "ls")
	fails("$NATS_CONTEXT beats the selection", env("NATS_CONTEXT", "other"), ExitError, "127.0.0.1:1", "ls")

	// Flags, and the variables nats binds to its flags, beat the context.
	fails("--server", env(), ExitError, "nats://127.0.0.1:1 (nats context x", "--context", "x", "--server", "nats://127.0.0.1:1", "ls")
	fails("$NATS_URL", env("NATS_URL", "nats://127.0.0.1:1"), ExitError, "nats://127.0.0.1:1", "--context", "x", "ls")
	bogus := filepath.Join(t.TempDir(), "bogus.creds")
	fails("--creds", env(), ExitError, bogus, "--context", "x", "--creds", bogus, "ls")
	fails("$NATS_CREDS", env("NATS_CREDS", bogus), ExitError, bogus, "--context", "x", "ls")

	// Unknown contexts are usage errors naming the known ones.
	known := "known: domain, fileurl, op, other, tilde, vars, x"
	fails("unknown --context", env(), ExitUsage, `unknown nats context "nope" (--context)`, "--context", "nope", "ls")
	fails("unknown --context lists", env(), ExitUsage, known, "--context", "nope", "ls")
	fails("unknown $NATS_CONTEXT", env("NATS_CONTEXT", "nope"), ExitUsage, `"nope" ($NATS_CONTEXT)`, "ls")
	fails("bad name", env(), ExitUsage, "slash", "--context", "a/b", "ls")
	fails("both", env(), ExitUsage, "choose one", "--context", "x", "--no-context", "ls")
	if err := os.WriteFile(filepath.Join(cfg, "nats", "context.txt"), []byte("gone"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails("stale selection", env(), ExitUsage, "context.txt", "ls")
	ok("a stale selection, overridden", env(), "--context", "x", "ls")
	// Commands that run a server, or handle contexts, do not read one.
	ok("context ls with a stale selection", env(), "context", "ls")
	fails("nothing selected, nothing set", map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "NATS_URL": url},
		ExitError, "Authorization", "ls")

	// What yard cannot honour is refused, not ignored.
	fails("jetstream_domain", env(), ExitError, `"jetstream_domain"`, "--context", "domain", "ls")
	fails("op://", env(), ExitError, "op: references are not supported", "--context", "op", "ls")
}

// TestNATSContextUserPassword: a context's user and password sign in (and
// come before its credential, as in nats); --creds replaces them.
func TestNATSContextUserPassword(t *testing.T) {
	t.Parallel()
	s := natstest.RunWithUsers(t, []*natsserver.User{{Username: "ada", Password: "s3cret"}})
	cfg := t.TempDir()
	writeContext(t, cfg, "ada", map[string]any{"url": s.ClientURL(), "user": "ada", "password": "s3cret", "creds": "/nonexistent.creds"})
	writeContext(t, cfg, "wrong", map[string]any{"url": s.ClientURL(), "user": "ada", "password": "nope"})
	writeContext(t, cfg, "env", map[string]any{"url": s.ClientURL(), "user": "ada", "password": "env://PW"})
	for _, tt := range []struct {
		ctx, creds string
		want       string // "" connects
	}{
		{"ada", "", ""},
		{"wrong", "", "Authorization"},
		{"ada", "/nonexistent.creds", "nonexistent"},
		{"env", "", "literal values only"},
	} {
		f := &factory{getenv: func(k string) string { return map[string]string{"XDG_CONFIG_HOME": cfg}[k] }, ctxName: tt.ctx, creds: tt.creds}
		err := func() error {
			c, err := f.loadContext()
			if err != nil {
				return err
			}
			f.nctx = c
			nc, err := f.connect("test")
			if err == nil {
				nc.Close()
			}
			return err
		}()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("--context %s --creds %q: %v, want %q", tt.ctx, tt.creds, err, tt.want)
		}
	}
}

// TestNATSContextInbox: the context's inbox_prefix goes with its own
// credential; --creds brings the prefix of the credential given.
func TestNATSContextInbox(t *testing.T) {
	t.Parallel()
	f := &factory{getenv: func(string) string { return "" }, nctx: &natsContext{natsContextFile: natsContextFile{InboxPrefix: "_INBOX_mine"}}}
	if got := f.inboxPrefix(); got != "_INBOX_mine" {
		t.Errorf("context's prefix: %q", got)
	}
	f.creds = filepath.Join(t.TempDir(), "none.creds")
	if got := f.inboxPrefix(); got != "" {
		t.Errorf("with --creds: %q, want the credential's (none)", got)
	}
}

// TestContextWriteAndLs: yard context write makes the admin's context for
// a local platform, which yard and nats then use; ls lists and marks.
func TestContextWriteAndLs(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stop, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", port)
	defer stop()
	url := "nats://127.0.0.1:" + port
	admin := filepath.Join(data, "admin.creds")
	cfg := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": cfg}

	if r := yard(t, env, "", "context", "ls"); r.code != 0 || !strings.Contains(r.stderr, "no nats contexts") {
		t.Fatalf("ls of none: %+v", r)
	}
	if r := yard(t, env, "", "context", "write", "-s", url, "--creds", filepath.Join(t.TempDir(), "none.creds")); r.code != ExitError ||
		!strings.Contains(r.stderr, "none.creds") {
		t.Fatalf("write without a credential: %+v", r)
	}
	if r := yard(t, env, "", "context", "write", "../x", "-s", url, "--creds", admin); r.code != ExitUsage {
		t.Fatalf("write ../x: %+v", r)
	}
	r := yard(t, env, "", "context", "write", "-s", url, "--creds", admin)
	path := filepath.Join(cfg, "nats", "context", "yard.json")
	if r.code != 0 || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, "nats context select yard") {
		t.Fatalf("write: %+v", r)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil || c["url"] != url || c["creds"] != admin || c["inbox_prefix"] != roles.AdminInbox {
		t.Fatalf("context written: %s (%v)", b, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if r := yard(t, env, "", "--context", "yard", "ls"); r.code != 0 {
		t.Fatalf("ls through it: %+v", r)
	}
	if r := yard(t, env, "", "context", "write", "other", "--select", "-s", url, "--creds", admin); r.code != 0 {
		t.Fatalf("write --select: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(cfg, "nats", "context.txt")); string(b) != "other" {
		t.Fatalf("context.txt: %q", b)
	}
	r = yard(t, map[string]string{"XDG_CONFIG_HOME": cfg, "NATS_CONTEXT": "yard"}, "", "context", "ls")
	if r.code != 0 || !regexpMatch(`(?m)^ \*other\s+`+url, r.stdout) || !regexpMatch(`(?m)^> yard\s+`+url+`\s+Switchyard admin`, r.stdout) {
		t.Fatalf("ls: %+v", r)
	}
	r = yard(t, env, "", "context", "ls", "--json")
	var rows []contextRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 2 || !rows[0].Selected || !rows[0].InUse || rows[1].Selected {
		t.Fatalf("ls --json: %+v (%v)", r, err)
	}
	// A caller's context from yard creds create says where and how, too.
	nc, err := nats.Connect(url, nats.UserCredentials(admin), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fntest.Platform(t, nc)
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "echo"},
		fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) { return echoOut{Message: in.Name}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	r = yard(t, env, "", "--context", "yard", "creds", "create", "ctxcaller", "--functions", "echo",
		"-o", filepath.Join(t.TempDir(), "c.creds"), "--context", "caller")
	if r.code != 0 {
		t.Fatalf("creds create --context: %+v", r)
	}
	b, _ = os.ReadFile(filepath.Join(cfg, "nats", "context", "caller.json"))
	if err := json.Unmarshal(b, &c); err != nil || c["url"] != url || c["inbox_prefix"] != "_INBOX_c.ctxcaller" {
		t.Fatalf("caller context: %s (%v)", b, err)
	}
}

// TestUpWriteContext: yard up --write-context writes the admin's context
// for its platform, TLS CA included, and yard reaches the platform through
// it with no other setting.
func TestUpWriteContext(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cfg := t.TempDir()
	port := strconv.Itoa(natstest.FreePort(t))
	stop, stderr := runUntil(t, map[string]string{"XDG_CONFIG_HOME": cfg}, "Ctrl-C stops", "up", "--data", data, "--nats-port", port,
		"--http", "127.0.0.1:"+strconv.Itoa(natstest.FreePort(t)), "--no-functions", "--tls", "--write-context")
	defer stop()
	path := filepath.Join(cfg, "nats", "context", "yard.json")
	if out := stderr.String(); !strings.Contains(out, "nats context yard written to "+path) || !strings.Contains(out, "nats context select yard") {
		t.Fatalf("banner: %s", out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c natsContextFile
	if err := json.Unmarshal(b, &c); err != nil || c.URL != "tls://127.0.0.1:"+port || c.Creds != filepath.Join(data, "admin.creds") ||
		c.CA != filepath.Join(data, "tls", "ca.pem") || c.InboxPrefix != roles.AdminInbox {
		t.Fatalf("context: %s (%v)", b, err)
	}
	if r := yard(t, map[string]string{"XDG_CONFIG_HOME": cfg, "NATS_CONTEXT": "yard"}, "", "ls"); r.code != 0 {
		t.Fatalf("ls through the context: %+v", r)
	}
}

// TestContextHint: without --write-context the banner shows the one
// command that writes the context, with the flags off the defaults, and
// warns of another context selected.
func TestContextHint(t *testing.T) {
	t.Parallel()
	got := contextHint(banner{ca: "/d/tls/ca.pem", selected: "ngs"}, " -s tls://127.0.0.1:4333 --creds /d/admin.creds")
	for _, want := range []string{"go run ./cli/yard context write -s tls://127.0.0.1:4333 --creds /d/admin.creds --tls-ca /d/tls/ca.pem && nats context select yard",
		"nats context ngs is selected now"} {
		if !strings.Contains(got, want) {
			t.Errorf("hint %q lacks %q", got, want)
		}
	}
	if got := contextHint(banner{ca: defaultCA}, ""); !strings.Contains(got, "context write && nats") || strings.Contains(got, "selected") {
		t.Errorf("hint on the defaults: %q", got)
	}
}
