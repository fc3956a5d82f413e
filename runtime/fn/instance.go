package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// Config is a function's identity.
type Config struct {
	// Name is the function's name: ^[a-z][a-z0-9-]{0,62}$. It becomes the
	// subject fn.<name> and the micro service name.
	Name        string
	Description string
	// Version is the semantic version shown by `nats micro ls`; default 1.0.0.
	Version string
	// Logger receives the instance's logs; default slog.Default().
	Logger *slog.Logger
	// CoreOnly serves plain request-reply only, without the platform: no
	// registration (so the gateway cannot validate or list the function),
	// no asynchronous invocations, events or schedules.
	CoreOnly bool
	// Events are the function's event handlers (see On), and Streams the
	// event streams it needs (the platform creates them when missing).
	Events  []Subscription
	Streams []Stream
	// Schedules run the function on timers (see Schedule).
	Schedules []Schedule
	// Calls names the functions this one invokes (Invoke, InvokeRaw),
	// Publishes the event subjects it publishes on (Publish; wildcards
	// allowed), and Buckets the key-value buckets it uses (OpenKV). They
	// are its declarations: the platform provisions the buckets and grants
	// the rights, and anything undeclared fails with an error naming the
	// missing declaration.
	Calls     []string
	Publishes []string
	Buckets   []string
	// Access says who may invoke the function, over HTTP and NATS alike:
	// "public" (anyone), "authenticated" (the default: callers granted
	// it) or "internal" (only functions that declare a call to it).
	// yard.json's "access" overrides it at deploy.
	Access string
	// Instance is the platform's name for this instance (Main sets it from
	// YARD_INSTANCE); it is in the micro metadata as yard.instance.
	Instance string
	// DeployedVersion is the version N this instance was deployed as (0:
	// not deployed). A deployed instance also serves fn.<name>.v<N>, shows
	// N.0.0 in `nats micro ls`, and leaves yard_functions to the deploy.
	DeployedVersion int
}

// Log attribute keys shared by every Switchyard component.
const (
	logKeyFn        = "fn"
	logKeyRequestID = "request_id"
	logKeyErr       = "err"
)

// Instance is one running instance of a function.
type Instance struct {
	cfg  Config
	h    *Handler
	nc   *nats.Conn
	svc  micro.Service
	main target
	// validated is main for requests on yard.gw.<name>.
	validated target
	log       *slog.Logger
	spec      *registry.Spec
	decl      *declarations

	slots    chan struct{}
	workers  workers
	inflight sync.WaitGroup
	stopOnce sync.Once
	stopErr  error

	completed, failed, panics atomic.Int64
	retries, deadLetters      atomic.Int64
	handlerNanos              atomic.Int64 // time spent in invokeTarget, all calls
	ticksRun, ticksSkipped    atomic.Int64

	// Async invocations; nil when CoreOnly.
	store   *invocation.Store
	consume jetstream.ConsumeContext
	// Event handlers by subject, and their consumers.
	events         map[string]*target
	eventConsumers []jetstream.ConsumeContext
	ackWait        time.Duration
	// registered says this instance registered its function with the
	// platform (it runs without a deploy), so it unregisters on Stop.
	registered bool
	// ownedBy is the deployed version that owns the function when this
	// instance runs without a deploy beside it.
	ownedBy int
}

