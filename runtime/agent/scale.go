package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/metrics"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ActivateQueue is the queue group of agents on yard.activate.*: one agent
// answers each activation.
const ActivateQueue = "yard-agents"

// activate answers "start an instance of <name>" (the gateway, the CLI or
// the SDK asks after meeting no responders): it raises the function to at
// least one instance and replies once one serves, or with an error.
func (a *Agent) activate(ctx context.Context, m *nats.Msg) {
	deadline := time.Now().Add(a.cfg.ReadyTimeout)
	if d := m.Header.Get(wire.HeaderDeadline); d != "" {
		if t, err := time.Parse(time.RFC3339Nano, d); err == nil && t.Before(deadline) {
			deadline = t
		}
	}
	e := a.wake(ctx, strings.TrimPrefix(m.Subject, wire.ActivatePrefix), deadline)
	if m.Reply == "" {
		return
	}
	if e == nil {
		_ = m.Respond([]byte(`{"ok":true}`))
		return
	}
	body, _ := json.Marshal(e)
	_ = m.RespondMsg(&nats.Msg{Data: body, Header: e.Headers()})
}

// wake raises the function to at least one instance and returns once one
// serves (nil), or an error when it is not deployed or none serves by
// deadline.
func (a *Agent) wake(ctx context.Context, name string, deadline time.Time) (result *wire.Error) {
	a.mu.Lock()
	f := a.fns[name]
	a.mu.Unlock()
	// not_found means the registry has no such function: callers stop
	// retrying. A function registered by an undeployed instance (go run)
	// is unavailable instead: its instance may be back any moment.
	undeployed := wire.Errorf(wire.CodeUnavailable, "function %q is not deployed (an undeployed instance registered it); agents cannot start it", name)
	known := false
	if f != nil {
		f.mu.Lock()
		known = f.spec != nil && f.spec.Version > 0
		f.mu.Unlock()
	}
	if !known {
		// Our view may lag the registry (a fresh deploy, a removal just
		// undone): ask it before answering.
		spec, err := a.reg.Get(ctx, name)
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			// Not an answer about the function: callers keep trying.
			return wire.Errorf(wire.CodeUnavailable, "agent could not read the registry: %v", err)
		case spec.Version == 0:
			return undeployed
		default:
			a.want(ctx, name, spec)
			a.mu.Lock()
			f = a.fns[name]
			a.mu.Unlock()
		}
	}
	if f == nil {
		return wire.Errorf(wire.CodeNotFound, "function %q is not deployed", name)
	}
	f.mu.Lock()
	spec := f.spec
	if spec == nil {
		f.mu.Unlock()
		return wire.Errorf(wire.CodeNotFound, "function %q is not deployed", name)
	}
	if spec.Version == 0 {
		f.mu.Unlock()
		return undeployed
	}
	f.lastActive = time.Now()
	f.mu.Unlock()
	cold := false
	if a.scaleOf(name) < 1 {
		if err := a.cluster.wantScale(ctx, name, max(spec.MinInstances, 1)); err != nil {
			return wire.Errorf(wire.CodeUnavailable, "could not scale %q up: %v", name, err)
		}
		cold = true
	}
	if cold {
		f.mu.Lock()
		cold, f.coldStart = !f.coldStart, true
		f.mu.Unlock()
	}
	if m := a.cfg.Metrics; m != nil && cold {
		// This activation moved the function off zero: a cold start,
		// measured to its first ready instance.
		m.ColdStarts.WithLabelValues(name).Inc()
		started := time.Now()
		defer func() {
			f.mu.Lock()
			f.coldStart = false
			f.mu.Unlock()
			if result == nil {
				m.ColdStartDuration.WithLabelValues(name).Observe(time.Since(started).Seconds())
			}
		}()
	}

	// The instance may start on any agent: wait until one answers a ping.
	for time.Now().Before(deadline) && ctx.Err() == nil {
		// An instance starting here is waited for itself: a PING may
		// still be answered by one that is draining (scaled down a moment
		// ago) and takes no more requests. Without one here, the
		// instance may be starting on another agent: a PING tells.
		ready, starting := f.instanceCounts(spec.Version)
		if ready > 0 || starting == 0 && a.anyInstance(name) {
			// The caller's request comes now: the idle period starts here,
			// not when a start that took longer than it began.
			f.mu.Lock()
			f.lastActive = time.Now()
			f.mu.Unlock()
			return nil
		}
		time.Sleep(2 * time.Millisecond) // no responders answers at once
	}
	return wire.Errorf(wire.CodeUnavailable, "no instance of %q became ready in time", name)
}

