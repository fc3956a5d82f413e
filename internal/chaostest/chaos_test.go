//go:build unix

package chaostest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/childproc"
	"github.com/switchyard-dev/switchyard/internal/execlog"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

const (
	fnName = "chaos"
	nodes  = 3
	// fsync is the --sync setting of the nodes, reported with the figures.
	fsync = "default"

	// budget bounds the whole test after the builds; the brief is 5
	// minutes on 2 cores, builds included.
	budget = 4*time.Minute + 15*time.Second

	// Load. Sync requests go out at a fixed rate whether or not earlier
	// ones have answered (open loop, as independent clients would send
	// them), alternating between the gateways, at most syncMaxInFlight
	// at once. Async submissions come from workers, each submitting one
	// at a time, at most one per asyncPace.
	syncEvery       = 25 * time.Millisecond // 40 sync requests/s
	syncMaxInFlight = 256
	asyncWorkers    = 4
	asyncPace       = 100 * time.Millisecond // ≤ 40 async submissions/s
	maxAsync        = 50_000                 // a bound on submissions, far above what a run makes

	syncTimeout  = 10 * time.Second
	asyncTimeout = 20 * time.Second // a submission may wait out a leader election (invocation.AcceptWait)
	// keyedRetry is how long a submission with an Idempotency-Key is
	// retried (the same key, so at most one invocation results).
	keyedRetry = 30 * time.Second

	progressStep = 40 // successful sync requests between chaos events
	rejoinWait   = 90 * time.Second
	stopHold     = 10 * time.Second // the SIGSTOP
	drainWait    = 90 * time.Second

	// At-least-once costs duplicates: each node that rejoins makes the
	// stream leaders change once more, and for the ~0.6 s without a leader
	// every outcome write fails and its invocation runs again. That is
	// 0-5% of a run's invocations here (three rejoins in about a minute);
	// ten would mean something new.
	maxDuplicateShare = 0.10
	maxSyncGap        = 30 * time.Second
)

