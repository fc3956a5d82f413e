package cli

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestServerTLS: yard server --tls serves NATS over TLS with a local CA;
// clients that trust it (and hold a credential) get in, others do not.
func TestServerTLS(t *testing.T) {
	port := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stop, stderr := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", port, "--tls")
	defer stop()
	url := "tls://127.0.0.1:" + port
	if !strings.Contains(stderr.String(), " "+url) || !strings.Contains(stderr.String(), filepath.Join(data, "tls", "ca.pem")) {
		t.Fatalf("banner: %s", stderr.String())
	}
	admin := nats.UserCredentials(filepath.Join(data, "admin.creds"))
	if nc, err := nats.Connect(url, admin); err == nil {
		nc.Close()
		t.Fatal("connected without trusting the CA")
	}
	if nc, err := nats.Connect("nats://127.0.0.1:"+port, admin); err == nil {
		nc.Close()
		t.Fatal("connected without TLS")
	}
	ca := filepath.Join(data, "tls", "ca.pem")
	nc, err := nats.Connect(url, admin, nats.RootCAs(ca))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	env := map[string]string{"NATS_URL": url, "NATS_CA": ca, "NATS_CREDS": filepath.Join(data, "admin.creds")}
	if r := yard(t, env, "", "ls"); r.code != 0 {
		t.Fatalf("yard ls over TLS: %+v", r)
	}
	if r := yard(t, env, "", "server", "--tls", "--tls-cert", "x"); r.code != ExitUsage {
		t.Fatalf("--tls with --tls-cert: %+v", r)
	}
}

// TestUpTLS: yard up --tls serves the gateway over HTTPS with the same
// local CA as NATS, and its banner says how to reach it with curl.
func TestUpTLS(t *testing.T) {
	data := t.TempDir()
	httpAddr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	stop, stderr := runUntil(t, nil, "Ctrl-C stops", "up", "--data", data, "--nats-port", strconv.Itoa(natstest.FreePort(t)),
		"--http", httpAddr, "--no-functions", "--tls")
	defer stop()
	ca := filepath.Join(data, "tls", "ca.pem")
	if out := stderr.String(); !strings.Contains(out, "https://"+httpAddr) || !strings.Contains(out, "curl --cacert "+ca) {
		t.Fatalf("banner: %s", out)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz over HTTPS: %d", resp.StatusCode)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + httpAddr + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the HTTPS gateway: %d", resp.StatusCode)
		}
	}
}

// TestGatewayTLSAndOIDCFlags: TLS and OIDC flags given by halves are usage errors
// that change nothing; a certificate file that is not there is named.
func TestGatewayTLSAndOIDCFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "cert.pem"},
		{"--tls-key", "key.pem"},
		{"--oidc-issuer", "https://id.example.com"},
		{"--oidc-audience", "switchyard"},
		{"--oidc-jwks-file", "jwks.json"},
		{"--oidc-issuer", "https://id.example.com", "--oidc-audience", "a", "--oidc-jwks-url", "https://id.example.com/k", "--oidc-jwks-file", "k.json"},
		{"--oidc-issuer", "https://id.example.com", "--oidc-audience", "a", "--oidc-claim", " "},
	} {
		r := yard(t, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "", append([]string{"gateway"}, args...)...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--") {
			t.Errorf("yard gateway %s: %+v, want a usage error", strings.Join(args, " "), r)
		}
	}
	missing := filepath.Join(t.TempDir(), "nope.pem")
	r := yard(t, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "", "gateway", "--tls-cert", missing, "--tls-key", missing)
	if r.code == 0 || !strings.Contains(r.stderr, missing) {
		t.Errorf("yard gateway with a missing certificate: %+v", r)
	}
}

// TestAgentCAFromContext: an agent that trusts a TLS server through its
// nats context alone hands the CA on to its instances, which connect.
func TestAgentCAFromContext(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function")
	}
	port := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stop, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", port, "--tls")
	defer stop()
	url := "tls://127.0.0.1:" + port
	cfg := t.TempDir()
	writeContext(t, cfg, "agent", map[string]any{"url": url, "creds": filepath.Join(data, "creds", "agent.creds"),
		"ca": filepath.Join(data, "tls", "ca.pem")})
	writeContext(t, cfg, "admin", map[string]any{"url": url, "creds": filepath.Join(data, "admin.creds"),
		"ca": filepath.Join(data, "tls", "ca.pem")})
	functions, err := filepath.Abs("../functions/greet")
	if err != nil {
		t.Fatal(err)
	}
	// From another folder, so the server's default ./.yard/tls/ca.pem is
	// not what makes it work.
	t.Chdir(t.TempDir())
	env := func(ctx string) map[string]string {
		return map[string]string{"XDG_CONFIG_HOME": cfg, "HOME": data, "NATS_CONTEXT": ctx}
	}
	stopAgent, agentLog := runUntil(t, env("agent"), "Ctrl-C stops", "agent", "--dir", t.TempDir())
	defer stopAgent()
	if r := yard(t, env("admin"), "", "deploy", functions); r.code != ExitOK {
		t.Fatalf("deploy: %+v", r)
	}
	var last result
	natstest.WaitFor(t, 2*time.Minute, "greet to answer over TLS", func() bool {
		last = yard(t, env("admin"), "", "invoke", "greet", "-d", `{"name":"Ada"}`)
		return last.code == ExitOK && strings.Contains(last.stdout, "Hello, Ada!")
	})
	if strings.Contains(agentLog.String(), "certificate signed by unknown authority") {
		t.Fatalf("an instance did not trust the server:\n%s", agentLog.String())
	}
}