// anyInstance reports whether some instance of the function, on any agent,
// answers a micro ping within a few milliseconds.
func (a *Agent) anyInstance(name string) bool {
	_, err := a.nc.Request("$SRV.PING."+name, nil, 5*time.Millisecond)
	return err == nil
}

func (f *function) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// instanceCounts counts this agent's instances of version that are not
// draining: ready, and still starting.
func (f *function) instanceCounts(version int) (ready, starting int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.instances {
		switch {
		case in.version != version || in.draining.Load():
		case in.isReady():
			ready++
		default:
			starting++
		}
	}
	return ready, starting
}

// scaleLoop looks at every function's load each ScaleInterval and moves its
// instance count: up by one when its instances are busy or async work
// waits, down by one when it has been idle for its idle timeout, never
// outside min..max.
func (a *Agent) scaleLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.ScaleInterval)
	defer t.Stop()
	js, _ := jetstream.New(a.nc)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		fns := make([]*function, 0, len(a.fns))
		for _, f := range a.fns {
			fns = append(fns, f)
		}
		a.mu.Unlock()
		// The functions' STATS are asked for at once, with one wait, so
		// that a pass fits in its interval with many functions deployed.
		names := make([]string, 0, len(fns))
		for _, f := range fns {
			names = append(names, f.name)
		}
		loads := collectLoads(a.nc, names, statsWait)
		for _, f := range fns {
			f.scaleStep(ctx, js, loads[f.name])
		}
		a.recordInstances()
	}
}

// recordInstances sets yard_instances from what this agent runs now.
func (a *Agent) recordInstances() {
	m := a.cfg.Metrics
	if m == nil {
		return
	}
	m.Instances.Reset()
	for name, list := range a.Instances() {
		for _, in := range list {
			m.Instances.WithLabelValues(name, strconv.Itoa(in.Version)).Inc()
		}
	}
}

// statsWait is how long a scale pass collects micro STATS replies.
const statsWait = 200 * time.Millisecond

func (f *function) scaleStep(ctx context.Context, js jetstream.JetStream, load load) {
	f.mu.Lock()
	spec := f.spec
	f.mu.Unlock()
	if spec == nil || spec.Version == 0 || !f.a.cluster.leads(f.name) {
		// One agent decides for each function, and reports its instances;
		// the others follow yard_scale and report nothing of it.
		if spec == nil {
			f.a.cfg.Metrics.ForgetRemoved(f.name)
		} else {
			f.a.cfg.Metrics.ForgetFunction(f.name)
		}
		return
	}
	backlog := asyncBacklog(ctx, js, f.name)
	if m := f.a.cfg.Metrics; m != nil {
		// The agent that scales a function reports its instances' stats.
		m.AsyncBacklog.WithLabelValues(f.name).Set(float64(backlog))
		st := f.counters(load)
		m.SetFunctionStats(f.name, &st)
	}
	running := load.instances // on every agent
	concurrency := max(spec.Concurrency, 1)
	if spec.Concurrency == 0 {
		concurrency = 64
	}
	idle := spec.IdleTimeout.D()
	if idle <= 0 {
		idle = f.a.cfg.IdleTimeout
	}

	f.mu.Lock()
	now := time.Now()
	if load.count != f.lastCount || load.inFlight > 0 || backlog > 0 {
		f.lastActive = now
		f.lastCount = load.count
	}
	cur := f.wanted(spec)
	next := cur
	switch {
	case running == 0 && backlog > 0:
		next = max(cur, 1) // queued async work wakes a function at zero
	case running > 0 && (backlog > 0 || load.inFlight*4 >= running*concurrency*3):
		next = cur + 1 // busy: three quarters of all slots taken, or a backlog
	case running >= cur && now.Sub(f.lastActive) >= idle && cur > spec.MinInstances:
		// Only once every wanted instance serves: an instance still
		// starting (after an activation) is not idle capacity.
		next = cur - 1
		f.lastActive = now // one step down per idle period
	}
	next = min(max(next, spec.MinInstances), maxInstances(spec))
	f.mu.Unlock()
	if next != cur {
		f.a.log.Info("scaling", "fn", f.name, "from", cur, "to", next, "in_flight", load.inFlight, "backlog", backlog)
		if err := f.a.cluster.wantScale(ctx, f.name, next); err != nil {
			f.a.log.Warn("record scale", "fn", f.name, "err", err)
		}
	}
}