func TestChaos(t *testing.T) {
	if os.Getenv("YARD_CHAOS_TEST") != "1" {
		t.Skip("slow, runs a 3-node cluster for minutes; set YARD_CHAOS_TEST=1")
	}
	runStart := time.Now()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if d := os.Getenv("YARD_CHAOS_LOGS"); d != "" {
		logDir = d
	}
	execDir := filepath.Join(logDir, "exec")
	for _, d := range []string{logDir, execDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fnDir, err := filepath.Abs(filepath.Join("testdata", "chaosfn"))
	if err != nil {
		t.Fatal(err)
	}
	yard := filepath.Join(dir, "yard")
	buildStart := time.Now()
	bctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", yard, "../../cli/yard").CombinedOutput(); err != nil {
		t.Fatalf("build yard: %v\n%s", err, out)
	}
	t.Logf("built yard in %s", time.Since(buildStart).Round(time.Millisecond))

	h := &harness{t: t, yard: yard, data: filepath.Join(dir, "data"), logDir: logDir, deadline: time.Now().Add(budget)}
	t.Cleanup(h.cleanup)
	h.startUp()
	t.Logf("cluster up at %s after %s", h.natsURL, time.Since(runStart).Round(time.Millisecond))

	// The function goes through the real deploy path: go build, manifest,
	// upload to yard_artifacts, version, live spec; the agents start it.
	deployStart := time.Now()
	h.run("deploy", 3*time.Minute, "deploy", fnDir, "--env", "CHAOS_LOG_DIR="+execDir)
	t.Logf("deployed %s in %s", fnName, time.Since(deployStart).Round(time.Millisecond))
	// An API key with a rate of its own: the load comes from one address,
	// which the gateways' anonymous limit (20/s) would throttle.
	key := strings.TrimSpace(h.run("keys", time.Minute, "keys", "create", "chaos-load", "--functions", fnName, "--rate", "100000/s"))
	if !strings.HasPrefix(key, "yk_") {
		t.Fatalf("keys create printed %q", key)
	}

	// Stateless scale-out: a second gateway and a second agent, as
	// processes of their own, against the same cluster.
	h.gw2Addr = "127.0.0.1:" + strconv.Itoa(h.freePort(1))
	h.gw2 = h.startGateway2()
	h.agent2 = h.startAgent2()
	gateways := []string{"http://" + h.gw1Addr, "http://" + h.gw2Addr}
	for _, base := range gateways {
		h.waitFor(90*time.Second, "the function to answer through "+base, func() bool { return probeSync(base, key) })
	}
	h.waitFor(60*time.Second, "both agents to announce themselves", func() bool { return h.agentsLive() >= 2 })
	t.Logf("ready after %s: gateways %s, agents %d", time.Since(runStart).Round(time.Millisecond), strings.Join(gateways, " "), h.agentsLive())

	// Async submissions with an Idempotency-Key take another path (a
	// queued record first, then the message): try one before the load.
	ld := newLoad(gateways, key)
	ld.keyed = h.preflightKeyed(ld)

	// The load, for the whole chaos phase.
	ld.start()
	loadStopped := false
	stopLoad := func() {
		if !loadStopped {
			loadStopped = true
			ld.stop()
		}
	}
	defer stopLoad()

	h.progress(ld, progressStep*2, "warm-up")
	// Three SIGKILLs of the node leading YARD_ASYNC, each after the
	// cluster has its three nodes answering again.
	for k := 1; k <= 3; k++ {
		rows := h.waitHealthy("3 answering nodes and a YARD_ASYNC leader before SIGKILL " + strconv.Itoa(k))
		leader := asyncLeader(rows)
		clients := h.clientsOf(leader)
		h.signal(leader, syscall.SIGKILL)
		ev := ld.event(fmt.Sprintf("SIGKILL %s (pid %d, leads YARD_ASYNC%s; its clients: %s)", leader.Name, leader.PID, metaNote(leader), clients))
		h.waitRejoined(leader, ev)
		h.progress(ld, progressStep, "after SIGKILL "+strconv.Itoa(k))
	}
	// SIGSTOP for 10 s the node that gateway 2 is connected to: a node
	// that hangs, its connections open, is worse than one that dies, and
	// worst for the clients connected to it.
	rows := h.waitHealthy("3 answering nodes before SIGSTOP")
	frozen, why := h.nodeWith("yard gateway", rows), "holds gateway 2's connection"
	if frozen == nil {
		frozen, why = asyncLeader(rows), "leads YARD_ASYNC (gateway 2's connection not found)"
	} else if slices.Contains(frozen.Leads, wire.StreamAsync) {
		why += ", leads YARD_ASYNC"
	}
	clients := h.clientsOf(frozen)
	h.signal(frozen, syscall.SIGSTOP)
	h.stopped = frozen.PID
	ev := ld.event(fmt.Sprintf("SIGSTOP %s (pid %d, %s%s; its clients: %s) for %s", frozen.Name, frozen.PID, why, metaNote(frozen), clients, stopHold))
	time.Sleep(stopHold) // the required hold; the load goes on meanwhile
	h.signal(frozen, syscall.SIGCONT)
	h.stopped = 0
	ev2 := ld.event("SIGCONT " + frozen.Name)
	rows = h.waitHealthy("3 answering nodes after SIGCONT")
	ev2.recovered = time.Since(ev2.at)
	t.Logf("after SIGCONT: %s", describe(rows))
	h.progress(ld, progressStep, "after SIGSTOP")

	// Restart the second gateway: SIGTERM, start again on the same address.
	ev = ld.event("restart gateway 2 (SIGTERM, start again)")
	h.stopProc(h.gw2, 30*time.Second)
	h.gw2 = h.startGateway2()
	h.waitFor(30*time.Second, "gateway 2 to answer again", func() bool { return probeSync(gateways[1], key) })
	ev.recovered = time.Since(ev.at)
	h.progress(ld, progressStep, "after the gateway restart")

	// Restart the second agent likewise: it drains its instances, the
	// first agent takes over its share, then it takes it back.
	ev = ld.event("restart agent 2 (SIGTERM, start again)")
	h.stopProc(h.agent2, 60*time.Second)
	h.agent2 = h.startAgent2()
	h.waitFor(60*time.Second, "agent 2 to announce itself again", func() bool { return h.agentsLive() >= 2 })
	// Taking its share of instances back is reported, not required: the
	// function keeps serving from the other agent's instances meanwhile,
	// and the agent retries a start that meets JetStream still settling.
	if h.pollFor(60*time.Second, func() bool { return h.logHas(h.agent2, "instance started") }) {
		ev.recovered = time.Since(ev.at)
	} else {
		ev.what += "; it ran no instance of its own within 60s"
		t.Logf("agent 2 ran no instance within 60s of its restart; the last lines of its log:\n%s", tail(h.agent2.log, 40))
	}
	h.progress(ld, progressStep*2, "after the agent restart")

	stopLoad()
	loadTime := ld.stopped.Sub(ld.started)
	t.Logf("load stopped after %s", loadTime.Round(time.Millisecond))

	// Every accepted async invocation must have executed.
	v := h.verify(ld)
	execsAll := countExecutions(t, execDir)
	v.duplicates, v.orphans = 0, 0
	for n, c := range execsAll {
		if _, ok := ld.accepted[n]; ok {
			v.duplicates += max(0, c-1)
		} else {
			v.orphans += c
		}
	}
	h.report(ld, v, loadTime, time.Since(runStart))

	if v.lost > 0 {
		t.Errorf("LOST: %d accepted async invocations never executed (first 10):\n%s", v.lost, strings.Join(v.lostIDs, "\n"))
	}
	if v.stuck > 0 {
		t.Errorf("OUTCOME LOST: %d accepted async invocations executed, but their records never became final (first 10):\n%s",
			v.stuck, strings.Join(v.stuckIDs, "\n"))
	}
	if v.dead > 0 {
		t.Errorf("%d accepted async invocations were dead-lettered, though the function never fails", v.dead)
	}
	if v.noExec > 0 {
		t.Errorf("%d invocations are recorded succeeded but never executed", v.noExec)
	}
	if share := float64(v.duplicates) / float64(max(1, len(ld.accepted))); share > maxDuplicateShare {
		t.Errorf("duplicate executions: %d of %d accepted (%.1f%%), more than at-least-once should cost", v.duplicates, len(ld.accepted), 100*share)
	}
	if gap := ld.sync.maxGap; gap.d > maxSyncGap {
		t.Errorf("no sync request succeeded for %s (from +%s): longer than %s", gap.d.Round(time.Millisecond), gap.from.Sub(ld.started).Round(time.Millisecond), maxSyncGap)
	}
	if ld.unexpected.Load() > 0 {
		t.Errorf("%d responses the test did not expect (see the log above)", ld.unexpected.Load())
	}
}

