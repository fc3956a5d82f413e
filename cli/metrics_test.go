package cli

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestGatewayMetricsFlag: yard gateway --metrics serves /metrics on its
// own listener; an address in use is an error that names the flag.
func TestGatewayMetricsFlag(t *testing.T) {
	s := natstest.Run(t)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	httpAddr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	stop, stderr := runUntil(t, env, "gateway on http://"+httpAddr, "gateway", "--http", httpAddr, "--metrics", metricsAddr)
	defer stop()
	if !strings.Contains(stderr.String(), "metrics on http://"+metricsAddr+"/metrics") {
		t.Errorf("startup lines: %s", stderr.String())
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("GET /metrics: %d %.200s", resp.StatusCode, body)
	}
	// Not on the public port.
	if resp, err := http.Get("http://" + httpAddr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the gateway's public port serves /metrics")
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := yard(t, env, "", "gateway", "--http", "127.0.0.1:0", "--metrics", ln.Addr().String())
	if r.code == 0 || !strings.Contains(r.stderr, "--metrics") {
		t.Errorf("--metrics on a taken port: %+v", r)
	}
}

// TestNATSMonitorFlag: yard server --nats-monitor serves the NATS
// server's monitoring endpoints, which the standard exporters read.
func TestNATSMonitorFlag(t *testing.T) {
	monitor := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	stop, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", t.TempDir(), "--nats-port", strconv.Itoa(natstest.FreePort(t)),
		"--nats-monitor", monitor)
	defer stop()
	for _, path := range []string{"/varz", "/jsz"} {
		resp, err := http.Get("http://" + monitor + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"server_id"`) {
			t.Errorf("GET %s: %d %.200s", path, resp.StatusCode, body)
		}
	}
	if r := yard(t, nil, "", "server", "--data", t.TempDir(), "--nats-monitor", "8222"); r.code != ExitUsage {
		t.Errorf("--nats-monitor without a host: %+v", r)
	}
}
