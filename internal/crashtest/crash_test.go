// Package crashtest holds the async crash test: thousands of invocations
// accepted over HTTP while function processes are SIGKILLed and the NATS
// server restarts, then every accepted invocation is accounted for.
//
// It is slow (a minute or two), so it runs only with YARD_CRASH_TEST=1;
// .ci/run sets it.
package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/execlog"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

const (
	invocations  = 10_000
	instances    = 3
	kills        = 12 // SIGKILLs of function processes, spread over the submissions
	restarts     = 2  // NATS server restarts, likewise
	submitters   = 16
	settleBudget = 3 * time.Minute
)

func TestCrash(t *testing.T) {
	if os.Getenv("YARD_CRASH_TEST") == "" {
		t.Skip("slow; set YARD_CRASH_TEST=1 (.ci/run does)")
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "exec")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "crashfn")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/crashfn").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	// NATS on a fixed port, so every client reconnects after a restart.
	port := natstest.FreePort(t)
	store := filepath.Join(dir, "js")
	ns := startServer(t, port, store)
	var nsMu sync.Mutex
	t.Cleanup(func() { nsMu.Lock(); ns.Shutdown(); nsMu.Unlock() })
	url := ns.ClientURL()

	gnc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer gnc.Close()
	// What the agents do for the instances, which run without a deploy:
	// register and provision them.
	fntest.Platform(t, gnc)

	fns := &fleet{t: t, bin: bin, env: []string{"NATS_URL=" + url, "CRASH_LOG_DIR=" + logDir}}
	for i := range instances {
		fns.start(i)
	}
	t.Cleanup(fns.stopAll)
	// Refusals while NATS restarts are expected and counted below; their
	// log lines would only bury the result.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// crash is public, and the submitters are one address that must not
	// be rate limited: the test is about crashes, not limits.
	gw, err := gateway.New(context.Background(), gnc, gateway.Config{Addr: "127.0.0.1:0", Logger: quiet, AnonymousRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ln, err := gw.Listen()
	if err != nil {
		t.Fatal(err)
	}
	gctx, stopGateway := context.WithCancel(context.Background())
	defer stopGateway()
	go func() { _ = gw.Serve(gctx, ln) }()
	base := "http://" + ln.Addr().String()
	natstest.WaitFor(t, 30*time.Second, "the gateway to know crash", func() bool {
		resp, err := http.Get(base + "/fn/crash")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	// Submit, with chaos driven by progress so it always overlaps the load.
	var accepted atomic.Int64
	var refusals atomic.Int64
	ids := make([]string, invocations)
	acceptedAt := make([]time.Time, invocations)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= invocations {
					return
				}
				ids[n], acceptedAt[n] = submit(t, client, base, n, &refusals)
				accepted.Add(1)
			}
		}()
	}
	chaosDone := make(chan struct{})
	var killed, restarted int
	go func() {
		defer close(chaosDone)
		killEvery := invocations / (kills + 1)
		restartAt := map[int]bool{invocations / 3: true, 2 * invocations / 3: true}
		for step := 1; step <= invocations; step++ {
			for int(accepted.Load()) < step {
				time.Sleep(time.Millisecond)
			}
			if step%killEvery == 0 && killed < kills {
				fns.kill(rand.IntN(instances))
				killed++
			}
			if restartAt[step] && restarted < restarts {
				nsMu.Lock()
				ns.Shutdown()
				ns.WaitForShutdown()
				ns = startServer(t, port, store)
				nsMu.Unlock()
				restarted++
			}
		}
	}()
	wg.Wait()
	<-chaosDone
	submitted := time.Now()
	if killed < 10 || restarted < 2 {
		t.Fatalf("chaos too small: %d kills, %d restarts", killed, restarted)
	}

	// Every accepted invocation must end succeeded or dead.
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), wire.BucketResults)
	if err != nil {
		t.Fatal(err)
	}
	records := make([]*invocation.Record, invocations)
	deadline := time.Now().Add(settleBudget)
	for {
		pending := 0
		for n, id := range ids {
			if records[n] != nil && records[n].Status.Final() {
				continue
			}
			e, err := kv.Get(context.Background(), wire.ResultKey("crash", id))
			if err == nil {
				var rec invocation.Record
				if json.Unmarshal(e.Value(), &rec) == nil {
					records[n] = &rec
				}
			}
			if records[n] == nil || !records[n].Status.Final() {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted invocations never finished (lost)", pending, invocations)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var succeeded, dead int
	var latencies []time.Duration
	for n, rec := range records {
		switch rec.Status {
		case invocation.Succeeded:
			succeeded++
			if string(rec.Result) != fmt.Sprintf(`{"n":%d}`, n) {
				t.Errorf("invocation %d has result %s", n, rec.Result)
			}
		case invocation.Dead:
			dead++
		}
		latencies = append(latencies, rec.FinishedAt.Sub(acceptedAt[n]))
	}
	execs := countExecutions(t, logDir)
	var missing, duplicates int
	for n := range invocations {
		switch c := execs[n]; {
		case c == 0 && records[n].Status == invocation.Succeeded:
			missing++
		case c > 1:
			duplicates += c - 1
		}
	}
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	t.Logf("crash test: accepted %d (after %d 503/connection refusals, retried with the same Idempotency-Key); "+
		"succeeded %d, dead-lettered %d, lost %d; duplicate executions %d (%.2f%%); "+
		"%d SIGKILLs, %d NATS restarts; accept-to-complete p50 %s p99 %s max %s; all settled %s after the last accept",
		accepted.Load(), refusals.Load(), succeeded, dead, int(accepted.Load())-succeeded-dead, duplicates,
		100*float64(duplicates)/float64(invocations), killed, restarted,
		p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond),
		time.Since(submitted).Round(time.Millisecond))
	if succeeded+dead != int(accepted.Load()) {
		t.Fatalf("lost invocations: accepted %d, succeeded %d, dead %d", accepted.Load(), succeeded, dead)
	}
	if missing > 0 {
		t.Fatalf("%d invocations say succeeded but never executed", missing)
	}
}

// submit posts invocation n until it is accepted. The idempotency key makes
// a retry after an ambiguous failure (the server died mid-request) safe.
func submit(t *testing.T, c *http.Client, base string, n int, refusals *atomic.Int64) (string, time.Time) {
	body := fmt.Sprintf(`{"n":%d}`, n)
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, base+"/fn/crash?async=1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "crash-"+strconv.Itoa(n))
		resp, err := c.Do(req)
		if err == nil {
			var acc struct {
				ID string `json:"id"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&acc)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted && derr == nil {
				return acc.ID, time.Now()
			}
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusNotFound {
				t.Errorf("invocation %d: status %d", n, resp.StatusCode)
				return "", time.Now()
			}
		}
		refusals.Add(1)
		if attempt > 2000 {
			t.Errorf("invocation %d never accepted: %v", n, err)
			return "", time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countExecutions(t *testing.T, dir string) map[int]int {
	t.Helper()
	counts, err := execlog.Count(dir)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func startServer(t *testing.T, port int, store string) *natsserver.Server {
	t.Helper()
	var ns *natsserver.Server
	// The old server's port may take a moment to be free again.
	natstest.WaitFor(t, 30*time.Second, "NATS to start", func() bool {
		var err error
		ns, err = server.Start(server.Config{Port: port, StoreDir: store, ReadyTimeout: 20 * time.Second})
		return err == nil
	})
	return ns
}

// fleet runs the function processes.
type fleet struct {
	t    *testing.T
	bin  string
	env  []string
	mu   sync.Mutex
	cmds [instances]*exec.Cmd
}

func (f *fleet) start(i int) {
	cmd := exec.Command(f.bin)
	cmd.Env = append(os.Environ(), f.env...)
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.cmds[i] = cmd
	f.mu.Unlock()
}

// kill SIGKILLs instance i and starts a replacement.
func (f *fleet) kill(i int) {
	f.mu.Lock()
	cmd := f.cmds[i]
	f.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	f.start(i)
}

func (f *fleet) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cmds {
		if c != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}
}