// ---------------------------------------------------------------------
// The processes.

type harness struct {
	t        *testing.T
	yard     string
	data     string
	logDir   string
	deadline time.Time // of the whole test

	natsURL, adminCreds string
	gw1Addr, gw2Addr    string
	monitor             int // node n<k>'s NATS monitoring port is monitor+k-1
	picked              map[int]bool

	mu     sync.Mutex
	procs  []*proc // every process started, for the cleanup
	up     *proc
	gw2    *proc
	agent2 *proc
	starts map[string]int

	stopped int // pid of a SIGSTOPped node, to SIGCONT on the way out

	nc *nats.Conn // the admin's, opened on first use
}

// proc is one process the test started.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // once done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// env is the test's environment without NATS_* variables (a developer's
// NATS_URL must not send a yard command elsewhere).
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") {
			out = append(out, kv)
		}
	}
	return out
}

// start runs yard with args, its output in <logDir>/<name>-<k>.log.
func (h *harness) start(name string, args ...string) *proc {
	h.t.Helper()
	h.mu.Lock()
	if h.starts == nil {
		h.starts = map[string]int{}
	}
	h.starts[name]++
	logPath := filepath.Join(h.logDir, fmt.Sprintf("%s-%d.log", name, h.starts[name]))
	h.mu.Unlock()
	f, err := os.Create(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(h.yard, args...)
	cmd.Env = env()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childproc.Attr() // nothing outlives the test binary
	if err := cmd.Start(); err != nil {
		f.Close()
		h.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p
}

// stopProc sends SIGTERM and waits up to grace, then SIGKILLs.
func (h *harness) stopProc(p *proc, grace time.Duration) {
	h.t.Helper()
	if p == nil || p.exited() {
		return
	}
	began := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		h.t.Logf("%s stopped in %s (%v)", p.name, time.Since(began).Round(time.Millisecond), exitNote(p.err))
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		h.t.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, grace)
	}
}

