package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// plainClient is a caller that knows nothing of Switchyard: nats.go alone.
func plainClient(t testing.TB, e *env) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(e.s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitStandby waits until the activator holds fn.<name> as the server sees
// it: a request no instance can take goes to it.
func (e *env) waitStandby(name string) {
	e.t.Helper()
	e.waitFor("the activator to stand by for "+name, func() bool {
		return e.ag.Holding(name) && e.s.GlobalAccount().Interest(wire.FnPrefix+name) > 0
	})
}

func TestPlainNATSCallerWakesFunctionAtZero(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, LeafURLs: leafHere})
	e.deploy("Hi", 0)
	e.waitStandby("echo")
	nc := plainClient(t, e)
	for round := range 2 {
		if n := len(e.ag.Instances()["echo"]); n != 0 {
			t.Fatalf("round %d: %d instances before the request, want 0", round, n)
		}
		req := nats.NewMsg("fn.echo")
		req.Data = []byte(`{"name":"Ada"}`)
		req.Header.Set(wire.HeaderRequestID, "plain-"+string(rune('a'+round)))
		m, err := nc.RequestMsg(req, 20*time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var o out
		if err := json.Unmarshal(m.Data, &o); err != nil || o.Greeting != "Hi, Ada" {
			t.Fatalf("round %d: %s", round, m.Data)
		}
		if got := m.Header.Get(wire.HeaderRequestID); got != req.Header.Get(wire.HeaderRequestID) {
			t.Fatalf("round %d: request id %q came back as %q", round, req.Header.Get(wire.HeaderRequestID), got)
		}
		// Idle past the idle timeout: back to zero for the next round.
		e.waitFor("scale to zero", func() bool { return len(e.ag.Instances()["echo"]) == 0 })
	}
	// Headers JetStream would act on travel untouched: two requests with
	// the same Nats-Msg-Id are both held and answered.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			req := nats.NewMsg("fn.echo")
			req.Data = []byte(`{"name":"Ada"}`)
			req.Header.Set("Nats-Msg-Id", "same")
			_, err := nc.RequestMsg(req, 20*time.Second)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a request with Nats-Msg-Id at zero: %v", err)
		}
	}
}

// TestTwoHundredConcurrentAtZero: 200 plain requests arrive together at a
// function with no instance; one instance starts and answers them all.
func TestTwoHundredConcurrentAtZero(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute, LeafURLs: leafHere})
	e.deploy("Hi", 0)
	e.waitStandby("echo")
	nc := plainClient(t, e)
	const n = 200
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "c" + strconv.Itoa(k)
			m, err := nc.Request("fn.echo", []byte(`{"name":"`+name+`"}`), 30*time.Second)
			if err != nil {
				errs <- err
				return
			}
			var o out
			if err := json.Unmarshal(m.Data, &o); err != nil || o.Greeting != "Hi, "+name {
				errs <- fmt.Errorf("%s: %s", name, m.Data)
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		t.Error(err)
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	if got := len(e.ag.Instances()["echo"]); got != 1 {
		t.Fatalf("%d instances, want 1 (max 1)", got)
	}
}

// slowStart makes every instance of the deployed function take d to start.
func slowStart(d time.Duration) func(*registry.Spec) {
	return func(s *registry.Spec) { s.Env["ECHO_START_DELAY"] = d.String() }
}

// TestActivatorBufferFull: past the bound of held requests per function,
// callers get resource_exhausted (reason activation_buffer_full) at once,
// and the held ones are answered.
func TestActivatorBufferFull(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute, LeafURLs: leafHere, HeldPerFunction: 4})
	e.deploy("Hi", 0, slowStart(time.Second))
	e.waitStandby("echo")
	nc := plainClient(t, e)
	const n = 12
	type result struct {
		err   error
		e     *wire.Error
		after time.Duration
	}
	results := make(chan result, n)
	start := time.Now()
	for range n {
		go func() {
			m, err := nc.Request("fn.echo", []byte(`{"name":"Ada"}`), 30*time.Second)
			r := result{err: err, after: time.Since(start)}
			if err == nil {
				r.e = wire.ReplyError(m.Header, m.Data)
				if m.Header.Get("Nats-Service-Error-Code") == "" && r.e == nil && !strings.Contains(string(m.Data), "Hi, Ada") {
					r.err = fmt.Errorf("unexpected answer %s", m.Data)
				}
				if r.e != nil && m.Header.Get("Nats-Service-Error-Code") != "429" {
					r.err = fmt.Errorf("error %v with status header %q", r.e, m.Header.Get("Nats-Service-Error-Code"))
				}
			}
			results <- r
		}()
	}
	ok, full := 0, 0
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Error(r.err)
		case r.e == nil:
			ok++
		case r.e.Code == wire.CodeResourceExhausted && r.e.Reason == "activation_buffer_full":
			full++
			if r.after > 900*time.Millisecond {
				t.Errorf("refused after %s: a full buffer must answer before the instance starts (1s)", r.after)
			}
		default:
			t.Errorf("unexpected error: %v", r.e)
		}
	}
	if ok != 4 || full != n-4 {
		t.Fatalf("%d answered, %d refused as full; want 4 and %d", ok, full, n-4)
	}
}