// Start serves h on nc until Stop. It returns once the instance is
// subscribed, so a request sent after Start returns reaches it.
func Start(ctx context.Context, nc *nats.Conn, cfg Config, h *Handler) (*Instance, error) {
	if err := validateConfig(cfg, h); err != nil {
		return nil, err
	}
	cfg.Version = serviceVersion(cfg)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in, err := schemas.Compile(h.inSchema)
	if err != nil {
		return nil, fmt.Errorf("fn %s: input schema: %w", cfg.Name, err)
	}
	out, err := schemas.Compile(h.outSchema)
	if err != nil {
		return nil, fmt.Errorf("fn %s: output schema: %w", cfg.Name, err)
	}
	i := &Instance{
		cfg:  cfg,
		h:    h,
		nc:   nc,
		main: target{in: in, out: out, call: h.call},
		// The same, without the input check (the gateway made it).
		validated: target{out: out, call: h.call},
		log:       cfg.Logger.With(logKeyFn, cfg.Name),
		slots:     make(chan struct{}, h.concurrency),
		spec:      specOf(cfg, h),
		decl:      declarationsOf(cfg),
	}
	subject, _ := wire.FnSubject(cfg.Name)
	svc, err := micro.AddService(nc, micro.Config{
		Name:         cfg.Name,
		Version:      cfg.Version,
		Description:  cfg.Description,
		Metadata:     i.metadata(),
		StatsHandler: func(*micro.Endpoint) any { return i.Stats() },
	})
	if err != nil {
		return nil, fmt.Errorf("fn %s: register micro service: %w", cfg.Name, err)
	}
	err = svc.AddEndpoint("invoke", micro.HandlerFunc(i.dispatch),
		micro.WithEndpointSubject(subject),
		micro.WithEndpointQueueGroup(wire.QueueGroup(cfg.Name)),
		micro.WithEndpointMetadata(map[string]string{
			"input_schema":  string(h.inSchema),
			"output_schema": string(h.outSchema),
			"timeout":       h.timeout.String(),
			"concurrency":   strconv.Itoa(h.concurrency),
		}))
	if err == nil {
		// Requests the gateway validated already: only gateways may
		// publish here, so the input is not checked twice.
		gsubject, _ := wire.GatewaySubject(cfg.Name)
		err = svc.AddEndpoint("gateway", micro.HandlerFunc(i.dispatchValidated),
			micro.WithEndpointSubject(gsubject),
			micro.WithEndpointQueueGroup(wire.QueueGroup(cfg.Name)))
	}
	if err == nil && cfg.DeployedVersion > 0 {
		vsubject, _ := wire.FnVersionSubject(cfg.Name, cfg.DeployedVersion)
		err = svc.AddEndpoint("v"+strconv.Itoa(cfg.DeployedVersion), micro.HandlerFunc(i.dispatch),
			micro.WithEndpointSubject(vsubject),
			micro.WithEndpointQueueGroup(vsubject))
	}
	if err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("fn %s: add endpoint: %w", cfg.Name, err)
	}
	i.svc = svc
	// Make sure the server has the subscription before we say we are up.
	if err := flush(ctx, nc); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("fn %s: flush: %w", cfg.Name, err)
	}
	if !cfg.CoreOnly {
		if err := i.startJetStream(ctx); err != nil {
			i.abortJetStream(ctx)
			_ = svc.Stop()
			return nil, fmt.Errorf("fn %s: %w (CoreOnly serves without the platform)", cfg.Name, err)
		}
	}
	i.log.Info("serving", "subject", subject, "concurrency", h.concurrency, "timeout", h.timeout)
	return i, nil
}

// startJetStream attaches the instance to what the platform provisioned
// for its function: the async consumer and its event consumers. Run
// without a deploy, it first asks the platform to register and provision
// the function; it never writes platform state itself.
func (i *Instance) startJetStream(ctx context.Context) error {
	if i.cfg.DeployedVersion == 0 {
		if err := i.register(ctx); err != nil {
			return err
		}
	}
	js, err := jetstream.New(i.nc)
	if err != nil {
		return err
	}
	if err := i.startAsync(ctx, js); err != nil {
		return i.ownerHint(err)
	}
	return i.ownerHint(i.startEvents(ctx, js))
}

// ownerHint says, for an undeployed instance of a deployed function, that
// the platform provisioned the deployed version's declarations, not this
// instance's.
func (i *Instance) ownerHint(err error) error {
	if err != nil && i.ownedBy > 0 {
		return fmt.Errorf("%w (the function is deployed: the platform provisioned v%d's declarations, not this instance's)", err, i.ownedBy)
	}
	return err
}

