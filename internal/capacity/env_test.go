package capacity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/cli"
	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// statsWait is the agent's wait for STATS replies in a scale pass.
const statsWait = 200 * time.Millisecond

// build compiles testdata/manyfn as `yard deploy` builds a function, and
// reads its manifest.
func build(b *testing.B) (bin string, manifest []byte) {
	b.Helper()
	bin = filepath.Join(b.TempDir(), "manyfn")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = filepath.Join("testdata", "manyfn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	manifest, err := exec.Command(bin, wire.ManifestFlag).Output()
	if err != nil {
		b.Fatalf("manifest: %v", err)
	}
	return bin, manifest
}

// env is what `yard up` runs, in this process: the platform (NATS with
// authentication, the trust service), an agent, each on its role's
// credential, and the admin's connection that deploys.
type env struct {
	b        testing.TB
	p        *platform.Platform
	url      string
	dir      string
	bin      string
	manifest []byte
	admin    *nats.Conn
	js       jetstream.JetStream
	reg      *registry.Registry
	log      *slog.Logger
}

func newEnv(b testing.TB, bin string, manifest []byte) *env {
	b.Helper()
	dir := b.TempDir()
	// Warnings and errors only: an agent or gateway complaining is worth
	// seeing next to the figures.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := platform.Start(ctx, platform.Config{
		Server: server.Config{Port: -1, StoreDir: filepath.Join(dir, "jetstream"), Logger: log},
		Dir:    dir, AllowAnonymous: true, Logger: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close) // last: every connection below closes first
	e := &env{b: b, p: p, url: p.NS.ClientURL(), dir: dir, bin: bin, manifest: manifest, log: log}
	e.admin = e.connect(platform.RoleAdmin, roles.AdminInbox)
	if e.js, err = jetstream.New(e.admin); err != nil {
		b.Fatal(err)
	}
	if e.reg, err = registry.Open(ctx, e.js); err != nil {
		b.Fatal(err)
	}
	return e
}

// connect opens a connection with a role's credential file, closed by the
// benchmark's cleanup.
func (e *env) connect(role, inbox string) *nats.Conn {
	e.b.Helper()
	return natstest.ConnectURL(e.b, e.url, nats.Name("capacity "+role), nats.UserCredentials(e.p.CredsFile(role)),
		nats.CustomInboxPrefix(inbox), nats.MaxReconnects(-1))
}

// startAgent runs an agent as `yard up` does, with its default scale
// interval (2 s) and idle timeout (5 min).
func (e *env) startAgent() {
	e.b.Helper()
	nc := e.connect(platform.RoleAgent, roles.AgentInbox)
	ag, err := agent.New(context.Background(), nc, agent.Config{Dir: filepath.Join(e.dir, "agent"), NATSURL: e.url,
		Creds: e.p.CredsFile(platform.RoleAgent), Logger: e.log, StopTimeout: 10 * time.Second})
	if err != nil {
		e.b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	e.b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			e.b.Error(err)
		}
	})
}

// deploy does what `yard deploy` does after the build, for the binary
// under another name: the compatibility check's read, the upload (a
// digest check only once stored), the new version and the audit event.
func (e *env) deploy(ctx context.Context, name string, minInstances int) error {
	spec, err := registry.Decode(e.manifest)
	if err != nil {
		return err
	}
	spec.Name, spec.Env = name, map[string]string{"MANYFN_NAME": name}
	spec.MinInstances, spec.MaxInstances = minInstances, max(minInstances, 1)
	if err := spec.Validate(); err != nil {
		return err
	}
	if _, err := e.reg.Get(ctx, name); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	_, rev, err := e.reg.GetEntry(ctx, name)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	if spec.Artifact, _, err = e.reg.PutArtifact(ctx, e.bin, nil); err != nil {
		return err
	}
	d, err := e.reg.Deploy(ctx, spec, rev)
	detail := ""
	if d != nil {
		detail = fmt.Sprintf("v%d", d.Version)
	}
	ev := audit.Event{Who: audit.ConnUser(e.admin), Action: "deploy", Target: name, Outcome: audit.Outcome(err), Detail: detail}
	if aerr := audit.Record(ctx, e.js, audit.KindDeploy, ev); aerr != nil && err == nil {
		err = aerr
	}
	return err
}

