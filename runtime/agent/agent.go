// Package agent runs deployed Switchyard functions as operating-system
// processes. An agent watches the registry (yard_functions); for every
// deployed function it fetches the version's binary from yard_artifacts,
// verifies its sha256, and keeps the wanted number of instances running,
// each in its own working directory with its own environment, restarting
// crashed ones with backoff. A new version is rolled out by starting its
// instances first and draining the old ones only once the new ones serve,
// so no request is lost. Removing a function drains its instances.
//
// Lifecycle: New checks the config and opens the registry; Run reconciles
// until its context ends, then drains every instance it started.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/internal/metrics"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Config of an agent.
type Config struct {
	// Dir holds fetched artifacts and one working directory per instance.
	Dir string
	// NATSURL is what instances connect to. Each gets a credential of its
	// own from the trust service; Creds is what they connect with on a
	// NATS system without one (no authentication).
	NATSURL string
	Creds   string
	// CA is the file of the CA that signed a TLS server's certificate,
	// passed to instances as NATS_CA.
	CA string
	// Env is extra KEY=VALUE for every instance.
	Env []string
	// StopTimeout bounds an instance's drain before SIGKILL; default 35s,
	// past the SDK's own 30s drain.
	StopTimeout time.Duration
	// ReadyTimeout bounds how long a new instance may take to serve before
	// a rollout gives up on it (and keeps the old version); default 60s.
	ReadyTimeout time.Duration
	// ScaleInterval is how often the scaler looks at load; default 2s.
	ScaleInterval time.Duration
	// IdleTimeout is the default of registry.Spec.IdleTimeout; default 5m.
	IdleTimeout time.Duration
	// ID names this agent among all agents on the NATS system; default
	// the host name plus a random suffix.
	ID string
	// PresenceTTL is how long an agent that stops announcing itself (it
	// crashed, or lost its connection) still counts as alive; its share of
	// instances moves to the others after that. Default 6s.
	PresenceTTL time.Duration
	// UnservedSweep is how often the agent looks for functions run without
	// a deploy whose instances all died unannounced; two sweeps with no
	// instance answering remove one. Default 1m.
	UnservedSweep time.Duration
	Logger        *slog.Logger
	// Output receives every instance's log lines, prefixed with its id;
	// nil discards them (they are on yard.logs.<name>.<instance> anyway).
	Output io.Writer
	// Metrics, when set, records instances, cold starts, restarts, async
	// backlogs and the stats of the functions this agent scales.
	Metrics *metrics.Metrics
	// LeafURLs are the NATS server's leaf node URLs (nats-leaf://host:port,
	// or tls://): the activator connects there to hold plain NATS requests
	// to functions with no instance. Without them it is off: such requests
	// get no responders (the gateway, yard invoke and the SDK still wake
	// the function).
	LeafURLs []string
	// HeldPerFunction bounds the requests held for one function, across
	// agents, when this agent creates YARD_HELD; default 1024. More are
	// answered resource_exhausted (reason activation_buffer_full).
	HeldPerFunction int
}

// defaultPresenceTTL is Config.PresenceTTL's default.
const defaultPresenceTTL = 6 * time.Second

// Agent runs deployed functions.
type Agent struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	reg  *registry.Registry
	prov *provision.Provisioner
	log  *slog.Logger

	cluster   *cluster
	activator *activator

	mu  sync.Mutex
	fns map[string]*function
	wg  sync.WaitGroup

	// scales mirrors yard_scale: the wanted instance count per function,
	// agreed by all agents. A leaf lock: taken with or without f.mu.
	scalesMu sync.Mutex
	scales   map[string]int
}