// load sums what a function's instances report in micro STATS.
type load struct {
	count     int64 // requests and async invocations handled, all time
	inFlight  int
	instances int // that answered
	stats     metrics.FunctionStats
	// byInstance are the counters each instance reported, by its micro
	// id: the exported counters add up their increases (see counters).
	byInstance map[string]metrics.FunctionStats
}

// collectLoads asks the instances of each function for their STATS (see
// fleet.StatsEach) and sums each function's replies.
func collectLoads(nc *nats.Conn, names []string, wait time.Duration) map[string]load {
	out := make(map[string]load, len(names))
	for name, stats := range fleet.StatsEach(nc, names, wait) {
		var l load
		for _, st := range stats {
			l.add(st)
		}
		out[name] = l
	}
	return out
}

// add counts one instance's STATS in l.
func (l *load) add(st micro.Stats) {
	l.instances++
	for _, ep := range st.Endpoints {
		l.count += int64(ep.NumRequests)
	}
	// Every endpoint of an instance reports the same instance-wide
	// counters; count them once.
	if len(st.Endpoints) > 0 {
		var d wire.InstanceStats
		if json.Unmarshal(st.Endpoints[0].Data, &d) == nil {
			l.count += d.Completed + d.Failed
			l.inFlight += d.InFlight
			l.stats.InFlight += d.InFlight
			if l.byInstance == nil {
				l.byInstance = map[string]metrics.FunctionStats{}
			}
			l.byInstance[st.ID] = metrics.FunctionStats{Handled: uint64(d.Completed + d.Failed), Errors: uint64(d.Failed),
				HandlerSeconds: d.HandlerSeconds, Retries: d.Retries, DeadLetters: d.DeadLetters, TicksRun: d.TicksRun, TicksSkipped: d.TicksSkipped}
			for target, state := range d.Breakers {
				// One instance's open breaker is the function's.
				if l.stats.Breakers == nil {
					l.stats.Breakers = map[string]string{}
				}
				if cur := l.stats.Breakers[target]; cur == "" || cur == "closed" {
					l.stats.Breakers[target] = state
				}
			}
		}
	}
}

// counters folds a pass's reports into counters that only grow: each
// instance's increase since its last report is added (a new instance's
// whole count; one that restarted reports under a new id), and an
// instance that did not answer this pass is not taken as a drop. In
// flight and breakers are this pass's.
func (f *function) counters(l load) metrics.FunctionStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastStats == nil {
		f.lastStats = map[string]instanceReport{}
	}
	f.statsPass++
	for id, cur := range l.byInstance {
		prev := f.lastStats[id].stats
		if cur.Handled >= prev.Handled {
			f.totals.Handled += cur.Handled - prev.Handled
			f.totals.Errors += cur.Errors - min(prev.Errors, cur.Errors)
			f.totals.HandlerSeconds += max(cur.HandlerSeconds-prev.HandlerSeconds, 0)
			f.totals.Retries += max(cur.Retries-prev.Retries, 0)
			f.totals.DeadLetters += max(cur.DeadLetters-prev.DeadLetters, 0)
			f.totals.TicksRun += max(cur.TicksRun-prev.TicksRun, 0)
			f.totals.TicksSkipped += max(cur.TicksSkipped-prev.TicksSkipped, 0)
		}
		f.lastStats[id] = instanceReport{stats: cur, pass: f.statsPass}
	}
	// Forget instances silent for a minute's worth of passes or more.
	for id, r := range f.lastStats {
		if f.statsPass-r.pass > 30 {
			delete(f.lastStats, id)
		}
	}
	out := f.totals
	out.InFlight, out.Breakers = l.stats.InFlight, l.stats.Breakers
	return out
}

// instanceReport is an instance's last counters and the pass they came in.
type instanceReport struct {
	stats metrics.FunctionStats
	pass  int
}

// asyncBacklog is how many async invocations of a function wait in
// YARD_ASYNC. Before any instance has run, the function has no consumer
// yet, so the stream's own count for the subject is used then.
func asyncBacklog(ctx context.Context, js jetstream.JetStream, name string) uint64 {
	// Consumer fetches the consumer's info already: no second request.
	if c, err := js.Consumer(ctx, wire.StreamAsync, wire.AsyncConsumer(name)); err == nil {
		return c.CachedInfo().NumPending
	}
	subject, err := wire.AsyncSubject(name)
	if err != nil {
		return 0
	}
	s, err := js.Stream(ctx, wire.StreamAsync)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0
	}
	return info.State.Subjects[subject]
}
