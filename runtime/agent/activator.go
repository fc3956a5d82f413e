package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// The activator answers plain NATS requests to a function with no
// instance (docs/architecture.md, "The activator"). Each agent runs a
// small NATS server of its own, connected to the platform's as a leaf
// node, on which it is a member of every deployed function's queue group.
// The server sends a leaf node a queue group's message only when no member
// is connected as a client, so the activator receives exactly the requests
// no instance can take, and never sits in the hot path. It keeps them in
// YARD_HELD (so an agent that dies holding them loses none: another takes
// them once their acknowledgement is overdue), and every agent takes held
// requests from one shared consumer, wakes the function and forwards each
// with its caller's reply subject and headers.

// Headers of a held request (YARD_HELD only; agents write and read them).
const (
	heldPrefix  = "Yard-Held-"
	heldSubject = "Yard-Held-Subject"
	heldReply   = "Yard-Held-Reply"
	// heldUntil is the request's deadline (RFC 3339); heldCaller says it
	// is the caller's own Yard-Deadline rather than the platform's bound.
	heldUntil  = "Yard-Held-Until"
	heldCaller = "Yard-Held-Caller"
	// heldNats prefixes the caller's Nats-* headers while held.
	heldNats = "Yard-Held-Orig-"
	// heldBound goes with a forwarded request whose Yard-Deadline the
	// activator added (the function's timeout, not the caller's).
	heldBound = "Yard-Held-Bound"
)

const (
	// DefaultHeldPerFunction bounds the requests held for one function.
	DefaultHeldPerFunction = 1024
	// heldAckWait is how long a held request stays with an agent that
	// stopped confirming it is working on it: how soon another agent takes
	// over the requests of one that died.
	heldAckWait = 2 * time.Second
	// heldSweep is how often held requests are checked for a passed
	// deadline.
	heldSweep = 50 * time.Millisecond
)

// heldStream is YARD_HELD: a work queue in memory, limit requests per
// function (more are refused, not dropped), none older than maxAge.
func heldStream(limit int, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 wire.StreamHeld,
		Description:          "Switchyard: requests to functions with no instance, held until one serves",
		Subjects:             []string{wire.HeldPrefix + "*"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.MemoryStorage,
		MaxMsgsPerSubject:    int64(limit),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxAge:               maxAge,
		MaxBytes:             256 << 20,
	}
}

func ensureHeldStream(ctx context.Context, js jetstream.JetStream, limit int, maxAge time.Duration) error {
	if _, err := jskv.EnsureStream(ctx, js, heldStream(limit, maxAge)); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

type activator struct {
	a *Agent
	// js holds requests: its acknowledgements are awaited for 5s at most.
	js  jetstream.JetStream
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
	}

	mu       sync.Mutex
	deployed map[string]bool // functions to stand by for
	edge     *leafEdge       // nil: no leaf URL, or not started yet
	held     map[string]*heldQueue
	wakers   sync.WaitGroup
	stopped  bool
}

// heldQueue is what this agent took of one function's held requests.
type heldQueue struct {
	msgs   []*heldMsg
	waking bool
}

type heldMsg struct {
	m        jetstream.Msg
	seq      uint64 // in YARD_HELD
	name     string
	until    time.Time
	byCaller bool
	touched  time.Time // last confirmation to JetStream
}

// leafEdge is the leaf node server and the connection on it that holds
// the functions' subjects.
type leafEdge struct {
	ns   *natsserver.Server
	nc   *nats.Conn
	subs map[string]*nats.Subscription
}

func newActivator(a *Agent) (*activator, error) {
	js, err := jetstream.New(a.nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	return &activator{a: a, js: js, log: a.log, deployed: map[string]bool{}, held: map[string]*heldQueue{}}, nil
}

// run takes held requests until ctx ends, and stands by on the leaf node
// when the agent has a leaf URL, renewing its credential before it expires.
func (x *activator) run(ctx context.Context) {
	var cc jetstream.ConsumeContext
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		var err error
		if cc, err = x.consume(ctx); err == nil {
			break
		}
		if wait == time.Second {
			x.log.Warn("activator: cannot take held requests yet (is YARD_HELD there? yard server makes it); retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if len(x.a.cfg.LeafURLs) == 0 {
		x.log.Info("activator: no leaf URL; plain NATS requests to a function with no instance get no responders")
	} else {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			x.keepEdge(ctx)
		}()
	}
	defer x.handOver(cc)
	// The sweep also keeps the requests held here from going to another
	// agent: nothing else may delay it.
	sweep := time.NewTicker(heldSweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			x.sweep()
		}
	}
}

