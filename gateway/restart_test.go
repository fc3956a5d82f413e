package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// agentEnv is env with a real agent on the same server, running the agent
// tests' echo function as real processes: an instance killed with SIGKILL
// is restarted by the agent, at least 100 ms later (its restart backoff,
// which doubles with each restart).
type agentEnv struct {
	*env
	reg *registry.Registry
	bin string
}

func newAgentEnv(t *testing.T) *agentEnv {
	t.Helper()
	e := newEnv(t)
	bin := filepath.Join(t.TempDir(), "echofn")
	if out, err := exec.Command("go", "build", "-o", bin, "../runtime/agent/testdata/echofn").CombinedOutput(); err != nil {
		t.Fatalf("build echofn: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(ctx, natstest.Connect(t, e.srv), agent.Config{
		Dir: filepath.Join(t.TempDir(), "agent"), NATSURL: e.srv.ClientURL(), StopTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	// Registered after newEnv's: the agent and its instances stop first.
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return &agentEnv{env: e, reg: reg, bin: bin}
}

// deployEcho deploys echo with one instance and this timeout, and waits
// until it answers through the gateway.
func (e *agentEnv) deployEcho(timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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
	spec.Artifact, spec.Env = art, map[string]string{"GREETING": "Hi"}
	spec.MinInstances, spec.MaxInstances, spec.Timeout = 1, 1, registry.Duration(timeout)
	d, err := e.reg.Deploy(ctx, spec, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	natstest.WaitFor(e.t, 30*time.Second, "echo to answer through the gateway", func() bool {
		f, ok := e.gw.cache.get("echo")
		if !ok || f.spec.Version != d.Version {
			return false
		}
		r, err := e.callEcho(context.Background())
		return err == nil && r.status == http.StatusOK
	})
}

// echoReply is an answer of POST /fn/echo.
type echoReply struct {
	status  int
	pid     int // of the instance that answered
	problem Problem
	header  http.Header
	took    time.Duration
}

// callEcho is POST /fn/echo, safe to call from any goroutine.
func (e *agentEnv) callEcho(ctx context.Context) (echoReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/fn/echo", strings.NewReader(`{"name":"Ada"}`))
	if err != nil {
		return echoReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.key)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return echoReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := echoReply{status: resp.StatusCode, header: resp.Header, took: time.Since(start)}
	if err != nil {
		return r, err
	}
	if r.status != http.StatusOK {
		return r, json.Unmarshal(body, &r.problem)
	}
	var out struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.PID == 0 {
		return r, errors.New("unexpected answer " + string(body))
	}
	r.pid = out.PID
	return r, nil
}

// echoPID is the process id of the running echo instance.
func (e *agentEnv) echoPID() int {
	e.t.Helper()
	var pid int
	natstest.WaitFor(e.t, 30*time.Second, "echo to answer on NATS", func() bool {
		pid, _ = e.natsEcho(5 * time.Second)
		return pid > 0
	})
	return pid
}

// natsEcho asks echo directly on NATS: the pid of the instance that
// answered, or the error.
func (e *agentEnv) natsEcho(wait time.Duration) (int, error) {
	m, err := e.nc.Request("fn.echo", []byte(`{"name":"Ada"}`), wait)
	if err != nil {
		return 0, err
	}
	var out struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(m.Data, &out); err != nil || out.PID == 0 {
		return 0, errors.New("unexpected answer " + string(m.Data))
	}
	return out.PID, nil
}

// killEcho kills the echo instance with SIGKILL and returns once no
// instance serves: the agent restarts it no sooner than its backoff. An
// instance that answers before the gap is seen is killed too, each
// process once.
func (e *agentEnv) killEcho() {
	e.t.Helper()
	kill := func(pid int) {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	pid := e.echoPID()
	kill(pid)
	natstest.WaitFor(e.t, 30*time.Second, "no instance of echo to serve", func() bool {
		// Briefly: a request may still reach the killed process until
		// the server sees its connection close, and then goes unanswered.
		p, err := e.natsEcho(20 * time.Millisecond)
		if p > 0 && p != pid {
			pid = p
			kill(p)
		}
		return errors.Is(err, nats.ErrNoResponders)
	})
}

// TestRequestsWaitForARestartingInstance: while the only instance of a
// deployed function is dead and the agent restarts it, concurrent requests
// through the gateway wait for the new instance instead of answering 503,
// and share a few activations instead of sending one each.
func TestRequestsWaitForARestartingInstance(t *testing.T) {
	e := newAgentEnv(t)
	e.deployEcho(10 * time.Second)

	var activations atomic.Int64
	spy := natstest.Connect(t, e.srv)
	sub, err := spy.Subscribe(wire.ActivatePrefix+"echo", func(*nats.Msg) { activations.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	for round := range 3 {
		old := e.echoPID()
		e.killEcho()
		activations.Store(0)
		start := time.Now()
		const requests = 32
		replies := make([]echoReply, requests)
		errs := make([]error, requests)
		var wg sync.WaitGroup
		for i := range requests {
			wg.Go(func() { replies[i], errs[i] = e.callEcho(context.Background()) })
		}
		wg.Wait()
		elapsed := time.Since(start)
		var slowest time.Duration
		for i, r := range replies {
			if errs[i] != nil || r.status != http.StatusOK {
				t.Fatalf("round %d, request %d: %d %+v %v", round, i, r.status, r.problem, errs[i])
			}
			if r.pid == old {
				t.Fatalf("round %d, request %d answered by the killed instance %d", round, i, old)
			}
			slowest = max(slowest, r.took)
		}
		// Activations start at least ActivationGap apart: one in flight,
		// and its outcome stands for the gap.
		n := activations.Load()
		if limit := int64(elapsed/fleet.ActivationGap) + 1; n > limit {
			t.Errorf("round %d: %d activations for %d requests in %s, want at most %d", round, n, requests, elapsed, limit)
		}
		t.Logf("round %d: %d requests while echo restarted: all answered, slowest in %s, %d activations",
			round, requests, slowest.Round(time.Millisecond), n)
	}
}

// TestRequestPastItsDeadlineWhileRestarting: a request whose deadline
// passes before the new instance serves gets the answer it always got
// when no instance runs (503, retry later), at its deadline and not
// before: it did wait.
func TestRequestPastItsDeadlineWhileRestarting(t *testing.T) {
	e := newAgentEnv(t)
	const timeout = 50 * time.Millisecond
	e.deployEcho(timeout)
	// Two restarts in a row: the agent now waits 200 ms before the next,
	// four times the function's timeout.
	e.killEcho()
	e.killEcho()
	r, err := e.callEcho(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable || r.problem.Code != wire.CodeUnavailable ||
		r.problem.Detail != `no instance of "echo" is running` || r.header.Get("Retry-After") != "2" {
		t.Fatalf("past the deadline: %d %+v, Retry-After %q", r.status, r.problem, r.header.Get("Retry-After"))
	}
	if r.took < timeout || r.took > timeout+5*time.Second {
		t.Errorf("answered after %s, want at the %s deadline", r.took, timeout)
	}
	// The instance does come back, and serves.
	natstest.WaitFor(t, 30*time.Second, "echo to serve again", func() bool {
		r, err := e.callEcho(context.Background())
		return err == nil && r.status == http.StatusOK
	})
}

// TestNoWaitForFunctionsThatCannotCome: requests for a function no agent
// will start fail at once, as before: one that does not exist, one that
// is registered but not deployed, and a deployed one with no agent to
// start it.
func TestNoWaitForFunctionsThatCannotCome(t *testing.T) {
	e := newEnv(t)
	const timeout = 10 * time.Second
	const fast = 2 * time.Second // a fifth of the deadline

	e.register(&registry.Spec{Name: "undeployed", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "x", Timeout: registry.Duration(timeout)})
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.Deploy(ctx, &registry.Spec{Name: "noagent", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "y", Timeout: registry.Duration(timeout)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "gateway to learn noagent", func() bool {
		f, ok := e.gw.cache.get("noagent")
		return ok && f.spec.Version == d.Version
	})

	for _, c := range []struct {
		name   string
		status int
		code   wire.Code
	}{
		{"nosuch", http.StatusNotFound, wire.CodeNotFound},
		{"undeployed", http.StatusServiceUnavailable, wire.CodeUnavailable},
		{"noagent", http.StatusServiceUnavailable, wire.CodeUnavailable},
		{"noagent", http.StatusServiceUnavailable, wire.CodeUnavailable}, // and again
	} {
		start := time.Now()
		r := e.post(c.name, `{}`)
		took := time.Since(start)
		if r.status != c.status || r.problem.Code != c.code {
			t.Errorf("%s: got %d %s, want %d", c.name, r.status, r.body, c.status)
		}
		if c.status == http.StatusServiceUnavailable && r.problem.Detail != `no instance of "`+c.name+`" is running` {
			t.Errorf("%s: detail %q", c.name, r.problem.Detail)
		}
		if took > fast {
			t.Errorf("%s: answered after %s, want at once (its deadline is %s)", c.name, took, timeout)
		}
	}
}
