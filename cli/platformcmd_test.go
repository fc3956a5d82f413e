package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// serverFromConfig runs a nats-server in this process from the include
// `yard server-config` printed, on a free port, and returns its options.
func serverFromConfig(t *testing.T, include string) (*natsserver.Server, *natsserver.Options) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "switchyard.conf"), []byte(include), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\ninclude ./switchyard.conf\njetstream { store_dir: %q }\n",
		natstest.FreePort(t), filepath.Join(dir, "js"))
	return natstest.RunConfig(t, dir, conf)
}

func trustAccountKey(t *testing.T, keys *trust.Keys) string {
	t.Helper()
	k, err := keys.Account.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestServerConfigCmd: the include names the keys' operator and system
// account, a full resolver and the platform's limits; the sentinel only
// with --allow-anonymous.
func TestServerConfigCmd(t *testing.T) {
	trustDir := filepath.Join(t.TempDir(), "trust")
	jwtDir := filepath.Join(t.TempDir(), "jwt")
	r := yard(t, nil, "", "server-config", "--trust", trustDir, "--resolver-dir", jwtDir, "--allow-anonymous")
	if r.code != 0 {
		t.Fatalf("server-config: %+v", r)
	}
	keys, err := trust.LoadKeys(trustDir) // made by the command
	if err != nil {
		t.Fatal(err)
	}
	op, _ := keys.Operator.PublicKey()
	sys, _ := keys.System.PublicKey()
	ns, opts := serverFromConfig(t, r.stdout)
	if len(opts.TrustedOperators) != 1 || opts.TrustedOperators[0].Subject != op || opts.SystemAccount != sys {
		t.Fatalf("operator %v, system account %s", opts.TrustedOperators, opts.SystemAccount)
	}
	if _, ok := opts.AccountResolver.(*natsserver.DirAccResolver); !ok {
		t.Fatalf("resolver %T, want a full one", opts.AccountResolver)
	}
	if opts.DefaultSentinel == "" || opts.MaxPayload != wire.MaxPayload || opts.MaxControlLine != trust.MaxControlLine {
		t.Fatalf("sentinel %q, max_payload %d, max_control_line %d", opts.DefaultSentinel, opts.MaxPayload, opts.MaxControlLine)
	}
	// The account YARD is yard platform's to push, not preloaded.
	if _, err := ns.LookupAccount(trustAccountKey(t, keys)); err == nil {
		t.Fatal("the server holds the account YARD before yard platform ran")
	}

	r = yard(t, nil, "", "server-config", "--trust", trustDir, "--resolver-dir", jwtDir)
	if r.code != 0 || strings.Contains(r.stdout, "default_sentinel") || !strings.Contains(r.stdout, "type: full") {
		t.Fatalf("server-config without --allow-anonymous: %+v", r)
	}
	if r := yard(t, nil, "", "server-config", "--trust", trustDir, "--resolver-dir", ""); r.code != ExitUsage {
		t.Fatalf("empty --resolver-dir: %+v", r)
	}
}

// TestPlatformCmd: yard platform runs the control plane against a plain
// nats-server configured with server-config's include, and writes the
// role credentials that then work there.
func TestPlatformCmd(t *testing.T) {
	data := t.TempDir()
	trustDir := filepath.Join(data, "trust")
	r := yard(t, nil, "", "server-config", "--trust", trustDir, "--resolver-dir", filepath.Join(t.TempDir(), "jwt"))
	if r.code != 0 {
		t.Fatalf("server-config: %+v", r)
	}
	ns, _ := serverFromConfig(t, r.stdout)
	env := map[string]string{"NATS_URL": ns.ClientURL()}
	if r := yard(t, env, "", "platform", "--data", data, "--replicas", "9"); r.code != ExitUsage {
		t.Fatalf("--replicas 9: %+v", r)
	}
	// Keys the server does not trust: refused, with advice.
	if r := yard(t, env, "", "platform", "--data", data, "--trust", t.TempDir()); r.code != ExitError || !strings.Contains(r.stderr, "server-config") {
		t.Fatalf("other keys: %+v", r)
	}
	stop, _ := runUntil(t, env, "Ctrl-C stops", "platform", "--data", data)
	admin := natstest.ConnectURL(t, ns.ClientURL(), nats.UserCredentials(filepath.Join(data, "admin.creds")),
		nats.CustomInboxPrefix(roles.AdminInbox))
	js, _ := jetstream.New(admin)
	if _, err := js.Stream(t.Context(), wire.StreamAsync); err != nil {
		t.Fatalf("the platform's streams: %v", err)
	}
	gw, err := nats.Connect(ns.ClientURL(), nats.UserCredentials(filepath.Join(data, "creds", "gateway.creds")))
	if err != nil {
		t.Fatalf("gateway credential: %v", err)
	}
	gw.Close()
	// No credential and no sentinel: refused.
	if _, err := nats.Connect(ns.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous: %v", err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("platform exit %d", code)
	}
}