// New prepares an agent on nc.
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Agent, error) {
	if cfg.Dir == "" {
		return nil, errors.New("agent: Dir is required")
	}
	// Instances run in folders of their own, so every path the agent
	// hands them (the binary above all) must not depend on the working
	// directory.
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cfg.Dir = dir
	if cfg.NATSURL == "" {
		cfg.NATSURL = nc.ConnectedUrl()
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 35 * time.Second
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = time.Minute
	}
	if cfg.ScaleInterval == 0 {
		cfg.ScaleInterval = 2 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if cfg.PresenceTTL == 0 {
		cfg.PresenceTTL = defaultPresenceTTL
	}
	if cfg.UnservedSweep == 0 {
		cfg.UnservedSweep = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := shieldFromInstances(); err != nil {
		cfg.Logger.Warn("agent: instances may read this process's environment", "err", err)
	}
	for _, d := range []string{"artifacts", "instances"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	prov, err := provision.New(ctx, js, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	reg := prov.Registry()
	if err := ensureLogStream(ctx, js); err != nil {
		return nil, err
	}
	if cfg.HeldPerFunction <= 0 {
		cfg.HeldPerFunction = DefaultHeldPerFunction
	}
	if err := ensureHeldStream(ctx, js, cfg.HeldPerFunction, cfg.ReadyTimeout+time.Minute); err != nil {
		// A server older than this agent: the activator waits for it.
		cfg.Logger.Warn("agent: the activator cannot hold requests until YARD_HELD exists", "err", err)
	}
	cl, err := newCluster(ctx, js, cfg.ID, cfg.PresenceTTL)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, nc: nc, js: js, reg: reg, prov: prov, cluster: cl, log: cfg.Logger.With("component", "agent", "agent", cfg.ID),
		fns: map[string]*function{}, scales: map[string]int{}}
	if a.activator, err = newActivator(a); err != nil {
		return nil, err
	}
	return a, nil
}

// ensureLogStream keeps recent function logs, so `yard logs` can show the
// past and not only what happens while it watches.
func ensureLogStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := jskv.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:        wire.StreamLogs,
		Description: "Switchyard: recent function log lines",
		Subjects:    []string{wire.LogsPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxAge:      24 * time.Hour,
		MaxBytes:    256 << 20,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// Run reconciles until ctx ends, then drains every instance.
func (a *Agent) Run(ctx context.Context) error {
	// Whatever ends the run (ctx, or the registry watch closing) ends
	// every goroutine of the agent, which shutdown waits for.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := a.reg.Watch(ctx)
	if err != nil {
		return fmt.Errorf("agent: watch registry: %w", err)
	}
	defer w.Stop()
	sub, err := a.nc.QueueSubscribe(wire.ActivatePrefix+"*", ActivateQueue, func(m *nats.Msg) {
		if m.Reply == "" || wire.InboxReply(m.Reply) {
			go a.activate(ctx, m)
		}
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe %s: %w", wire.ActivatePrefix+"*", err)
	}
	defer sub.Unsubscribe()
	stopServe, err := a.prov.Serve(ctx, a.nc)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer stopServe()
	a.wg.Add(5)
	go func() {
		defer a.wg.Done()
		a.activator.run(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.prov.Sweep(ctx, a.nc, a.cfg.UnservedSweep)
	}()
	go func() {
		defer a.wg.Done()
		a.scaleLoop(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.cluster.run(ctx, a.wakeAll)
	}()
	go func() {
		defer a.wg.Done()
		a.watchScales(ctx)
	}()
	a.log.Info("agent running", "dir", a.cfg.Dir)
	known := map[string]bool{}
	err = jskv.Follow(ctx, w, func() {
		// Schedules of functions removed while no agent ran.
		snapshot := maps.Clone(known)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.prov.RemoveOrphans(ctx, snapshot); err != nil {
				a.log.Warn("could not remove the schedules of removed functions", "err", err)
			}
		}()
	}, func(e jetstream.KeyValueEntry) {
		if e.Operation() == jetstream.KeyValuePut {
			known[e.Key()] = true
		}
		var spec *registry.Spec
		if e.Operation() == jetstream.KeyValuePut {
			var err error
			if spec, err = registry.Decode(e.Value()); err != nil {
				a.log.Error("unreadable spec", "fn", e.Key(), "err", err)
				return
			}
		}
		a.want(ctx, e.Key(), spec)
	})
	cancel()
	a.shutdown()
	if errors.Is(err, jskv.ErrWatchClosed) {
		return fmt.Errorf("agent: registry %w", err)
	}
	return nil
}

// want records the desired spec of a function (nil: removed) and wakes its
// reconciler.
func (a *Agent) want(ctx context.Context, name string, spec *registry.Spec) {
	a.mu.Lock()
	f, ok := a.fns[name]
	if !ok {
		f = &function{a: a, name: name, kick: make(chan struct{}, 1), lastActive: time.Now()}
		a.fns[name] = f
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			f.loop(ctx)
		}()
	}
	f.mu.Lock()
	f.spec = spec
	f.mu.Unlock()
	a.mu.Unlock()
	a.activator.track(name, spec != nil && spec.Version > 0)
	select {
	case f.kick <- struct{}{}:
	default: // a reconcile is already pending; it will see the new spec
	}
}

func (a *Agent) shutdown() {
	a.cluster.leave() // the other agents take over our share now
	a.mu.Lock()
	var all []*instance
	for _, f := range a.fns {
		f.mu.Lock()
		all = append(all, f.instances...)
		f.mu.Unlock()
	}
	a.mu.Unlock()
	stopAll(all)
	a.wg.Wait()
	a.log.Info("agent stopped")
}

// Instances reports what the agent runs, for status output and tests.
func (a *Agent) Instances() map[string][]InstanceInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]InstanceInfo{}
	for name, f := range a.fns {
		f.mu.Lock()
		for _, in := range f.instances {
			state := "starting"
			switch {
			case in.draining.Load():
				state = "draining"
			case in.isReady():
				state = "ready"
			}
			out[name] = append(out[name], InstanceInfo{ID: in.id, Version: in.version, State: state, Restarts: int(in.restarts.Load())})
		}
		f.mu.Unlock()
	}
	return out
}

// InstanceInfo describes one instance.
type InstanceInfo struct {
	ID       string `json:"id"`
	Version  int    `json:"version"`
	State    string `json:"state"` // starting, ready, draining
	Restarts int    `json:"restarts"`
}

// artifactPath fetches (once) and returns the binary of a spec.
func (a *Agent) artifactPath(ctx context.Context, spec *registry.Spec) (string, error) {
	if spec.Artifact == nil {
		return "", fmt.Errorf("%s v%d has no artifact", spec.Name, spec.Version)
	}
	digest := strings.TrimPrefix(spec.Artifact.Digest, "sha256:")
	if wire.ValidateToken(digest) != nil {
		return "", fmt.Errorf("%s v%d: bad artifact digest %q", spec.Name, spec.Version, spec.Artifact.Digest)
	}
	path := filepath.Join(a.cfg.Dir, "artifacts", digest)
	if err := a.reg.FetchArtifact(ctx, spec.Artifact, path); err != nil {
		return "", err
	}
	return path, nil
}

func (a *Agent) env(spec *registry.Spec, id, dir string) []string {
	env := append(baseEnv(dir, os.LookupEnv),
		wire.EnvNATSURL+"="+a.cfg.NATSURL,
		wire.EnvVersion+"="+strconv.Itoa(spec.Version),
		wire.EnvInstance+"="+id,
		wire.EnvReadyFile+"="+filepath.Join(dir, "ready"),
		wire.EnvTimeout+"="+spec.Timeout.D().String(),
	)
	if a.cfg.CA != "" {
		env = append(env, wire.EnvNATSCA+"="+a.cfg.CA)
	}
	if spec.Concurrency > 0 {
		env = append(env, wire.EnvConcurrency+"="+strconv.Itoa(spec.Concurrency))
	}
	if spec.MaxAttempts > 0 {
		env = append(env, wire.EnvMaxAttempts+"="+strconv.Itoa(spec.MaxAttempts))
	}
	if len(spec.Backoff) > 0 {
		parts := make([]string, len(spec.Backoff))
		for i, d := range spec.Backoff {
			parts[i] = d.D().String()
		}
		env = append(env, wire.EnvBackoff+"="+strings.Join(parts, ","))
	}
	env = append(env, otelEnv(os.Environ(), spec.Name)...)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return append(env, a.cfg.Env...)
}

// function is the agent's view of one function: what is wanted and what runs.
type function struct {
	a    *Agent
	name string
	kick chan struct{}

	mu         sync.Mutex
	spec       *registry.Spec
	instances  []*instance
	lastActive time.Time
	// coldStart is set while an activation that moved the function off
	// zero waits for its first instance: concurrent activations of the
	// same start are not counted again.
	coldStart bool
	// The metrics of the instances' reports (see counters).
	lastStats map[string]instanceReport
	totals    metrics.FunctionStats
	statsPass int
	lastCount int64
	// provisioned is the spec last provisioned (see provision).
	provisioned       *registry.Spec
	provisionedSet    bool
	provisionFailures int
	failedSpec        *registry.Spec // the spec whose provisioning failed last
	retryAt           time.Time      // when it is tried again
}

// poke asks for a reconcile.
func (f *function) poke() {
	select {
	case f.kick <- struct{}{}:
	default: // one is pending already
	}
}

func (f *function) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
			if err := f.reconcile(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, errProvisionPending) {
				f.a.log.Error("reconcile", "fn", f.name, "err", err)
			}
		}
	}
}