func exitNote(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func (h *harness) cleanup() {
	if h.stopped != 0 {
		_ = syscall.Kill(h.stopped, syscall.SIGCONT)
	}
	if h.nc != nil {
		h.nc.Close()
	}
	h.mu.Lock()
	procs := slices.Clone(h.procs)
	h.mu.Unlock()
	// The second agent and gateway first, yard up (and with it the nodes)
	// last.
	slices.Reverse(procs)
	for _, p := range procs {
		if !p.exited() {
			h.stopProc(p, 40*time.Second)
		}
	}
	if h.t.Failed() {
		for _, p := range h.procs {
			h.t.Logf("---- last lines of %s ----\n%s", filepath.Base(p.log), tail(p.log, 40))
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (h *harness) logHas(p *proc, s string) bool {
	b, _ := os.ReadFile(p.log)
	return bytes.Contains(b, []byte(s))
}

// left is the time left of the test's budget, at most d.
func (h *harness) left(d time.Duration) time.Duration {
	return max(0, min(d, time.Until(h.deadline)))
}

// waitFor polls cond until it holds, failing the test after timeout (or
// when the budget is spent).
func (h *harness) waitFor(timeout time.Duration, what string, cond func() bool) {
	h.t.Helper()
	limit := h.left(timeout)
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", limit.Round(time.Millisecond), what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pollFor polls cond until it holds (true) or timeout passes (false).
func (h *harness) pollFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(h.left(timeout))
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// startUp runs yard up --cluster 3 on free ports, retrying with others
// when one was taken meanwhile.
func (h *harness) startUp() {
	h.t.Helper()
	h.adminCreds = filepath.Join(h.data, "admin.creds")
	for attempt := 1; ; attempt++ {
		port := h.freePort(3, 2000)
		h.monitor = h.freePort(3)
		h.gw1Addr = "127.0.0.1:" + strconv.Itoa(h.freePort(1))
		var urls []string
		for k := range nodes {
			urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(port+k))
		}
		h.natsURL = strings.Join(urls, ",")
		h.up = h.start("up", "up", "--no-context", "--cluster", strconv.Itoa(nodes), "--no-functions", "--data", h.data,
			"--nats-port", strconv.Itoa(port), "--http", h.gw1Addr, "--metrics", "off", "--sync", fsync,
			"--nats-monitor", "127.0.0.1:"+strconv.Itoa(h.monitor))
		deadline := time.Now().Add(h.left(150 * time.Second))
		for {
			// The banner's last line alone (the nodes' lines end in it too).
			if b, _ := os.ReadFile(h.up.log); bytes.Contains(b, []byte("\nCtrl-C stops.\n")) {
				return
			}
			if h.up.exited() {
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("yard up did not come up in time; its log:\n%s", tail(h.up.log, 60))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if b, _ := os.ReadFile(h.up.log); attempt < 3 && bytes.Contains(b, []byte("in use")) {
			h.t.Logf("yard up: a port was taken; trying others")
			continue
		}
		h.t.Fatalf("yard up exited (%v) before it was up; its log:\n%s", h.up.err, tail(h.up.log, 60))
	}
}

// freePort picks a random P below the usual ephemeral range (32768 and
// up, where the machine's outgoing connections would take a port between
// the check and its use) with P..P+n-1 free on 127.0.0.1, and the same
// run at each offset (the cluster's route ports), none picked before.
func (h *harness) freePort(n int, offsets ...int) int {
	h.t.Helper()
	for range 200 {
		p := 10000 + rand.IntN(20000)
		free := true
		for _, off := range append([]int{0}, offsets...) {
			for k := range n {
				q := p + off + k
				if h.picked[q] {
					free = false
					break
				}
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
		}
		if free {
			if h.picked == nil {
				h.picked = map[int]bool{}
			}
			for _, off := range append([]int{0}, offsets...) {
				for k := range n {
					h.picked[p+off+k] = true
				}
			}
			return p
		}
	}
	h.t.Fatal("no free ports")
	return 0
}

// run runs a yard command as the admin and returns its stdout.
func (h *harness) run(name string, timeout time.Duration, args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.left(timeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, h.yard, append(args, "--no-context", "-s", h.natsURL, "--creds", h.adminCreds)...)
	cmd.Env = env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("yard %s: %v\n%s%s", name, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func (h *harness) startGateway2() *proc {
	return h.start("gateway2", "gateway", "--no-context", "-s", h.natsURL, "--creds", filepath.Join(h.data, "creds", "gateway.creds"),
		"--http", h.gw2Addr)
}

func (h *harness) startAgent2() *proc {
	return h.start("agent2", "agent", "--no-context", "-s", h.natsURL, "--creds", filepath.Join(h.data, "creds", "agent.creds"),
		"--dir", filepath.Join(h.data, "agent2"), "--id", "chaos-agent-2")
}

// admin is the admin's NATS connection, for the checks.
func (h *harness) admin() *nats.Conn {
	h.t.Helper()
	if h.nc == nil {
		nc, err := nats.Connect(h.natsURL, nats.UserCredentials(h.adminCreds), nats.CustomInboxPrefix(roles.AdminInbox),
			nats.Name("chaos test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			h.t.Fatal(err)
		}
		h.nc = nc
	}
	return h.nc
}

// agentsLive counts the agents announcing themselves in yard_agents.
func (h *harness) agentsLive() int {
	js, err := jetstream.New(h.admin())
	if err != nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "yard_agents")
	if err != nil {
		return 0
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}

// ---------------------------------------------------------------------
// The cluster's nodes, as `yard servers --json` lists them.

type serverRow struct {
	Name       string   `json:"name"`
	PID        int      `json:"pid"`
	ClientURL  string   `json:"client_url"`
	MetaLeader bool     `json:"meta_leader"`
	Leads      []string `json:"leads"`
	Answering  bool     `json:"answering"`
	State      string   `json:"state"`
}

func (h *harness) servers() ([]serverRow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.yard, "servers", "--json", "--no-context", "-s", h.natsURL, "--creds", h.adminCreds)
	cmd.Env = env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var rows []serverRow
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

func asyncLeader(rows []serverRow) *serverRow {
	for i := range rows {
		if rows[i].Answering && slices.Contains(rows[i].Leads, wire.StreamAsync) {
			return &rows[i]
		}
	}
	return nil
}

func healthy(rows []serverRow) bool {
	answering := 0
	for _, r := range rows {
		if r.Answering {
			answering++
		}
	}
	return answering == nodes && len(rows) == nodes && asyncLeader(rows) != nil
}

func metaNote(r *serverRow) string {
	if r.MetaLeader {
		return ", and is the meta leader"
	}
	return ""
}

func describe(rows []serverRow) string {
	var parts []string
	for _, r := range rows {
		s := fmt.Sprintf("%s pid %d %s", r.Name, r.PID, r.State)
		if !r.Answering {
			s += " NOT ANSWERING"
		}
		if slices.Contains(r.Leads, wire.StreamAsync) {
			s += " (YARD_ASYNC leader)"
		}
		if r.MetaLeader {
			s += " (meta)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// connNames lists the names of the client connections of a node, from
// its NATS monitoring endpoint.
func (h *harness) connNames(r *serverRow) ([]string, error) {
	k, err := strconv.Atoi(strings.TrimPrefix(r.Name, "n"))
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/connz?limit=4096", h.monitor+k-1))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var cz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
		return nil, err
	}
	var names []string
	for _, c := range cz.Connections {
		names = append(names, c.Name)
	}
	return names, nil
}

// nodeWith returns the node holding a client connection named name.
func (h *harness) nodeWith(name string, rows []serverRow) *serverRow {
	for i := range rows {
		if names, err := h.connNames(&rows[i]); err == nil && slices.Contains(names, name) {
			return &rows[i]
		}
	}
	return nil
}

// clientsOf summarises a node's platform clients: "yard gateway, yard fn
// chaos ×2, …".
func (h *harness) clientsOf(r *serverRow) string {
	names, err := h.connNames(r)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	count := map[string]int{}
	for _, n := range names {
		if strings.HasPrefix(n, "yard") {
			count[n]++
		}
	}
	if len(count) == 0 {
		return "none of the platform's"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(count)) {
		if count[n] > 1 {
			n += fmt.Sprintf(" ×%d", count[n])
		}
		parts = append(parts, n)
	}
	return strings.Join(parts, ", ")
}

// waitHealthy waits for three answering nodes and a YARD_ASYNC leader.
func (h *harness) waitHealthy(what string) []serverRow {
	h.t.Helper()
	var rows []serverRow
	var lastErr error
	limit := h.left(rejoinWait)
	deadline := time.Now().Add(limit)
	for {
		var err error
		if rows, err = h.servers(); err == nil && healthy(rows) {
			return rows
		}
		lastErr = err
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s: last seen %s (err %v)", limit.Round(time.Millisecond), what, describe(rows), lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitRejoined waits until the killed node runs again (another pid) and
// the cluster is healthy, and records how long that took.
func (h *harness) waitRejoined(killed *serverRow, ev *event) {
	h.t.Helper()
	limit := h.left(rejoinWait)
	deadline := time.Now().Add(limit)
	var rows []serverRow
	for {
		rows, _ = h.servers()
		back := false
		for _, r := range rows {
			if r.Name == killed.Name && r.Answering && r.PID != killed.PID {
				back = true
			}
		}
		if back && healthy(rows) {
			ev.recovered = time.Since(ev.at)
			h.t.Logf("%s rejoined after %s: %s", killed.Name, ev.recovered.Round(time.Millisecond), describe(rows))
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s did not rejoin within %s of its SIGKILL: %s", killed.Name, limit.Round(time.Millisecond), describe(rows))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// signal sends sig to a node, after checking that the pid is a node of
// this test's cluster: never signal a stranger.
func (h *harness) signal(r *serverRow, sig syscall.Signal) {
	h.t.Helper()
	if r == nil {
		h.t.Fatal("no node to signal")
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
	if err == nil && !bytes.Contains(cmdline, []byte(h.data)) {
		h.t.Fatalf("pid %d (%s) is not a node of this test: %q", r.PID, r.Name, cmdline)
	}
	if err := syscall.Kill(r.PID, sig); err != nil {
		h.t.Fatalf("%s %s (pid %d): %v", sig, r.Name, r.PID, err)
	}
}

// progress waits for n more successful sync requests: the platform
// serves again before the next blow.
func (h *harness) progress(ld *load, n int64, what string) {
	h.t.Helper()
	from := ld.syncOK.Load()
	h.waitFor(60*time.Second, fmt.Sprintf("%d successful sync requests (%s)", n, what), func() bool { return ld.syncOK.Load() >= from+n })
}

// ---------------------------------------------------------------------
// The load.

type event struct {
	at        time.Time
	what      string
	recovered time.Duration // until the cluster (or component) was whole again
}

type gap struct {
	from time.Time
	d    time.Duration
}

type syncStats struct {
	ok, failed int
	perGW      [2]struct{ ok, failed int }
	causes     map[string]int
	lastOK     time.Time
	maxGap     gap
	perGWLast  [2]time.Time
	perGWGap   [2]gap
}

func (s *syncStats) record(gw int, ok bool, cause string, at time.Time) {
	if !ok {
		s.failed++
		s.perGW[gw].failed++
		s.causes[cause]++
		return
	}
	s.ok++
	s.perGW[gw].ok++
	if d := at.Sub(s.lastOK); d > s.maxGap.d {
		s.maxGap = gap{from: s.lastOK, d: d}
	}
	s.lastOK = at
	if d := at.Sub(s.perGWLast[gw]); d > s.perGWGap[gw].d {
		s.perGWGap[gw] = gap{from: s.perGWLast[gw], d: d}
	}
	s.perGWLast[gw] = at
}

// close accounts for the time from the last success to the end.
func (s *syncStats) close(end time.Time) {
	if d := end.Sub(s.lastOK); d > s.maxGap.d {
		s.maxGap = gap{from: s.lastOK, d: d}
	}
	for gw := range s.perGWLast {
		if d := end.Sub(s.perGWLast[gw]); d > s.perGWGap[gw].d {
			s.perGWGap[gw] = gap{from: s.perGWLast[gw], d: d}
		}
	}
}

type acceptedInv struct {
	id    string
	at    time.Time
	keyed bool
}

type load struct {
	gateways []string
	key      string
	keyed    bool // half the submissions carry an Idempotency-Key
	sync     syncStats
	syncOK   atomic.Int64

	mu       sync.Mutex
	accepted map[int]acceptedInv
	refused  map[string]int // async attempts refused, by cause
	given    int            // async submissions never accepted
	events   []*event

	unexpected atomic.Int64
	nextSync   atomic.Int64
	nextAsync  atomic.Int64

	started, stopped time.Time
	done             chan struct{}
	wg               sync.WaitGroup
}

func newLoad(gateways []string, key string) *load {
	return &load{gateways: gateways, key: key, accepted: map[int]acceptedInv{}, refused: map[string]int{},
		sync: syncStats{causes: map[string]int{}}, done: make(chan struct{})}
}

func (l *load) event(what string) *event {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := &event{at: time.Now(), what: what}
	l.events = append(l.events, ev)
	return ev
}

func newClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

func (l *load) start() {
	l.started = time.Now()
	l.sync.lastOK = l.started
	l.sync.perGWLast = [2]time.Time{l.started, l.started}
	l.wg.Add(1)
	go l.syncDriver()
	for w := range asyncWorkers {
		l.wg.Add(1)
		go l.asyncWorker(w)
	}
}

// stop ends the load: the end counts from now, not from when the last
// request in flight (an async one may wait out an election) returns.
func (l *load) stop() {
	l.stopped = time.Now()
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	l.sync.close(l.stopped)
	l.mu.Unlock()
}

func (l *load) stopping() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// pace waits until began+d, or the end of the load.
func (l *load) pace(began time.Time, d time.Duration) {
	t := time.NewTimer(time.Until(began.Add(d)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.done:
	}
}

// syncDriver sends a sync request every syncEvery, alternating between
// the gateways, each on a goroutine of its own, at most syncMaxInFlight
// at once (beyond that a request is not sent, and counted as an error).
func (l *load) syncDriver() {
	defer l.wg.Done()
	c := newClient(syncTimeout)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	tick := time.NewTicker(syncEvery)
	defer tick.Stop()
	slots := make(chan struct{}, syncMaxInFlight)
	for i := 0; ; i++ {
		select {
		case <-l.done:
			return
		case <-tick.C:
		}
		gw := i % len(l.gateways)
		select {
		case slots <- struct{}{}:
		default:
			l.mu.Lock()
			l.sync.record(gw, false, "not sent: too many in flight", time.Now())
			l.mu.Unlock()
			continue
		}
		l.wg.Add(1)
		go func(n int) {
			defer l.wg.Done()
			defer func() { <-slots }()
			ok, cause := l.syncCall(c, gw, n)
			l.mu.Lock()
			l.sync.record(gw, ok, cause, time.Now())
			l.mu.Unlock()
			if ok {
				l.syncOK.Add(1)
			}
		}(int(l.nextSync.Add(1)))
	}
}

func (l *load) syncCall(c *http.Client, gw, n int) (bool, string) {
	req, _ := http.NewRequest(http.MethodPost, l.gateways[gw]+"/fn/"+fnName, strings.NewReader(fmt.Sprintf(`{"n":%d,"sync":true}`, n)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.key)
	resp, err := c.Do(req)
	if err != nil {
		return false, transportCause(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.noteUnexpected(resp.StatusCode, body)
		return false, fmt.Sprintf("HTTP %d %s", resp.StatusCode, problemCode(body))
	}
	var out struct {
		N int `json:"n"`
	}
	if json.Unmarshal(body, &out) != nil || out.N != n {
		l.unexpected.Add(1)
		return false, "wrong answer"
	}
	return true, ""
}

// noteUnexpected counts answers no outage explains: a 4xx other than 429
// means the test (or the gateway) is wrong, not the cluster.
func (l *load) noteUnexpected(status int, body []byte) {
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout {
		if l.unexpected.Add(1) <= 5 {
			fmt.Fprintf(os.Stderr, "chaos: unexpected HTTP %d: %s\n", status, body)
		}
	}
}

func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return "(" + p.Code + ")"
	}
	return ""
}

func transportCause(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "Client.Timeout"):
		return "client timeout"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "connection reset"), strings.Contains(s, "EOF"), strings.Contains(s, "closed"):
		return "connection closed"
	default:
		return "transport: " + s
	}
}

// asyncWorker submits invocation after invocation. Even ones carry an
// Idempotency-Key and are retried (through either gateway) for up to
// keyedRetry; odd ones are plain, tried once, as most callers do.
func (l *load) asyncWorker(w int) {
	defer l.wg.Done()
	c := newClient(asyncTimeout)
	for !l.stopping() {
		began := time.Now()
		n := int(l.nextAsync.Add(1) - 1)
		if n >= maxAsync {
			return
		}
		keyed := l.keyed && n%2 == 0
		giveUp := time.Now().Add(keyedRetry)
		accepted := false
		for attempt := 0; ; attempt++ {
			gw := (w + n + attempt) % len(l.gateways)
			id, cause := l.submit(c, gw, n, keyed)
			if id != "" {
				l.mu.Lock()
				l.accepted[n] = acceptedInv{id: id, at: time.Now(), keyed: keyed}
				l.mu.Unlock()
				accepted = true
				break
			}
			l.mu.Lock()
			l.refused[cause]++
			l.mu.Unlock()
			if !keyed || time.Now().After(giveUp) || l.stopping() {
				break
			}
			l.pace(time.Now(), 100*time.Millisecond)
		}
		if !accepted {
			l.mu.Lock()
			l.given++
			l.mu.Unlock()
		}
		l.pace(began, asyncPace)
	}
}

func (l *load) submit(c *http.Client, gw, n int, keyed bool) (id, cause string) {
	req, _ := http.NewRequest(http.MethodPost, l.gateways[gw]+"/fn/"+fnName+"?async=1", strings.NewReader(fmt.Sprintf(`{"n":%d}`, n)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.key)
	if keyed {
		req.Header.Set("Idempotency-Key", "chaos-"+strconv.Itoa(n))
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", transportCause(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		l.noteUnexpected(resp.StatusCode, body)
		return "", fmt.Sprintf("HTTP %d %s", resp.StatusCode, problemCode(body))
	}
	var acc struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &acc) != nil || acc.ID == "" {
		l.unexpected.Add(1)
		return "", "202 without an id"
	}
	return acc.ID, ""
}

// preflightKeyed submits one invocation with an Idempotency-Key and
// reports whether it was accepted. When it is not, while plain ones are,
// the test fails with what the logs say, and the load goes on with plain
// submissions only, so the chaos figures still come.
func (h *harness) preflightKeyed(ld *load) bool {
	h.t.Helper()
	n := maxAsync + 1
	began := time.Now()
	id, cause := ld.submit(newClient(asyncTimeout), 0, n, true)
	if id != "" {
		ld.accepted[n] = acceptedInv{id: id, at: time.Now(), keyed: true}
		return true
	}
	var evidence []string
	for _, p := range []*proc{h.up, h.gw2} {
		b, _ := os.ReadFile(p.log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Permissions Violation for Publish to \"$KV."+wire.BucketResults) ||
				strings.Contains(line, "accept async invocation") {
				evidence = append(evidence, filepath.Base(p.log)+": "+line)
				break
			}
		}
	}
	h.t.Errorf("an async submission with an Idempotency-Key was refused (%s after %s) while plain ones are accepted; "+
		"the load goes on with plain submissions only. The gateways' logs say:\n%s",
		cause, time.Since(began).Round(time.Millisecond), strings.Join(evidence, "\n"))
	return false
}

// probeSync reports whether one sync request through base succeeds.
func probeSync(base, key string) bool {
	l := &load{gateways: []string{base}, key: key}
	ok, _ := l.syncCall(newClient(5*time.Second), 0, 0)
	return ok
}

// ---------------------------------------------------------------------
// The reckoning.

type verdict struct {
	confirmed, dead int
	// lost: accepted, never executed. stuck: executed, but the record
	// never became final (succeeded or dead): whoever waits on it waits
	// for ever. noExec (counted in lost too): recorded succeeded, yet no
	// execution.
	lost, stuck, noExec int
	lostIDs, stuckIDs   []string
	duplicates, orphans int
	latencies           []time.Duration // accept to finish
	maxAttempts         int
	settled             time.Duration // after the load stopped
}

// verify waits until every accepted async invocation has a succeeded
// record and at least one execution in the log, or drainWait passes.
func (h *harness) verify(ld *load) verdict {
	h.t.Helper()
	js, err := jetstream.New(h.admin())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	kv, err := js.KeyValue(ctx, wire.BucketResults)
	cancel()
	if err != nil {
		h.t.Fatal(err)
	}
	execDir := filepath.Join(h.logDir, "exec")
	type state struct {
		rec  *invocation.Record
		done bool
	}
	states := map[int]*state{}
	for n := range ld.accepted {
		states[n] = &state{}
	}
	var v verdict
	limit := h.left(drainWait)
	deadline := time.Now().Add(limit)
	for {
		execs := countExecutions(h.t, execDir)
		pending := 0
		for n, st := range states {
			if st.done {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			e, err := kv.Get(ctx, wire.ResultKey(fnName, ld.accepted[n].id))
			cancel()
			if err == nil {
				var rec invocation.Record
				if json.Unmarshal(e.Value(), &rec) == nil {
					st.rec = &rec
				}
			}
			switch {
			case st.rec != nil && st.rec.Status == invocation.Succeeded && execs[n] > 0:
				st.done = true
			case st.rec != nil && st.rec.Status == invocation.Dead:
				st.done = true
			default:
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			v.settled = time.Since(ld.stopped)
			for n, st := range states {
				detail := func() string {
					d := fmt.Sprintf("n=%d id=%s accepted=%s executions=%d record=", n, ld.accepted[n].id, rel(ld, ld.accepted[n].at), execs[n])
					if st.rec == nil {
						return d + "none"
					}
					return d + fmt.Sprintf("{status %s, attempts %d, started %s, finished %s}", st.rec.Status, st.rec.Attempts,
						rel(ld, st.rec.StartedAt), rel(ld, st.rec.FinishedAt))
				}
				switch {
				case !st.done && execs[n] > 0:
					v.stuck++
					v.stuckIDs = appendMax(v.stuckIDs, detail())
				case !st.done:
					v.lost++
					if st.rec != nil && st.rec.Status == invocation.Succeeded {
						v.noExec++
					}
					v.lostIDs = appendMax(v.lostIDs, detail())
				case st.rec.Status == invocation.Dead:
					v.dead++
				default:
					v.confirmed++
					v.latencies = append(v.latencies, st.rec.FinishedAt.Sub(ld.accepted[n].at))
					v.maxAttempts = max(v.maxAttempts, st.rec.Attempts)
				}
			}
			if pending > 0 {
				h.t.Logf("after %s, %d accepted invocations were still not settled (succeeded with an execution logged, or dead)", limit.Round(time.Millisecond), pending)
			}
			return v
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rel is a time relative to the start of the load.
func rel(ld *load, at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return "+" + at.Sub(ld.started).Round(time.Millisecond).String()
}

func appendMax(s []string, v string) []string {
	if len(s) < 10 {
		return append(s, v)
	}
	return s
}

// countExecutions reads the function's execution logs: one line, the
// input's n, per execution of an async invocation.
func countExecutions(t *testing.T, dir string) map[int]int {
	t.Helper()
	counts, err := execlog.Count(dir)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func (h *harness) report(ld *load, v verdict, loadTime, runTime time.Duration) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	s := &ld.sync
	keyed := 0
	for _, a := range ld.accepted {
		if a.keyed {
			keyed++
		}
	}
	refusedTotal := 0
	for _, c := range ld.refused {
		refusedTotal += c
	}
	sort.Slice(v.latencies, func(i, j int) bool { return v.latencies[i] < v.latencies[j] })
	pct := func(q float64) string {
		if len(v.latencies) == 0 {
			return "-"
		}
		return v.latencies[int(q*float64(len(v.latencies)-1))].Round(time.Millisecond).String()
	}
	rel := func(at time.Time) string { return "+" + at.Sub(ld.started).Round(100*time.Millisecond).String() }
	// The chaos event nearest before the longest gap began.
	gapCause := "no chaos event before it"
	for _, ev := range ld.events {
		if !ev.at.After(s.maxGap.from.Add(time.Second)) {
			gapCause = "after: " + ev.what
		}
	}
	total := s.ok + s.failed
	var b strings.Builder
	fmt.Fprintf(&b, "\nChaos test summary (yard up --cluster 3, streams R3, --sync %s; sync load %.0f requests/s open loop over both gateways, async %d submitters at ≤ %.0f/s each)\n\n",
		fsync, float64(time.Second)/float64(syncEvery), asyncWorkers, float64(time.Second)/float64(asyncPace))
	fmt.Fprintf(&b, "| Measure | Value |\n|---|---|\n")
	fmt.Fprintf(&b, "| fsync (`--sync`) | %s |\n", fsync)
	fmt.Fprintf(&b, "| Run time (whole test, build included) | %s |\n", runTime.Round(time.Second))
	fmt.Fprintf(&b, "| Load phase | %s |\n", loadTime.Round(time.Second))
	fmt.Fprintf(&b, "| Sync requests | %d: %d through yard up's gateway (%d failed), %d through gateway 2 (%d failed) |\n",
		total, s.perGW[0].ok+s.perGW[0].failed, s.perGW[0].failed, s.perGW[1].ok+s.perGW[1].failed, s.perGW[1].failed)
	fmt.Fprintf(&b, "| Sync errors | %d (%.2f%%): %s |\n", s.failed, 100*float64(s.failed)/float64(max(1, total)), causes(s.causes))
	fmt.Fprintf(&b, "| Longest window without a successful sync request | %s (from %s, %s) |\n", s.maxGap.d.Round(time.Millisecond), rel(s.maxGap.from), gapCause)
	fmt.Fprintf(&b, "| Longest such window per gateway | yard up's %s (from %s); gateway 2 %s (from %s) |\n",
		s.perGWGap[0].d.Round(time.Millisecond), rel(s.perGWGap[0].from), s.perGWGap[1].d.Round(time.Millisecond), rel(s.perGWGap[1].from))
	keyNote := ""
	if !ld.keyed {
		keyNote = " (none with a key under load: the preflight submission with one was refused)"
	}
	fmt.Fprintf(&b, "| Async submissions | %d: %d accepted (%d with Idempotency-Key, %d plain%s), %d never accepted |\n",
		len(ld.accepted)+ld.given, len(ld.accepted), keyed, len(ld.accepted)-keyed, keyNote, ld.given)
	fmt.Fprintf(&b, "| Async attempts refused | %d: %s |\n", refusedTotal, causes(ld.refused))
	fmt.Fprintf(&b, "| Accepted async invocations lost (never executed) | **%d** |\n", v.lost)
	fmt.Fprintf(&b, "| Executed, but the record never became final | **%d** |\n", v.stuck)
	fmt.Fprintf(&b, "| Dead-lettered | %d |\n", v.dead)
	fmt.Fprintf(&b, "| Duplicate executions | %d (%.2f%% of accepted); most deliveries of one invocation %d |\n",
		v.duplicates, 100*float64(v.duplicates)/float64(max(1, len(ld.accepted))), v.maxAttempts)
	fmt.Fprintf(&b, "| Executions of submissions never accepted | %d |\n", v.orphans)
	fmt.Fprintf(&b, "| Accept to finish, p50 / p99 / max | %s / %s / %s |\n", pct(0.5), pct(0.99), pct(1))
	fmt.Fprintf(&b, "| All accepted invocations executed | %s after the load stopped |\n", v.settled.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "\nChaos events (time from the start of the load; recovered = back to 3 answering nodes / component serving):\n\n")
	fmt.Fprintf(&b, "| At | Event | Recovered after |\n|---|---|---|\n")
	for _, ev := range ld.events {
		rec := "-"
		if ev.recovered > 0 {
			rec = ev.recovered.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", rel(ev.at), ev.what, rec)
	}
	h.t.Log(b.String())
}

func causes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s × %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