// abortJetStream undoes a start that failed half way: no consumer keeps
// pulling work for an instance that will not serve, and a registration
// is withdrawn.
func (i *Instance) abortJetStream(ctx context.Context) {
	if i.consume != nil {
		i.consume.Stop()
	}
	for _, cc := range i.eventConsumers {
		cc.Stop()
	}
	i.unregister(ctx, i.svc.Info().ID)
}

// registerWait bounds how long an instance run without a deploy waits for
// the platform (an agent, or `yard up` starting) to answer its
// registration.
const registerWait = 10 * time.Second

// register asks the platform (yard.register.<name>) to record the
// function's spec and provision it, retrying while no platform component
// answers yet.
func (i *Instance) register(ctx context.Context) error {
	subject, _ := wire.RegisterSubject(i.cfg.Name)
	body, err := json.Marshal(i.spec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, registerWait)
	defer cancel()
	for {
		m, err := i.nc.RequestWithContext(ctx, subject, body)
		if err != nil {
			// No platform yet, or NATS is restarting: ask again until
			// the wait is over. Only the platform's answer is final.
			select {
			case <-ctx.Done():
				if errors.Is(err, nats.ErrNoResponders) {
					return fmt.Errorf("no Switchyard platform answered %s: run `yard up` (or `yard agent`) against this NATS server", subject)
				}
				return fmt.Errorf("register on %s: %w", subject, err)
			case <-time.After(200 * time.Millisecond):
				continue
			}
		}
		if werr := wire.ReplyError(m.Header, m.Data); werr != nil {
			return fmt.Errorf("the platform refused the registration: %w", werr)
		}
		var reg struct {
			DeployedVersion int `json:"deployed_version"`
		}
		if err := json.Unmarshal(m.Data, &reg); err != nil {
			return fmt.Errorf("register on %s: unreadable answer: %w", subject, err)
		}
		if reg.DeployedVersion > 0 {
			i.ownedBy = reg.DeployedVersion
			// An undeployed instance (a developer's `go run`) of a deployed
			// function serves without changing the registry.
			i.log.Warn("function is deployed; this undeployed instance serves under the deployed version's settings", "version", reg.DeployedVersion)
			return nil
		}
		i.registered = true
		return nil
	}
}

// unregister tells the platform this undeployed instance stops, so that
// when it was the last one the function's spec and schedules go.
func (i *Instance) unregister(ctx context.Context, self string) {
	if !i.registered || !i.nc.IsConnected() {
		return
	}
	subject, _ := wire.UnregisterSubject(i.cfg.Name)
	body, _ := json.Marshal(map[string]string{"instance": self})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := i.nc.RequestWithContext(ctx, subject, body); err != nil {
		i.log.Warn("could not tell the platform this instance stops", logKeyErr, err)
	}
}

func validateConfig(cfg Config, h *Handler) error {
	var errs []error
	if err := wire.ValidateName(cfg.Name); err != nil {
		errs = append(errs, err)
	}
	if err := h.validate(); err != nil {
		errs = append(errs, err)
	} else if err := validateSchedules(cfg.Schedules, h.inSchema); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validateDeclarations(cfg)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fn: invalid config: %w", err)
	}
	return nil
}