// wanted is how many instances of spec run (call with f.mu held): what the scaler asks for,
// kept within min..max; without a scaler's word, min (0 scales to zero: the
// first request or queued invocation activates it).
func (f *function) wanted(spec *registry.Spec) int {
	n := f.a.scaleOf(f.name)
	if n < 0 {
		n = spec.MinInstances
	}
	return min(max(n, spec.MinInstances), maxInstances(spec))
}

func maxInstances(spec *registry.Spec) int {
	if spec.MaxInstances > 0 {
		return spec.MaxInstances
	}
	return max(spec.MinInstances, 1)
}

// reconcile brings the running instances to the wanted spec: start the new
// version, wait until it serves, then drain the rest.
func (f *function) reconcile(ctx context.Context) error {
	f.mu.Lock()
	spec := f.spec
	f.mu.Unlock()
	if err := f.provision(ctx, spec); err != nil {
		return err
	}
	if spec == nil || spec.Version == 0 {
		// Removed, or not deployed (an instance registered itself): not ours.
		f.retire(func(*instance) bool { return true })
		return nil
	}
	f.mu.Lock()
	atZero := f.a.cluster.share(f.name, f.wanted(spec)) == 0 && len(f.instances) == 0
	f.mu.Unlock()
	if atZero {
		return nil // scaled to zero; the artifact is fetched on activation
	}
	bin, err := f.a.artifactPath(ctx, spec)
	if err != nil {
		return err
	}
	f.mu.Lock()
	// This agent's share of the instances all agents run together.
	want := f.a.cluster.share(f.name, f.wanted(spec))
	var current []*instance
	for _, in := range f.instances {
		// An instance whose credential is due for renewal is replaced as
		// an old version is: its successor first.
		if in.version == spec.Version && in.digest == spec.Artifact.Digest && !in.draining.Load() && !in.renewDue() {
			current = append(current, in)
		}
	}
	for n := len(current); n < want; n++ {
		in := f.a.startInstance(ctx, spec, bin, f.poke)
		f.instances = append(f.instances, in)
		current = append(current, in)
	}
	f.mu.Unlock()

	// Only once every wanted instance of the new version serves do the
	// others go: that is what makes a rollout lose no request.
	deadline := time.Now().Add(f.a.cfg.ReadyTimeout)
	for _, in := range current {
		for !in.isReady() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s v%d: instance %s not serving after %s; keeping the previous version", f.name, spec.Version, in.id, f.a.cfg.ReadyTimeout)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	keep := map[*instance]bool{}
	for i, in := range current {
		if i < want {
			keep[in] = true
		}
	}
	f.retire(func(in *instance) bool { return !keep[in] })
	return nil
}

// retire drains the instances that match, and forgets them once their
// processes are gone; until then they are listed as draining.
func (f *function) retire(match func(*instance) bool) {
	f.mu.Lock()
	var gone []*instance
	for _, in := range f.instances {
		if !in.draining.Load() && match(in) {
			in.draining.Store(true)
			gone = append(gone, in)
		}
	}
	f.mu.Unlock()
	stopAll(gone)
	f.mu.Lock()
	kept := f.instances[:0]
	for _, in := range f.instances {
		if !slices.Contains(gone, in) {
			kept = append(kept, in)
		}
	}
	f.instances = kept
	f.mu.Unlock()
}

func stopAll(ins []*instance) {
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() { defer wg.Done(); in.stop() }()
	}
	wg.Wait()
}