// consume starts taking held requests from the agents' shared consumer.
func (x *activator) consume(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := x.a.js.CreateOrUpdateConsumer(ctx, wire.StreamHeld, jetstream.ConsumerConfig{
		Durable:       wire.HeldConsumer,
		Description:   "Switchyard: the agents' activators",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       heldAckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1 << 16,
	})
	if err != nil {
		return nil, err
	}
	return cons.Consume(func(m jetstream.Msg) { x.take(ctx, m) }, jetstream.PullMaxBytes(16<<20)) // well under a client connection's 64 MiB pending limit
}

// keepEdge stands by on a leaf node until ctx ends, renewing it (and its
// credential) before the credential expires.
func (x *activator) keepEdge(ctx context.Context) {
	renew := time.NewTimer(0)
	defer renew.Stop()
	for failures := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			exp, err := x.startEdge(ctx)
			switch at := renewAt(time.Now(), exp); {
			case err != nil:
				if failures%60 == 0 { // at once, then every 5 minutes
					x.log.Warn("activator: cannot connect to the NATS server as a leaf node; plain NATS requests to functions with no instance get no responders until it does (retrying every 5s)", "err", err)
				}
				failures++
				renew.Reset(5 * time.Second)
			case !at.IsZero():
				failures = 0
				renew.Reset(time.Until(at))
			default:
				failures = 0
			}
		}
	}
}

// startEdge starts a leaf node with a fresh credential, stands by on it
// for every deployed function, then retires the previous one: the two
// overlap, so no request meets an empty queue group.
func (x *activator) startEdge(ctx context.Context) (time.Time, error) {
	creds, expires, err := x.credential(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var urls []*url.URL
	for _, s := range x.a.cfg.LeafURLs {
		u, err := url.Parse(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("leaf URL %q: %w", s, err)
		}
		urls = append(urls, u)
	}
	remote := &natsserver.RemoteLeafOpts{URLs: urls, SignatureCB: creds}
	if x.a.cfg.CA != "" || strings.HasPrefix(x.a.cfg.LeafURLs[0], "tls://") {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if x.a.cfg.CA != "" {
			pem, err := os.ReadFile(x.a.cfg.CA)
			if err != nil {
				return time.Time{}, err
			}
			tc.RootCAs = x509.NewCertPool()
			tc.RootCAs.AppendCertsFromPEM(pem)
		}
		remote.TLS, remote.TLSConfig = true, tc
	}
	ns, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "yard-activator-" + x.a.cfg.ID + "-" + nuid.Next(), DontListen: true, NoSigs: true, NoSystemAccount: true,
		MaxPayload: wire.MaxPayload, MaxControlLine: 32 << 10,
		LeafNode: natsserver.LeafNodeOpts{Remotes: []*natsserver.RemoteLeafOpts{remote}, ReconnectInterval: time.Second},
	})
	if err != nil {
		return time.Time{}, err
	}
	ns.Start()
	fail := func(err error) (time.Time, error) {
		ns.Shutdown()
		return time.Time{}, err
	}
	if !ns.ReadyForConnections(10 * time.Second) {
		return fail(errors.New("the activator's leaf node did not start"))
	}
	for deadline := time.Now().Add(10 * time.Second); ns.NumLeafNodes() == 0; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail(fmt.Errorf("no leaf node connection to %s (is the server's leaf node port open, and the credential accepted?)",
				strings.Join(x.a.cfg.LeafURLs, ",")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("yard-activator"), nats.MaxReconnects(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				x.log.Warn("activator: requests lost before they were held", "subject", sub.Subject, "err", err)
			}
		}))
	if err != nil {
		return fail(err)
	}
	edge := &leafEdge{ns: ns, nc: nc, subs: map[string]*nats.Subscription{}}
	x.mu.Lock()
	if x.stopped {
		x.mu.Unlock()
		nc.Close()
		return fail(errors.New("stopped"))
	}
	old := x.edge
	x.edge = edge
	for name := range x.deployed {
		x.standBy(edge, name)
	}
	x.mu.Unlock()
	if err := x.confirm(ctx, nc); err != nil {
		x.log.Warn("activator: the server does not yet see the new leaf node's subscriptions", "err", err)
	}
	if old != nil {
		old.close()
	}
	return expires, nil
}

