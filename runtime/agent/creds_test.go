package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// TestInstanceCredentials runs an agent on a server with authentication on,
// on the agent's own credential: each instance gets a credential of its
// own with its function's name, short-lived, renewed by replacing the
// instance before it expires with no request lost; secrets reach the
// instance's environment and win over the spec's env.
func TestInstanceCredentials(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "echofn")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/echofn").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const ttl = 6 * time.Second
	p, err := platform.Start(context.Background(), platform.Config{
		Server: server.Config{Port: -1, StoreDir: filepath.Join(dir, "js")}, Dir: dir, InstanceTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	admin := natstest.ConnectURL(t, p.NS.ClientURL(), nats.UserCredentials(p.CredsFile(platform.RoleAdmin)), nats.CustomInboxPrefix(roles.AdminInbox))
	js, _ := jetstream.New(admin)
	ctx := context.Background()
	if err := secrets.Set(ctx, js, "echo", "GREETING", "Psst"); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	agentNC := natstest.ConnectURL(t, p.NS.ClientURL(), nats.UserCredentials(p.CredsFile(platform.RoleAgent)),
		nats.CustomInboxPrefix(roles.AgentInbox))
	ag, err := agent.New(ctx, agentNC, agent.Config{Dir: filepath.Join(dir, "agent"), NATSURL: p.NS.ClientURL(), StopTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	e := &env{t: t, nc: admin, reg: reg, bin: bin, ag: ag}
	e.deploy("Hello", 1)
	e.waitFor("echo to serve", func() bool { _, err := e.call(); return err == nil })
	if o, _ := e.call(); o.Greeting != "Psst, Ada" {
		t.Fatalf("greeting %q: the secret did not reach the instance", o.Greeting)
	}

	ins := ag.Instances()["echo"]
	if len(ins) != 1 {
		t.Fatalf("instances %+v", ins)
	}
	first := ins[0].ID
	b, err := os.ReadFile(filepath.Join(dir, "agent", "instances", first, "nats.creds"))
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.ParseDecoratedJWT(b)
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil || uc.Name != "fn:echo:"+first || uc.Expires == 0 || time.Until(time.Unix(uc.Expires, 0)) > ttl {
		t.Fatalf("instance credential: %+v %v", uc, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "agent", "instances", first, "nats.creds")); st.Mode().Perm() != 0o600 {
		t.Fatalf("credential file mode %v", st.Mode())
	}

	// Under load, past two lifetimes: every request answered.
	var failed, served atomic.Int64
	var lastErr atomic.Value
	seen := sync.Map{}
	deadline := time.Now().Add(2*ttl + time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				o, err := e.call()
				if err != nil {
					failed.Add(1)
					lastErr.Store(err)
					continue
				}
				served.Add(1)
				seen.Store(o.PID, true)
			}
		}()
	}
	wg.Wait()
	pids := 0
	seen.Range(func(any, any) bool { pids++; return true })
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across credential renewals: %v", failed.Load(), failed.Load()+served.Load(), lastErr.Load())
	}
	if pids < 2 {
		t.Fatalf("no renewal in %s: one process served all %d requests", 2*ttl, served.Load())
	}
	for _, in := range ag.Instances()["echo"] {
		if in.ID == first && in.State != "draining" {
			t.Fatalf("the first instance outlived its credential: %+v", ag.Instances())
		}
	}
	t.Logf("%d requests, 0 failed, %d processes over %s with %s credentials", served.Load(), pids, 2*ttl, ttl)
}