// logWriter publishes each line an instance writes to
// yard.logs.<name>.<instance>, and echoes it to the agent's output.
type logWriter struct {
	nc      *nats.Conn
	subject string
	prefix  string
	out     io.Writer
	mu      sync.Mutex
	buf     []byte
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > 64<<10 { // a runaway line: flush what we have
				i = len(l.buf) - 1
			} else {
				return len(p), nil
			}
		}
		line := l.buf[:i+1]
		_ = l.nc.Publish(l.subject, line)
		if l.out != nil {
			// The prefix and the line in one write: instances share out.
			_, _ = l.out.Write(append([]byte(l.prefix), line...))
		}
		l.buf = l.buf[i+1:]
	}
}

// flush ends a line the process left unfinished (it died mid-line), so it
// is not glued to the first line of the next run.
func (l *logWriter) flush() {
	l.mu.Lock()
	pending := len(l.buf) > 0
	l.mu.Unlock()
	if pending {
		_, _ = l.Write([]byte("\n"))
	}
}

func newInstanceID(name string, version int) string {
	id := nuid.Next()
	return name + "-v" + strconv.Itoa(version) + "-" + strings.ToLower(id[len(id)-8:])
}

func (a *Agent) scaleOf(name string) int {
	a.scalesMu.Lock()
	defer a.scalesMu.Unlock()
	if n, ok := a.scales[name]; ok {
		return n
	}
	return -1
}

// watchScales mirrors yard_scale and wakes a function whose wanted count
// changes.
func (a *Agent) watchScales(ctx context.Context) {
	w, err := a.cluster.scale.WatchAll(ctx)
	if err != nil {
		a.log.Error("watch scales", "err", err)
		return
	}
	_ = jskv.Follow(ctx, w, nil, func(e jetstream.KeyValueEntry) {
		n := -1
		if e.Operation() == jetstream.KeyValuePut {
			if v, err := strconv.Atoi(string(e.Value())); err == nil {
				n = v
			}
		}
		a.scalesMu.Lock()
		a.scales[e.Key()] = n
		a.scalesMu.Unlock()
		a.mu.Lock()
		f := a.fns[e.Key()]
		a.mu.Unlock()
		if f != nil {
			f.wake()
		}
	})
}

// wakeAll reconciles every function, when the set of agents changed.
func (a *Agent) wakeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.fns {
		f.wake()
	}
}
