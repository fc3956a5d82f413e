package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type out struct {
	Version  string `json:"version"`
	Greeting string `json:"greeting"`
	PID      int    `json:"pid"`
}

// env is a server, a built function binary, a registry and a running agent.
type env struct {
	t   testing.TB
	s   *natstest.Server
	nc  *nats.Conn
	reg *registry.Registry
	bin string
	ag  *agent.Agent
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, agent.Config{})
}

// newEnvWith is newEnv with agent settings (Dir and NATSURL are filled in).
func newEnvWith(t testing.TB, cfg agent.Config) *env {
	t.Helper()
	e := newBareEnv(t)
	e.startAgent(cfg)
	return e
}

// newBareEnv is newEnv with no agent running yet.
func newBareEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "echofn")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/echofn").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, s: s, nc: nc, reg: reg, bin: bin}
}

// startAgent runs an agent in this process (Dir and NATSURL are filled in).
func (e *env) startAgent(cfg agent.Config) {
	t := e.t
	t.Helper()
	cfg.Dir, cfg.NATSURL = filepath.Join(t.TempDir(), "agent"), e.s.ClientURL()
	if slices.Equal(cfg.LeafURLs, leafHere) {
		cfg.LeafURLs = []string{e.s.LeafURL()}
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	ctx := context.Background()
	ag, err := agent.New(ctx, natstest.Connect(t, e.s), cfg)
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	e.ag = ag
}

// leafHere, as agent.Config.LeafURLs, is the test server's leaf node URL.
var leafHere = []string{"the test server"}

// deploy puts echo with this greeting and instance floor; mods adjust the
// spec before it is deployed.
func (e *env) deploy(greeting string, min int, mods ...func(*registry.Spec)) *registry.Spec {
	e.t.Helper()
	ctx := context.Background()
	art, _, err := e.reg.PutArtifact(ctx, e.bin, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	manifest, err := exec.Command(e.bin, wire.ManifestFlag).Output()
	if err != nil {
		e.t.Fatal(err)
	}
	spec, err := registry.Decode(manifest)
	if err != nil {
		e.t.Fatal(err)
	}
	spec.Artifact, spec.Env, spec.MinInstances, spec.MaxInstances = art, map[string]string{"GREETING": greeting}, min, max(min, 1)
	for _, m := range mods {
		m(spec)
	}
	d, err := e.reg.Deploy(ctx, spec, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) call() (out, error) {
	m, err := e.nc.Request("fn.echo", []byte(`{"name":"Ada"}`), 5*time.Second)
	if err != nil {
		return out{}, err
	}
	var o out
	if err := json.Unmarshal(m.Data, &o); err != nil {
		return out{}, errors.New(string(m.Data))
	}
	return o, nil
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	natstest.WaitFor(e.t, 30*time.Second, what, cond)
}

func TestDeployRunsAndRollsOver(t *testing.T) {
	e := newEnv(t)
	v1 := e.deploy("Hello", 2)
	e.waitFor("v1 to serve", func() bool {
		o, err := e.call()
		return err == nil && o.Greeting == "Hello, Ada"
	})
	e.waitFor("two v1 instances", func() bool { return len(e.ag.Instances()["echo"]) == 2 })

	// Roll over to v2 under continuous load: no request may fail.
	var failed, served atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.call(); err != nil {
					failed.Add(1)
					lastErr.Store(err)
				} else {
					served.Add(1)
				}
			}
		}()
	}
	v2 := e.deploy("Bonjour", 2)
	e.waitFor("only v2 instances", func() bool {
		ins := e.ag.Instances()["echo"]
		if len(ins) != 2 {
			return false
		}
		for _, in := range ins {
			if in.Version != v2.Version || in.State != "ready" {
				return false
			}
		}
		return true
	})
	// Requests sent now reach v2 only.
	for range 10 {
		if o, err := e.call(); err != nil || o.Version != "2" {
			t.Fatalf("after rollout: %+v, %v", o, err)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the rollout: %v", failed.Load(), failed.Load()+served.Load(), lastErr.Load())
	}
	t.Logf("rollout v%d -> v%d under load: %d requests, 0 failed", v1.Version, v2.Version, served.Load())

	// Rollback brings v1 back.
	if _, err := e.reg.Rollback(context.Background(), "echo", 0); err != nil {
		t.Fatal(err)
	}
	e.waitFor("v1 again", func() bool {
		o, err := e.call()
		return err == nil && o.Version == "1" && o.Greeting == "Hello, Ada"
	})

	// Remove drains everything.
	if err := e.reg.Remove(context.Background(), "echo"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("no instance", func() bool {
		_, err := e.call()
		return errors.Is(err, nats.ErrNoResponders) && len(e.ag.Instances()["echo"]) == 0
	})
}

func TestCrashedInstanceRestarts(t *testing.T) {
	e := newEnv(t)
	e.deploy("Hi", 1)
	var first out
	e.waitFor("v1 to serve", func() bool {
		var err error
		first, err = e.call()
		return err == nil
	})
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a new process to serve", func() bool {
		o, err := e.call()
		return err == nil && o.PID != first.PID
	})
	if r := e.ag.Instances()["echo"]; len(r) != 1 || r[0].Restarts < 1 {
		t.Fatalf("instances %+v", r)
	}
}

func TestCorruptArtifactIsNotRun(t *testing.T) {
	e := newEnv(t)
	spec := e.deploy("Hi", 1)
	e.waitFor("v1 to serve", func() bool { _, err := e.call(); return err == nil })
	// A spec whose digest does not match the stored bytes must not start.
	bad := *spec
	bad.Artifact = &registry.Artifact{Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		Size: spec.Artifact.Size, Object: "sha256-0000000000000000000000000000000000000000000000000000000000000000"}
	if _, err := e.reg.Deploy(context.Background(), &bad, 0); err != nil {
		t.Fatal(err)
	}
	// The old version keeps serving: a rollout never drains before the new
	// version serves.
	for range 20 {
		if o, err := e.call(); err != nil || o.Version != "1" {
			t.Fatalf("old version must keep serving: %+v %v", o, err)
		}
	}
}