// confirm returns once the server sees the subscriptions nc made so far:
// a probe it subscribes to last comes back through the leaf node, and the
// leaf node sends its subscriptions in order.
func (x *activator) confirm(ctx context.Context, nc *nats.Conn) error {
	probe := wire.FnPrefix + "_probe_" + nuid.Next()
	got := make(chan struct{}, 1)
	sub, err := nc.Subscribe(probe, func(*nats.Msg) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		if err := x.a.nc.Publish(probe, nil); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("no probe came back in 5s")
}

func (e *leafEdge) close() {
	_ = e.nc.Drain() // what it already has goes to YARD_HELD
	for deadline := time.Now().Add(5 * time.Second); !e.nc.IsClosed() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	e.nc.Close()
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
}

// credential asks the trust service for the activator's leaf credential;
// it stays in memory (the remote's signature callback), never on disk
// where the agent's instances run. On a NATS system without a trust
// service (and an agent without credential) the leaf node connects without
// one: nil.
func (x *activator) credential(ctx context.Context) (natsserver.SignatureHandler, time.Time, error) {
	text, expires, err := x.a.askTrust(ctx, roles.TrustActivator, struct {
		Agent string `json:"agent"`
	}{x.a.cfg.ID}, "activator credential")
	if text == "" || err != nil {
		return nil, time.Time{}, err
	}
	token, err := jwt.ParseDecoratedJWT([]byte(text))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("activator credential: %w", err)
	}
	kp, err := jwt.ParseDecoratedNKey([]byte(text))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("activator credential: %w", err)
	}
	return func(nonce []byte) (string, []byte, error) {
		sig, err := kp.Sign(nonce)
		return token, sig, err
	}, expires, nil
}

// track stands by for name while it is deployed (its instances may all
// be gone: at min 0, crashed) and lets go once it is removed.
func (x *activator) track(name string, deployed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if deployed {
		x.deployed[name] = true
	} else {
		delete(x.deployed, name)
	}
	if x.edge == nil {
		return
	}
	if sub := x.edge.subs[name]; sub != nil && !deployed {
		_ = sub.Drain()
		delete(x.edge.subs, name)
	}
	if deployed {
		x.standBy(x.edge, name)
	}
}

// standBy joins name's queue group on the leaf node. Called with x.mu.
func (x *activator) standBy(e *leafEdge, name string) {
	if e.subs[name] != nil {
		return
	}
	sub, err := e.nc.QueueSubscribe(wire.FnPrefix+name, wire.QueueGroup(name), x.hold)
	if err != nil {
		x.log.Warn("activator: cannot stand by", "fn", name, "err", err)
		return
	}
	// A burst at zero is bounded by YARD_HELD, which answers what is too
	// much; here nothing may be dropped silently.
	_ = sub.SetPendingLimits(1<<16, 1<<30)
	e.subs[name] = sub
}

// Holding reports whether the activator stands by for the function: a
// plain NATS request to it is held when no instance serves.
func (a *Agent) Holding(name string) bool {
	x := a.activator
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.edge != nil && x.edge.subs[name] != nil && x.edge.ns.NumLeafNodes() > 0
}