// servedRequests sums the requests the function's instances handled.
func servedRequests(t *testing.T, nc *nats.Conn, name string) int {
	t.Helper()
	in, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Unsubscribe()
	if err := nc.PublishRequest("$SRV.STATS."+name, in.Subject, nil); err != nil {
		t.Fatal(err)
	}
	total := 0
	for {
		m, err := in.NextMsg(300 * time.Millisecond)
		if err != nil {
			return total
		}
		var st struct {
			Endpoints []struct {
				Subject     string `json:"subject"`
				NumRequests int    `json:"num_requests"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		for _, ep := range st.Endpoints {
			total += ep.NumRequests
		}
	}
}

// TestActivatorDeadline: a request held past its deadline is answered
// with not_started and never runs: deadline_exceeded for the caller's own
// Yard-Deadline, unavailable for the function's timeout.
func TestActivatorDeadline(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute, LeafURLs: leafHere})
	e.deploy("Hi", 0, slowStart(2*time.Second), func(s *registry.Spec) { s.Timeout = registry.Duration(700 * time.Millisecond) })
	e.waitStandby("echo")
	nc := plainClient(t, e)

	req := nats.NewMsg("fn.echo")
	req.Data = []byte(`{"name":"Ada"}`)
	req.Header.Set(wire.HeaderDeadline, time.Now().Add(300*time.Millisecond).UTC().Format(time.RFC3339Nano))
	start := time.Now()
	m, err := nc.RequestMsg(req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if e := wire.ReplyError(m.Header, m.Data); e == nil || e.Code != wire.CodeDeadlineExceeded || e.Reason != "not_started" {
		t.Fatalf("caller's deadline: got %v (%s), want deadline_exceeded not_started", e, m.Data)
	}
	if took > 1500*time.Millisecond {
		t.Fatalf("answered %s after a 300ms deadline", took)
	}

	m, err = nc.Request("fn.echo", []byte(`{"name":"Ada"}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header, m.Data); e == nil || e.Code != wire.CodeUnavailable || e.Reason != "not_started" {
		t.Fatalf("function's timeout: got %v (%s), want unavailable not_started", e, m.Data)
	}
	// The instance comes up (the first request asked for it): neither
	// request ran.
	e.waitFor("the instance", func() bool {
		is := e.ag.Instances()["echo"]
		return len(is) == 1 && is[0].State == "ready"
	})
	if n := servedRequests(t, nc, "echo"); n != 0 {
		t.Fatalf("the instance served %d requests, want 0", n)
	}
}

// TestActivatorNotInHotPath: while an instance serves, no request reaches
// the activator.
func TestActivatorNotInHotPath(t *testing.T) {
	e := newEnvWith(t, agent.Config{LeafURLs: leafHere})
	e.deploy("Hi", 1)
	e.waitStandby("echo")
	nc := plainClient(t, e)
	e.waitFor("the instance", func() bool {
		is := e.ag.Instances()["echo"]
		return len(is) == 1 && is[0].State == "ready"
	})
	js, _ := jetstream.New(e.nc)
	held := func() uint64 {
		st, err := js.Stream(context.Background(), wire.StreamHeld)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before, served := held(), servedRequests(t, nc, "echo")
	const n = 2000
	for k := range n {
		if _, err := nc.Request("fn.echo", []byte(`{"name":"Ada"}`), 5*time.Second); err != nil {
			t.Fatalf("request %d: %v", k, err)
		}
	}
	if got := held() - before; got != 0 {
		t.Fatalf("%d of %d requests were held while an instance served", got, n)
	}
	if got := servedRequests(t, nc, "echo") - served; got != n {
		t.Fatalf("the instance served %d of %d", got, n)
	}
}

// TestSIGKILLEveryInstanceUnderLoad: plain callers with a 2s deadline keep
// calling while every instance is killed, four times. Requests sent after
// a kill wait for the restarted instances; none fails. Requests already
// inside a killed process are lost with it (core NATS delivers at most
// once): they are counted apart.
func TestSIGKILLEveryInstanceUnderLoad(t *testing.T) {
	e := newEnvWith(t, agent.Config{LeafURLs: leafHere})
	e.deploy("Hi", 2, func(s *registry.Spec) { s.MaxInstances = 2 })
	e.waitStandby("echo")
	nc := plainClient(t, e)
	var mu sync.Mutex
	pids := map[int]bool{}
	var kills []time.Time
	e.waitFor("two instances", func() bool {
		o, err := e.call()
		if err == nil {
			mu.Lock()
			pids[o.PID] = true
			mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		return len(pids) >= 2
	})
	const callers = 16
	var ok, noResponders, errReplies, lostAfterKill, inFlight atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				m, err := nc.Request("fn.echo", []byte(`{"name":"Ada"}`), 2*time.Second)
				switch {
				case errors.Is(err, nats.ErrNoResponders):
					noResponders.Add(1)
				case err != nil:
					// A request sent just before a kill (an answer takes
					// under a millisecond; 250ms allows for a loaded
					// machine), or up to 50ms after it (the server learns
					// of the closed socket), may have been inside the
					// killed process.
					mu.Lock()
					inside := false
					for _, k := range kills {
						if sent.Before(k.Add(50*time.Millisecond)) && sent.After(k.Add(-250*time.Millisecond)) {
							inside = true
						}
					}
					mu.Unlock()
					if inside {
						inFlight.Add(1)
					} else {
						lostAfterKill.Add(1)
					}
				case wire.ReplyError(m.Header, m.Data) != nil:
					errReplies.Add(1)
					t.Logf("error reply: %s", m.Data)
				default:
					var o out
					if json.Unmarshal(m.Data, &o) == nil {
						mu.Lock()
						pids[o.PID] = true
						mu.Unlock()
					}
					ok.Add(1)
				}
			}
		}()
	}
	for round := range 4 {
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		victims := []int{}
		for pid := range pids {
			victims = append(victims, pid)
		}
		clear(pids)
		kills = append(kills, time.Now())
		mu.Unlock()
		for _, pid := range victims {
			_ = syscall.Kill(pid, syscall.SIGKILL) // some are gone already
		}
		e.waitFor("both instances back", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(pids) >= 2
		})
		t.Logf("round %d: killed %d processes", round, len(victims))
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d answered, %d lost inside killed processes, %d no responders, %d error replies, %d failed after a kill",
		ok.Load(), inFlight.Load(), noResponders.Load(), errReplies.Load(), lostAfterKill.Load())
	if noResponders.Load() != 0 || errReplies.Load() != 0 || lostAfterKill.Load() != 0 {
		t.Fatal("requests sent after a kill failed")
	}
	if inFlight.Load() > 4*callers {
		t.Fatalf("%d requests lost, more than one per caller per kill", inFlight.Load())
	}
}