func specOf(cfg Config, h *Handler) *registry.Spec {
	schedules, _ := scheduleSpecs(cfg.Schedules) // checked by validateConfig
	spec := &registry.Spec{
		Schedules:    schedules,
		Name:         cfg.Name,
		Description:  cfg.Description,
		InputSchema:  h.inSchema,
		OutputSchema: h.outSchema,
		SchemaHash:   schemas.Hash(append(append(append([]byte{}, h.inSchema...), '\n'), h.outSchema...)),
		Timeout:      registry.Duration(h.timeout),
		Concurrency:  h.concurrency,
		MaxAttempts:  h.maxAttempts,
		Backoff:      durations(h.backoff),
		Calls:        cfg.Calls,
		Publishes:    cfg.Publishes,
		Buckets:      cfg.Buckets,
		Access:       cfg.Access,
		// Every instance of this SDK serves yard.gw.<name>.
		GatewaySubject: true,
	}
	for _, sub := range cfg.Events {
		spec.Events = append(spec.Events, sub.subject)
		if sub.opts != (registry.EventOptions{}) {
			if spec.EventOptions == nil {
				spec.EventOptions = map[string]registry.EventOptions{}
			}
			spec.EventOptions[sub.subject] = sub.opts
		}
	}
	for _, st := range cfg.Streams {
		rs := registry.Stream{Name: st.Name, Subjects: st.Subjects, MaxAge: registry.Duration(st.MaxAge), Entity: st.Entity}
		for _, t := range st.EventTypes {
			if t.err == nil {
				if rs.EventSchemas == nil {
					rs.EventSchemas = map[string]json.RawMessage{}
				}
				rs.EventSchemas[t.name] = t.schema
			}
		}
		spec.Streams = append(spec.Streams, rs)
	}
	return spec
}

// metadata is what `nats micro info` and `yard describe` show of it.
func (i *Instance) metadata() map[string]string {
	m := map[string]string{"yard.schema_hash": i.spec.SchemaHash}
	if i.cfg.Instance != "" {
		m[wire.MetaInstance] = i.cfg.Instance
	}
	return m
}

// Spec is the spec this instance serves and registers.
func (i *Instance) Spec() registry.Spec { return *i.spec }

// Stats are an instance's counters, also reported in `nats micro stats`
// as the endpoint's data (micro's own counters see only dispatch, because
// handlers run on their own goroutines).
type Stats = wire.InstanceStats

// Stats returns the instance's counters.
func (i *Instance) Stats() Stats {
	return Stats{
		InFlight:       len(i.slots),
		Concurrency:    cap(i.slots),
		Completed:      i.completed.Load(),
		Failed:         i.failed.Load(),
		Panics:         i.panics.Load(),
		HandlerSeconds: time.Duration(i.handlerNanos.Load()).Seconds(),
		Retries:        i.retries.Load(),
		DeadLetters:    i.deadLetters.Load(),
		TicksRun:       i.ticksRun.Load(),
		TicksSkipped:   i.ticksSkipped.Load(),
		Breakers:       breakerStates(),
	}
}

// dispatch runs on the subscription's goroutine, one message at a time. It
// only takes a slot and hands the request to its own goroutine, so that up
// to Concurrency handlers run at once. When every slot is taken it blocks,
// which leaves further requests queued in the subscription.
func (i *Instance) dispatch(req micro.Request) { i.dispatchTo(req, &i.main) }

// dispatchValidated serves yard.gw.<name>: input the gateway checked. Only
// gateways may publish there, but the check is trusted only when the
// request also comes from one (its reply goes to the gateway's inbox) and
// was made against this instance's own schemas; otherwise (a rollout or a
// rollback to other schemas) the input is checked here.
func (i *Instance) dispatchValidated(req micro.Request) {
	t := &i.validated
	if h := i.spec.SchemaHash; h == "" || !strings.HasPrefix(req.Reply(), roles.GatewayInbox+".") ||
		req.Headers().Get(wire.HeaderSchemaHash) != h {
		t = &i.main
	}
	i.dispatchTo(req, t)
}

func (i *Instance) dispatchTo(req micro.Request, t *target) {
	if !wire.InboxReply(req.Reply()) {
		// No caller waits on anything but an inbox: a reply elsewhere
		// would write where the requester chose (a push consumer's
		// delivery, or a reply subject aimed at a bucket).
		return
	}
	i.slots <- struct{}{}
	i.inflight.Add(1)
	// Copy what we need: the handler goroutine must not touch req, whose
	// state micro reads after dispatch returns.
	reply, data, hdr := req.Reply(), req.Data(), req.Headers()
	i.workers.run(func() {
		defer func() {
			<-i.slots
			i.inflight.Done()
		}()
		i.serve(t, reply, data, hdr)
	})
}

