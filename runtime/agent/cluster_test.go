package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/runtime/agent"
)

// countInstances pings every instance of a function.
func countInstances(t *testing.T, nc *nats.Conn, name string) int {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.PING."+name, inbox, nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := sub.NextMsg(150 * time.Millisecond); err != nil {
			return n
		}
		n++
	}
}

// TestTwoAgents: two agents share a function's instances; when one is
// SIGKILLed (its instances die with it), the other runs them all within
// seconds.
func TestTwoAgents(t *testing.T) {
	e := newEnvWith(t, agent.Config{ID: "agent-a", PresenceTTL: 1500 * time.Millisecond})
	yard := filepath.Join(t.TempDir(), "yard")
	if out, err := exec.Command("go", "build", "-o", yard, "../../cli/yard").CombinedOutput(); err != nil {
		t.Fatalf("build yard: %v\n%s", err, out)
	}
	b := exec.Command(yard, "agent", "--server", e.nc.ConnectedUrl(), "--dir", t.TempDir(), "--id", "agent-b", "--presence-ttl", "1.5s")
	b.Stdout, b.Stderr = os.Stderr, os.Stderr
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Process.Kill(); _ = b.Wait() })

	e.deploy("Hi", 2)
	e.waitFor("one instance on each agent", func() bool {
		return len(e.ag.Instances()["echo"]) == 1 && countInstances(t, e.nc, "echo") == 2
	})

	killed := time.Now()
	if err := b.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = b.Wait()
	e.waitFor("agent-a to run both instances", func() bool {
		return len(e.ag.Instances()["echo"]) == 2 && countInstances(t, e.nc, "echo") == 2
	})
	t.Logf("failover: agent-b SIGKILLed, its instance replaced on agent-a after %s", time.Since(killed).Round(100*time.Millisecond))
	if _, err := e.call(); err != nil {
		t.Fatal(err)
	}
}