// hold keeps a request that no instance could take in YARD_HELD, or
// answers with why it cannot.
func (x *activator) hold(m *nats.Msg) {
	if !wire.InboxReply(m.Reply) {
		return // as instances do: nobody could read an answer
	}
	name := strings.TrimPrefix(m.Subject, wire.FnPrefix)
	now := time.Now()
	bound := x.a.cfg.ReadyTimeout
	x.a.mu.Lock()
	f := x.a.fns[name]
	x.a.mu.Unlock()
	if f != nil {
		f.mu.Lock()
		if f.spec != nil && f.spec.Timeout > 0 {
			bound = min(bound, f.spec.Timeout.D())
		}
		f.mu.Unlock()
	}
	until, byCaller := now.Add(bound), false
	if d := m.Header.Get(wire.HeaderDeadline); d != "" {
		if t, err := time.Parse(time.RFC3339Nano, d); err == nil && t.Before(until) {
			// A deadline an activator added when it forwarded the request
			// (which no instance took after all) is still the platform's.
			until, byCaller = t, m.Header.Get(heldBound) != "1"
		}
	}
	reqID := m.Header.Get(wire.HeaderRequestID)
	if !until.After(now) {
		x.refuse(name, "expired", m.Reply, reqID, notStarted(name, byCaller))
		return
	}
	h := heldHeaders(m.Header)
	h.Set(heldSubject, m.Subject)
	h.Set(heldReply, m.Reply)
	h.Set(heldUntil, until.Format(time.RFC3339Nano))
	if byCaller {
		h.Set(heldCaller, "1")
	}
	ack, err := x.js.PublishMsgAsync(&nats.Msg{Subject: wire.HeldPrefix + name, Header: h, Data: m.Data})
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		x.refuse(name, "failed", m.Reply, reqID, wire.Errorf(wire.CodePayloadTooLarge,
			"the request to %q is too large to hold while no instance serves it; send it with fewer headers or a smaller body", name))
		return
	case err != nil: // not sent
		x.refuse(name, "failed", m.Reply, reqID, wire.Errorf(wire.CodeUnavailable, "could not hold the request for %q: %v", name, err))
		return
	}
	go func() {
		select {
		case <-ack.Ok():
			x.count(name, "held")
		case err := <-ack.Err():
			var apiErr *jetstream.APIError
			switch {
			case errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum"):
				// maximum messages per subject (this function's bound) or
				// maximum bytes (all functions' held requests).
				e := wire.Errorf(wire.CodeResourceExhausted, "too many requests already wait for an instance of %q; try again shortly", name)
				e.Reason = "activation_buffer_full"
				x.refuse(name, "buffer_full", m.Reply, reqID, e)
			case errors.As(err, &apiErr):
				x.refuse(name, "failed", m.Reply, reqID, wire.Errorf(wire.CodeUnavailable, "could not hold the request for %q: %v", name, err))
			default:
				// No answer from JetStream: the request may be held all the
				// same, and then it is forwarded. An error now could reach
				// the caller before the function's answer.
				x.log.Warn("activator: holding a request is unconfirmed", "fn", name, "err", err)
				x.count(name, "failed")
			}
		}
	}()
}

// heldHeaders are a caller's headers as YARD_HELD keeps them: Nats-*
// renamed (JetStream would act on Nats-Msg-Id, Nats-Expected-*, …) and
// Yard-Held-* dropped (they are the activator's own).
func heldHeaders(in nats.Header) nats.Header {
	h := nats.Header{}
	for k, v := range in {
		switch {
		case hasPrefixFold(k, heldPrefix):
		case hasPrefixFold(k, "Nats-"):
			h[heldNats+k] = v
		default:
			h[k] = v
		}
	}
	return h
}