func (i *Instance) serve(t *target, reply string, data []byte, hdr micro.Headers) {
	start := time.Now()
	reqID := hdr.Get(wire.HeaderRequestID)
	if err := wire.ValidateRequestID(reqID); err != nil {
		// Refused as the gateway refuses it: it would go into logs and
		// records as it is.
		i.failed.Add(1)
		i.respondError(reply, nuid.Next(), err.(*wire.Error))
		return
	}
	if reqID == "" {
		reqID = nuid.Next()
	}
	deadline := start.Add(i.h.timeout)
	if s := hdr.Get(wire.HeaderDeadline); s != "" {
		// An unparsable deadline is the caller's bug, but not a reason to
		// refuse the call: the function's own timeout still applies.
		if d, err := time.Parse(time.RFC3339Nano, s); err == nil && d.Before(deadline) {
			deadline = d
		}
	}
	meta := callMeta{requestID: reqID, traceparent: hdr.Get(wire.HeaderTraceparent), tracestate: hdr.Get(wire.HeaderTracestate)}
	if otelx.Enabled() {
		meta.span = i.startSpan(nats.Header(hdr), "invoke "+i.cfg.Name, trace.SpanKindServer,
			attribute.String(attrTrigger, "request"), attribute.String(attrRequestID, reqID))
	}
	out, werr, _ := i.invokeTarget(t, deadline, meta, data)
	if meta.span != nil {
		outcome := outcomeOK
		if werr != nil {
			outcome = outcomeError
		}
		endSpan(meta.span, outcome, werr)
	}
	if werr != nil {
		i.failed.Add(1)
		i.respondError(reply, reqID, werr)
		return
	}
	i.completed.Add(1)
	i.respond(reply, reqID, out)
}

// callMeta is what travels with an invocation into its handler's context,
// and from there into the calls the handler makes.
type callMeta struct {
	requestID, traceparent, tracestate string
	// span is the invocation's span when tracing is on (see trace.go):
	// the handler's context carries it, so its calls are its children.
	span trace.Span
	// event is the event an event handler runs for.
	event *EventInfo
}

// target is what an invocation runs: the function's handler, or one of
// its event handlers (which answers nothing: out is nil).
type target struct {
	in, out *schemas.Schema
	call    func(ctx context.Context, input []byte) (any, error)
}

// invoke turns raw input into raw output, or into the error to send and
// whether retrying could ever help (for async invocations).
func (i *Instance) invoke(deadline time.Time, meta callMeta, data []byte) (out []byte, werr *wire.Error, permanent bool) {
	return i.invokeTarget(&i.main, deadline, meta, data)
}

// invokeTarget is invoke for any target. An error is permanent when the
// handler marked it so (Permanent) or when its code says so.
func (i *Instance) invokeTarget(t *target, deadline time.Time, meta callMeta, data []byte) (out []byte, werr *wire.Error, permanent bool) {
	start := time.Now()
	out, werr, marked := i.invokeOnce(t, deadline, meta, data)
	i.handlerNanos.Add(int64(time.Since(start)))
	return out, werr, werr != nil && (marked || permanentCode(werr.Code))
}