// waitProvisioned polls until the agent has made every named function's
// async consumer: then a scale pass finds them all.
func (e *env) waitProvisioned(names []string, timeout time.Duration) {
	e.b.Helper()
	want := map[string]bool{}
	for _, n := range names {
		want[wire.AsyncConsumer(n)] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		have := 0
		if st, err := e.js.Stream(ctx, wire.StreamAsync); err == nil {
			lister := st.ConsumerNames(ctx)
			for name := range lister.Name() {
				if want[name] {
					have++
				}
			}
		}
		cancel()
		if have == len(want) {
			return
		}
		if time.Now().After(deadline) {
			e.b.Fatalf("after %s the agent had provisioned %d of %d functions", timeout, have, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiKey makes a key for every function, with a rate of its own high
// enough that the gateway's limiter never answers 429 here.
func (e *env) apiKey() string {
	e.b.Helper()
	key, _, err := apikeys.Create(context.Background(), e.js, "capacity", []string{apikeys.AllFunctions}, "1000000/s")
	if err != nil {
		e.b.Fatal(err)
	}
	return key
}

// serveGateway runs a gateway on its own credential, on loopback.
func (e *env) serveGateway() (base string) {
	e.b.Helper()
	nc := e.connect(platform.RoleGateway, roles.GatewayInbox)
	g, err := gateway.New(context.Background(), nc, gateway.Config{Addr: "127.0.0.1:0", Logger: e.log})
	if err != nil {
		e.b.Fatal(err)
	}
	ln, err := g.Listen()
	if err != nil {
		g.Close()
		e.b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	e.b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			e.b.Error(err)
		}
		g.Close()
	})
	return "http://" + ln.Addr().String()
}

// gatewayProcessEnv makes the test binary a gateway process (TestMain):
// its heap then holds the gateway alone, not the NATS server and agent of
// the benchmark's process.
const gatewayProcessEnv = "CAPACITY_GATEWAY_PROCESS"

// gatewayLoad is what a gateway process reports once ready.
type gatewayLoad struct {
	Load     time.Duration `json:"load"`      // connect → registry loaded → /readyz 200
	Live     int64         `json:"live"`      // live heap after a full collection
	HeapUsed int64         `json:"heap_used"` // HeapInuse then
}

// loadGateway starts a new gateway process on the gateway's credential
// and returns what it reports.
func (e *env) loadGateway() gatewayLoad {
	e.b.Helper()
	exe, err := os.Executable()
	if err != nil {
		e.b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), gatewayProcessEnv+"=1", wire.EnvNATSURL+"="+e.url,
		wire.EnvNATSCreds+"="+e.p.CredsFile(platform.RoleGateway))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var l gatewayLoad
	if err == nil {
		err = json.Unmarshal(out, &l)
	}
	if err != nil {
		e.b.Fatalf("gateway process: %v\n%s%s", err, out, stderr.String())
	}
	return l
}

// gatewayProcess is the process loadGateway starts: a gateway that loads
// the registry, answers /readyz, reports and exits.
func gatewayProcess() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	nc, err := nats.Connect(os.Getenv(wire.EnvNATSURL), nats.Name("capacity gateway process"),
		nats.UserCredentials(os.Getenv(wire.EnvNATSCreds)), nats.CustomInboxPrefix(roles.GatewayInbox))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	g, err := gateway.New(ctx, nc, gateway.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer g.Close()
	for {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "not ready: %d %s\n", rec.Code, rec.Body)
			return 1
		}
		time.Sleep(2 * time.Millisecond)
	}
	l := gatewayLoad{Load: time.Since(start)}
	runtime.GC() // twice: the first only moves sync.Pool contents aside
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	l.Live, l.HeapUsed = int64(s[0].Value.Uint64()), int64(ms.HeapInuse)
	runtime.KeepAlive(g)
	if err := json.NewEncoder(os.Stdout).Encode(l); err != nil {
		return 1
	}
	return 0
}

// ls runs `yard ls --json` in this process, as the admin, and checks it
// lists every function.
func (e *env) ls(n int) time.Duration {
	e.b.Helper()
	var out, errOut bytes.Buffer
	args := []string{"ls", "--json", "--no-context", "--server", e.url, "--creds", e.p.CredsFile(platform.RoleAdmin)}
	start := time.Now()
	code := cli.Run(context.Background(), args, cli.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		func(string) string { return "" })
	took := time.Since(start)
	if code != cli.ExitOK {
		e.b.Fatalf("yard ls: exit %d: %s", code, errOut.String())
	}
	var rows []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != n {
		e.b.Fatalf("yard ls listed %d functions, want %d (%v)", len(rows), n, err)
	}
	return took
}

// scalePass makes the requests of one agent scale pass: the STATS of
// every function at once with one wait (fleet.StatsEach, as the agent
// asks), then one consumer info per function for its async backlog.
func scalePass(nc *nats.Conn, js jetstream.JetStream, names []string) (stats, backlog time.Duration, answered int) {
	start := time.Now()
	for _, st := range fleet.StatsEach(nc, names, statsWait) {
		answered += len(st)
	}
	stats = time.Since(start)
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range names {
		if c, err := js.Consumer(ctx, wire.StreamAsync, wire.AsyncConsumer(name)); err == nil {
			_ = c.CachedInfo().NumPending
		}
	}
	return stats, time.Since(start), answered
}

// caller posts to the gateway with an API key on one kept-alive
// connection.
type caller struct {
	base, key string
	client    *http.Client
}

// call sends greet's input to a function and checks the answer.
func (c *caller) call(name string) error {
	req, _ := http.NewRequest(http.MethodPost, c.base+"/fn/"+name, strings.NewReader(`{"name":"Ada"}`))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != `{"message":"Hello, Ada!"}` {
		return fmt.Errorf("%s: %d %s", name, resp.StatusCode, body)
	}
	return nil
}

// percentile of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

func medianInt(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}