// TestHeldRequestsOutliveTheirAgent: an agent holding requests for a
// function that is still starting stops, by SIGKILL (they go to another
// agent once their acknowledgement is overdue) or by SIGTERM (it hands them
// over at once); every request is answered. The first agent is a real
// `yard agent` process.
func TestHeldRequestsOutliveTheirAgent(t *testing.T) {
	yard := filepath.Join(t.TempDir(), "yard")
	if out, err := exec.Command("go", "build", "-o", yard, "../../cli/yard").CombinedOutput(); err != nil {
		t.Fatalf("build yard: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newBareEnv(t)
			b := exec.Command(yard, "agent", "--server", e.s.ClientURL(), "--dir", t.TempDir(), "--id", "agent-b",
				"--presence-ttl", "1s", "--leaf-url", e.s.LeafURL())
			b.Stdout, b.Stderr = os.Stderr, os.Stderr
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Process.Kill(); _ = b.Wait() })
			e.deploy("Hi", 0, slowStart(3*time.Second))
			e.waitFor("agent-b to stand by", func() bool { return e.s.GlobalAccount().Interest("fn.echo") > 0 })

			nc := plainClient(t, e)
			const n = 20
			errs := make(chan error, n)
			for k := range n {
				go func() {
					name := "c" + strconv.Itoa(k)
					m, err := nc.Request("fn.echo", []byte(`{"name":"`+name+`"}`), 30*time.Second)
					var o out
					switch {
					case err != nil:
					case json.Unmarshal(m.Data, &o) != nil || o.Greeting != "Hi, "+name:
						err = fmt.Errorf("%s: %s", name, m.Data)
					}
					errs <- err
				}()
			}
			js, _ := jetstream.New(e.nc)
			e.waitFor("agent-b to hold every request", func() bool {
				c, err := js.Consumer(context.Background(), wire.StreamHeld, wire.HeldConsumer)
				if err != nil {
					return false
				}
				info, err := c.Info(context.Background())
				return err == nil && info.NumAckPending == n
			})
			c, err := js.Consumer(context.Background(), wire.StreamHeld, wire.HeldConsumer)
			if err != nil {
				t.Fatal(err)
			}
			delivered := func() uint64 {
				info, err := c.Info(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return info.Delivered.Consumer
			}
			first := delivered()
			stopped := time.Now()
			if err := b.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			// Another agent, which stands by as well.
			e.startAgent(agent.Config{ID: "agent-a", PresenceTTL: time.Second, LeafURLs: leafHere})
			e.waitFor("agent-a to take the held requests", func() bool { return delivered() >= first+n })
			took := time.Since(stopped)
			t.Logf("agent-a took the %d held requests %s after agent-b got %s", n, took.Round(10*time.Millisecond), sig)
			if sig == syscall.SIGTERM && took > 1500*time.Millisecond {
				t.Errorf("a stopping agent hands its held requests over at once; agent-a got them after %s", took)
			}
			for range n {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			t.Logf("agent-b stopped by %s while holding %d requests: all answered by agent-a after %s",
				sig, n, time.Since(stopped).Round(100*time.Millisecond))
		})
	}
}