// invokeOnce runs t once; marked says the handler returned Permanent(err).
func (i *Instance) invokeOnce(t *target, deadline time.Time, meta callMeta, data []byte) (out []byte, werr *wire.Error, marked bool) {
	if !time.Now().Before(deadline) {
		return nil, wire.Errorf(wire.CodeDeadlineExceeded, "deadline passed before the function started"), false
	}
	if t.in != nil {
		doc, err := schemas.Decode(data, schemas.DecodeLimits{})
		if err != nil {
			return nil, schemas.InvalidJSON("request body is not valid JSON", err), false
		}
		if v := t.in.Validate(doc); len(v) > 0 {
			return nil, schemas.InvalidInput("input does not match the schema", v), false
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctx = context.WithValue(ctx, keyRequestID, meta.requestID)
	ctx = context.WithValue(ctx, keyLogger, i.log)
	ctx = context.WithValue(ctx, keyConn, i.nc)
	ctx = context.WithValue(ctx, keyDecl, i.decl)
	if meta.event != nil {
		ctx = context.WithValue(ctx, keyEvent, meta.event)
	}
	if meta.span != nil {
		ctx = trace.ContextWithSpan(ctx, meta.span)
	} else if meta.traceparent != "" {
		ctx = context.WithValue(ctx, keyTrace, [2]string{meta.traceparent, meta.tracestate})
	}

	result, err := i.call(ctx, t, data)
	if err != nil {
		var pe *permanentError
		if errors.As(err, &pe) {
			marked, err = true, pe.err
		}
		return nil, i.publicError(ctx, err), marked
	}
	if t.out == nil {
		return []byte("null"), nil, false
	}
	out, err = json.Marshal(result)
	if err != nil {
		Logger(ctx).Error("handler output does not encode as JSON", logKeyErr, err)
		return nil, internalError(), false
	}
	doc, err := schemas.Decode(out, schemas.DecodeLimits{MaxDepth: 1 << 10})
	if err != nil {
		Logger(ctx).Error("handler output does not decode", logKeyErr, err)
		return nil, internalError(), false
	}
	if v := t.out.Validate(doc); len(v) > 0 {
		Logger(ctx).Error("handler output does not match its schema", logKeyErr, schemas.InvalidInput("output", v))
		return nil, internalError(), false
	}
	return out, nil, false
}

// call runs the handler, turning a panic into an error so the instance
// keeps serving.
func (i *Instance) call(ctx context.Context, t *target, data []byte) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			i.panics.Add(1)
			Logger(ctx).Error("handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	return t.call(ctx, data)
}

var errPanic = errors.New("handler panicked")

// publicError decides what the caller may see of a handler's error.
func (i *Instance) publicError(ctx context.Context, err error) *wire.Error {
	var we *wire.Error
	switch {
	case errors.As(err, &we) && we.Code.Known():
		return we
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return wire.Errorf(wire.CodeDeadlineExceeded, "function did not finish within its deadline")
	case errors.Is(err, errPanic):
		return internalError()
	default:
		Logger(ctx).Error("handler failed", logKeyErr, err)
		return internalError()
	}
}

func internalError() *wire.Error { return wire.Errorf(wire.CodeInternal, "internal error") }

// replyAllowed refuses reply subjects that are not a requester's inbox:
// with NATS permissions in use, a client allowed only to call functions
// must not be able to make an instance (which may write JetStream)
// publish into the platform's own subjects.
func replyAllowed(reply string) bool {
	return !strings.HasPrefix(reply, "$") && !strings.HasPrefix(reply, "yard.") && !strings.HasPrefix(reply, wire.FnPrefix)
}

func (i *Instance) respond(reply, reqID string, data []byte) {
	if reply == "" {
		return // a plain publish: nobody waits for the answer
	}
	if !replyAllowed(reply) {
		i.log.Warn("refusing to reply to a platform subject", "reply", reply, logKeyRequestID, reqID)
		return
	}
	msg := &nats.Msg{Subject: reply, Data: data, Header: nats.Header{wire.HeaderRequestID: {reqID}}}
	if err := i.nc.PublishMsg(msg); err != nil {
		i.log.Warn("reply failed", logKeyRequestID, reqID, logKeyErr, err)
		if errors.Is(err, nats.ErrMaxPayload) {
			// Tell the caller now rather than let it time out.
			i.respondError(reply, reqID, wire.Errorf(wire.CodeInternal, "the output is larger than the NATS server's max payload"))
		}
	}
}

func (i *Instance) respondError(reply, reqID string, e *wire.Error) {
	if reply == "" || !replyAllowed(reply) {
		return
	}
	body, _ := json.Marshal(e)
	msg := &nats.Msg{Subject: reply, Data: body, Header: e.Headers()}
	msg.Header.Set(wire.HeaderRequestID, reqID)
	if err := i.nc.PublishMsg(msg); err != nil {
		i.log.Warn("error reply failed", logKeyRequestID, reqID, logKeyErr, err)
	}
}

// Stop drains the instance: it stops taking requests, lets requests that
// already reached it finish, and returns when all have been answered or ctx
// ends, whichever is first. Stop is safe to call more than once.
func (i *Instance) Stop(ctx context.Context) error {
	i.stopOnce.Do(func() { i.stopErr = i.drain(ctx) })
	return i.stopErr
}

func (i *Instance) drain(ctx context.Context) error {
	// Stop taking work on both fronts at once, whatever happens next: a
	// Stop that runs out of time must still leave nothing serving.
	consumers := i.eventConsumers
	if i.consume != nil {
		consumers = append(consumers, i.consume)
	}
	for _, cc := range consumers {
		// Stop pulling; messages already pulled are still handed to us.
		// Disconnected, a drain cannot finish (and nothing can arrive).
		if i.nc.IsConnected() {
			cc.Drain()
		} else {
			cc.Stop()
		}
	}
	self := i.svc.Info().ID
	if err := i.svc.Stop(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		i.log.Warn("stop micro service", logKeyErr, err)
	}
	i.unregister(ctx, self)
	for _, cc := range consumers {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
			for _, c := range consumers {
				c.Stop()
			}
			return fmt.Errorf("fn %s: drain async: %w", i.cfg.Name, ctx.Err())
		}
	}
	if !i.nc.IsClosed() {
		// While disconnected nothing new can arrive, so the flush is only
		// needed (and only possible) when connected.
		//
		// After the flush the server has our unsubscribe, so every request
		// still to come is already in the client's buffers. The barrier runs
		// once the subscription has dispatched all of them, and only then is
		// the in-flight count final.
		if i.nc.IsConnected() {
			_ = flush(ctx, i.nc)
		}
		barrier := make(chan struct{})
		if err := i.nc.Barrier(func() { close(barrier) }); err != nil {
			close(barrier)
		}
		select {
		case <-barrier:
		case <-ctx.Done():
			return fmt.Errorf("fn %s: drain: %w", i.cfg.Name, ctx.Err())
		}
	}
	done := make(chan struct{})
	go func() { i.inflight.Wait(); close(done) }()
	select {
	case <-done:
		i.workers.stop()
		i.log.Info("drained")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fn %s: drain: %d requests still running: %w", i.cfg.Name, len(i.slots), ctx.Err())
	}
}

// Serve runs h on nc until ctx ends, then drains for at most drainTimeout
// (default 30s). It is Start and Stop for callers that need no handle.
func Serve(ctx context.Context, nc *nats.Conn, cfg Config, h *Handler) error {
	// ctx says how long to serve, not how long starting may take: an
	// instance already answering when ctx ends mid-start still drains
	// properly instead of failing its start.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultDrainTimeout)
	inst, err := Start(sctx, nc, cfg, h)
	cancel()
	if err != nil {
		return err
	}
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
	defer cancel()
	return inst.Stop(dctx)
}

// DefaultDrainTimeout bounds how long Serve and Main wait for in-flight
// requests when asked to stop.
const DefaultDrainTimeout = 30 * time.Second

// flush waits for the server to process everything sent so far, bounded by
// ctx or, when ctx has no deadline, by ten seconds.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

func durations(ds []time.Duration) []registry.Duration {
	out := make([]registry.Duration, len(ds))
	for i, d := range ds {
		out[i] = registry.Duration(d)
	}
	return out
}