// callerHeaders undoes heldHeaders.
func callerHeaders(in nats.Header) nats.Header {
	h := nats.Header{}
	for k, v := range in {
		switch {
		case strings.HasPrefix(k, heldNats):
			h[k[len(heldNats):]] = v
		case strings.HasPrefix(k, heldPrefix):
		default:
			h[k] = v
		}
	}
	return h
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// notStarted is the answer to a request whose deadline passed while no
// instance of name served: the function did not run, so it is safe to
// send again.
func notStarted(name string, byCaller bool) *wire.Error {
	e := wire.Errorf(wire.CodeUnavailable, "no instance of %q became ready in time", name)
	if byCaller {
		e = wire.Errorf(wire.CodeDeadlineExceeded, "deadline passed before an instance of %q was ready", name)
	}
	e.Reason = "not_started"
	return e
}

func (x *activator) refuse(name, outcome, reply, reqID string, e *wire.Error) {
	body, _ := json.Marshal(e)
	msg := &nats.Msg{Subject: reply, Data: body, Header: e.Headers()}
	if reqID != "" {
		msg.Header.Set(wire.HeaderRequestID, reqID)
	}
	_ = x.a.nc.PublishMsg(msg)
	x.count(name, outcome)
}

func (x *activator) count(name, outcome string) {
	if m := x.a.cfg.Metrics; m != nil {
		m.ActivatorRequests.WithLabelValues(name, outcome).Inc()
	}
}

// take receives a held request from YARD_HELD: it waits with the others
// of its function while one waker brings an instance up.
func (x *activator) take(ctx context.Context, m jetstream.Msg) {
	name := strings.TrimPrefix(m.Subject(), wire.HeldPrefix)
	h := m.Headers()
	until, err := time.Parse(time.RFC3339Nano, h.Get(heldUntil))
	if err != nil || h.Get(heldSubject) != wire.FnPrefix+name || !wire.InboxReply(h.Get(heldReply)) {
		_ = m.Term() // not written by an agent
		return
	}
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	hm := &heldMsg{m: m, seq: seq, name: name, until: until, byCaller: h.Get(heldCaller) == "1", touched: time.Now()}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped {
		_ = m.Nak()
		return
	}
	q := x.held[name]
	if q == nil {
		q = &heldQueue{}
		x.held[name] = q
	}
	for _, o := range q.msgs {
		if o.seq != 0 && o.seq == seq {
			o.m, o.touched = m, hm.touched // delivered again (late confirmation): one copy
			return
		}
	}
	q.msgs = append(q.msgs, hm)
	if !q.waking {
		q.waking = true
		x.wakers.Add(1)
		go x.waker(ctx, name, q)
	}
}

// waker brings up an instance of name and forwards its held requests,
// until none is left.
func (x *activator) waker(ctx context.Context, name string, q *heldQueue) {
	defer x.wakers.Done()
	for {
		x.mu.Lock()
		var until time.Time
		for _, hm := range q.msgs {
			if hm.until.After(until) {
				until = hm.until
			}
		}
		if len(q.msgs) == 0 || x.stopped {
			q.waking = false
			x.mu.Unlock()
			return
		}
		x.mu.Unlock()
		e := x.a.wake(ctx, name, until)
		if ctx.Err() != nil {
			x.mu.Lock()
			q.waking = false
			x.mu.Unlock()
			return // handOver gives them to another agent
		}
		x.mu.Lock()
		batch := q.msgs
		q.msgs = nil
		x.mu.Unlock()
		now := time.Now()
		for _, hm := range batch {
			switch {
			case !hm.until.After(now):
				x.expire(hm)
			case e != nil && e.Code == wire.CodeUnavailable && now.Before(hm.until):
				// Not ready by the latest deadline, or the registry could
				// not be read: try again while this one may still wait.
				x.mu.Lock()
				q.msgs = append(q.msgs, hm)
				x.mu.Unlock()
			case e != nil:
				x.refuse(name, "failed", hm.m.Headers().Get(heldReply), hm.m.Headers().Get(wire.HeaderRequestID), e)
				_ = hm.m.Ack()
			default:
				x.forward(hm)
			}
		}
		if e != nil && e.Code == wire.CodeUnavailable {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// forward sends a held request on to fn.<name> as its caller sent it, with
// the deadline it was held to; the instance answers the caller.
func (x *activator) forward(hm *heldMsg) {
	in := hm.m.Headers()
	h := callerHeaders(in)
	if _, err := time.Parse(time.RFC3339Nano, h.Get(wire.HeaderDeadline)); err != nil { // none, or unreadable
		h.Set(wire.HeaderDeadline, hm.until.UTC().Format(time.RFC3339Nano))
		h.Set(heldBound, "1")
	}
	err := x.a.nc.PublishMsg(&nats.Msg{Subject: in.Get(heldSubject), Reply: in.Get(heldReply), Header: h, Data: hm.m.Data()})
	if err != nil {
		_ = hm.m.Nak() // another try, here or at another agent
		return
	}
	_ = hm.m.Ack()
	x.count(hm.name, "forwarded")
}

func (x *activator) expire(hm *heldMsg) {
	h := hm.m.Headers()
	x.refuse(hm.name, "expired", h.Get(heldReply), h.Get(wire.HeaderRequestID), notStarted(hm.name, hm.byCaller))
	_ = hm.m.Ack()
}

// sweep answers held requests whose deadline passed and tells JetStream
// the others are still being worked on.
func (x *activator) sweep() {
	now := time.Now()
	var expired []*heldMsg
	x.mu.Lock()
	for _, q := range x.held {
		keep := q.msgs[:0]
		for _, hm := range q.msgs {
			switch {
			case !hm.until.After(now):
				expired = append(expired, hm)
				continue
			case now.Sub(hm.touched) > heldAckWait/4:
				_ = hm.m.InProgress()
				hm.touched = now
			}
			keep = append(keep, hm)
		}
		clear(q.msgs[len(keep):])
		q.msgs = keep
	}
	x.mu.Unlock()
	for _, hm := range expired {
		x.expire(hm)
	}
}

// handOver stops taking held requests and gives back those it holds (to
// another agent, at once, before their acknowledgement is overdue), then
// stops standing by: what the leaf node still receives is held for the
// others.
func (x *activator) handOver(cc jetstream.ConsumeContext) {
	x.mu.Lock()
	x.stopped = true
	edge := x.edge
	x.edge = nil
	x.mu.Unlock()
	cc.Stop()
	x.wakers.Wait()
	x.mu.Lock()
	for _, q := range x.held {
		for _, hm := range q.msgs {
			_ = hm.m.Nak()
		}
		q.msgs = nil
	}
	x.mu.Unlock()
	if edge != nil {
		edge.close()
	}
	select {
	case <-x.js.PublishAsyncComplete():
	case <-time.After(5 * time.Second):
	}
}
