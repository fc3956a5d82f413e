package trust

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Defaults of the trust service.
const (
	// DefaultInstanceTTL is how long a function instance's credential
	// lives; agents replace instances before it ends.
	DefaultInstanceTTL = time.Hour
	// MaxCallerTTL bounds a caller credential's lifetime.
	MaxCallerTTL = 366 * 24 * time.Hour
	// DefaultCallerTTL is a caller credential's lifetime when none is asked.
	DefaultCallerTTL = 30 * 24 * time.Hour
)

// Record is what yard_creds keeps of a minted credential, under the
// user's public key. Never the credential itself.
type Record struct {
	User      string    `json:"user"`
	Name      string    `json:"name"`
	Role      string    `json:"role"` // caller, admin, gateway, agent
	Functions []string  `json:"functions,omitempty"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"`
	Revoked   time.Time `json:"revoked,omitzero"`
}

// CredsRequest asks the service (yard.trust.creds, admins only) for a
// caller credential.
type CredsRequest struct {
	Name      string   `json:"name"`
	Functions []string `json:"functions"`
	TTL       string   `json:"ttl,omitempty"` // Go duration; default DefaultCallerTTL
}

// CredsReply is the answer: the .creds text and what it allows.
type CredsReply struct {
	Creds       string `json:"creds,omitempty"`
	InboxPrefix string `json:"inbox_prefix,omitempty"`
	Record
	Error string `json:"error,omitempty"`
}

// InstanceRequest asks for a function instance's credential
// (yard.trust.instance.<name>, agents only).
type InstanceRequest struct {
	Instance string `json:"instance"`
}

// InstanceReply carries the credential of one instance.
type InstanceReply struct {
	Creds   string    `json:"creds,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// OpenCreds opens (creating when missing) the bucket of credential records.
func OpenCreds(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return jskv.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket: wire.BucketCreds, Description: "Switchyard: minted NATS credentials and their revocations",
		History: 1, Storage: jetstream.FileStorage,
	})
}

// Service answers yard.trust.> and keeps the account in step with the
// registry (public functions) and yard_creds (revocations).
type Service struct {
	A           *Authority
	InstanceTTL time.Duration
	Log         *slog.Logger

	mu      sync.Mutex
	callers map[string]Record // caller credentials not revoked, by user
}

// liveCaller reports whether an unrevoked, unexpired caller credential is
// named name: two holders of one name would share an inbox prefix, and
// read each other's replies.
func (s *Service) liveCaller(name string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.callers {
		if r.Name == name && (r.Expires.IsZero() || r.Expires.After(now)) {
			return true
		}
	}
	return false
}

// Run serves on nc until ctx ends. ready is closed once the account holds
// the current public functions and revocations.
func (s *Service) Run(ctx context.Context, nc *nats.Conn, ready chan<- struct{}) error {
	if s.InstanceTTL == 0 {
		s.InstanceTTL = DefaultInstanceTTL
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	// Everything Run starts ends with it: a Run that returns because one
	// watch closed leaves no follower behind for the next Run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return err
	}
	creds, err := OpenCreds(ctx, js)
	if err != nil {
		return err
	}
	subs := []*nats.Subscription{}
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	sub, err := nc.QueueSubscribe(roles.TrustInstance+"*", roles.TrustQueue, func(m *nats.Msg) {
		if !s.privateReply(m, roles.AgentInbox, roles.AdminInbox) {
			return
		}
		reply := s.instance(ctx, reg, strings.TrimPrefix(m.Subject, roles.TrustInstance), m.Data)
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	})
	if err != nil {
		return err
	}
	subs = append(subs, sub)
	sub, err = nc.QueueSubscribe(roles.TrustActivator, roles.TrustQueue, func(m *nats.Msg) {
		if !s.privateReply(m, roles.AgentInbox) {
			return
		}
		b, _ := json.Marshal(s.activator(m.Data))
		_ = m.Respond(b)
	})
	if err != nil {
		return err
	}
	subs = append(subs, sub)
	sub, err = nc.QueueSubscribe(roles.TrustCreds, roles.TrustQueue, func(m *nats.Msg) {
		if !s.privateReply(m, roles.AdminInbox) {
			return
		}
		reply := s.caller(ctx, reg, creds, m.Data)
		// Only admins may ask (the subject is theirs alone).
		ev := audit.Event{Who: "admin", Action: "create caller credential", Target: reply.Name, Outcome: audit.OutcomeOK,
			Detail: strings.Join(reply.Functions, ",")}
		if reply.Error != "" {
			ev.Outcome = reply.Error
		}
		if err := audit.Record(ctx, js, audit.KindCreds, ev); err != nil {
			s.Log.Warn("trust: audit", "err", err)
		}
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	})
	if err != nil {
		return err
	}
	subs = append(subs, sub)

	sub, err = nc.QueueSubscribe(roles.TrustRecords+"*.*", roles.TrustQueue, func(m *nats.Msg) {
		// Callers' and admins' inboxes only: the trust service may write
		// yard_creds, and a reply aimed there would be a write.
		if !s.privateReply(m, "_INBOX_c", roles.AdminInbox) {
			return
		}
		_ = m.RespondMsg(s.record(ctx, js, strings.TrimPrefix(m.Subject, roles.TrustRecords)))
	})
	if err != nil {
		return err
	}
	subs = append(subs, sub)

	errc := make(chan error, 2)
	regReady, credsReady := make(chan struct{}), make(chan struct{})
	go func() { errc <- s.followRegistry(ctx, reg, regReady) }()
	go func() { errc <- s.followCreds(ctx, creds, credsReady) }()
	for _, c := range []chan struct{}{regReady, credsReady} {
		select {
		case <-c:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ready != nil {
		close(ready)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// followRegistry keeps the anonymous rights to the public functions.
// record answers yard.trust.records.<function>.<id>: the invocation's
// record, as the function's instance wrote it. The caller's rights say
// which functions it may ask about; the id must be literal (a wildcard
// would read whichever record is newest).
func (s *Service) record(ctx context.Context, js jetstream.JetStream, rest string) *nats.Msg {
	fail := func(e *wire.Error) *nats.Msg {
		b, _ := json.Marshal(e)
		return &nats.Msg{Header: nats.Header(e.Headers()), Data: b}
	}
	name, id, _ := strings.Cut(rest, ".")
	if wire.ValidateName(name) != nil || invocation.ValidateID(id) != nil {
		return fail(wire.Errorf(wire.CodeInvalidArgument, "want yard.trust.records.<function>.<invocation id>, literal"))
	}
	kv, err := js.KeyValue(ctx, wire.BucketResults)
	if err != nil {
		return fail(wire.Errorf(wire.CodeUnavailable, "the records cannot be read now"))
	}
	e, err := kv.Get(ctx, wire.ResultKey(name, id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fail(wire.Errorf(wire.CodeNotFound, "no record of invocation %s of %s (yet)", id, name))
	case err != nil:
		return fail(wire.Errorf(wire.CodeUnavailable, "the records cannot be read now"))
	}
	return &nats.Msg{Header: nats.Header{"Content-Type": {"application/json"}}, Data: e.Value()}
}

// privateReply reports whether m asks for its answer on one of the
// private inbox prefixes given. A credential sent to the default _INBOX
// would be read by every anonymous caller, so such a request (and one
// delivered by a JetStream consumer, whose reply is $JS.ACK…) is dropped.
func (s *Service) privateReply(m *nats.Msg, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(m.Reply, p+".") {
			return true
		}
	}
	s.Log.Warn("trust: refused a request whose reply others could read; use the admin's or agent's inbox prefix",
		"subject", m.Subject, "reply", m.Reply)
	return false
}

func (s *Service) followRegistry(ctx context.Context, reg *registry.Registry, ready chan struct{}) error {
	w, err := reg.Watch(ctx)
	if err != nil {
		return err
	}
	public := map[string]bool{}
	loaded := false
	apply := func() {
		var fns []string
		for f, ok := range public {
			if ok {
				fns = append(fns, f)
			}
		}
		if err := s.A.SetPublic(fns); err != nil {
			s.Log.Error("trust: anonymous rights not updated", "err", err)
		}
	}
	return jskv.Follow(ctx, w, func() {
		loaded = true
		apply()
		close(ready)
	}, func(e jetstream.KeyValueEntry) {
		name := e.Key()
		if e.Operation() != jetstream.KeyValuePut {
			delete(public, name)
		} else {
			var spec registry.Spec
			public[name] = json.Unmarshal(e.Value(), &spec) == nil && spec.AccessPolicy() == registry.AccessPublic &&
				wire.ValidateName(spec.Name) == nil && spec.Name == name
		}
		if loaded {
			apply()
		}
	})
}

// followCreds keeps the account's revocations to yard_creds.
func (s *Service) followCreds(ctx context.Context, kv jetstream.KeyValue, ready chan struct{}) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	revoked := map[string]time.Time{}
	loaded := false
	apply := func() {
		if err := s.A.SetRevoked(revoked); err != nil {
			s.Log.Error("trust: revocations not applied", "err", err)
		}
	}
	return jskv.Follow(ctx, w, func() {
		loaded = true
		apply()
		close(ready)
	}, func(e jetstream.KeyValueEntry) {
		var r Record
		// Only a record of this very user counts: anything else written
		// there (by mistake or malice) neither revokes nor restores.
		put := e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &r) == nil && r.User == e.Key()
		if put && !r.Revoked.IsZero() {
			revoked[e.Key()] = r.Revoked
		} else if put {
			delete(revoked, e.Key())
		}
		s.mu.Lock()
		if s.callers == nil {
			s.callers = map[string]Record{}
		}
		if put && r.Role == "caller" && r.Revoked.IsZero() {
			s.callers[e.Key()] = r
		} else {
			delete(s.callers, e.Key())
		}
		s.mu.Unlock()
		// A deleted record keeps its revocation: deleting must never
		// bring a credential back.
		if loaded {
			apply()
		}
	})
}

// instance mints the credential of an instance of a deployed function,
// with exactly the rights of the live spec.
func (s *Service) instance(ctx context.Context, reg *registry.Registry, name string, body []byte) InstanceReply {
	var req InstanceRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Instance == "" || len(req.Instance) > 128 {
		return InstanceReply{Error: "want {\"instance\": \"<id>\"}"}
	}
	spec, err := reg.Get(ctx, name)
	if err != nil {
		return InstanceReply{Error: err.Error()}
	}
	rights, err := roles.Function(spec)
	if err != nil {
		return InstanceReply{Error: err.Error()}
	}
	c, err := s.A.Mint("fn:"+name+":"+req.Instance, rights, s.InstanceTTL)
	if err != nil {
		return InstanceReply{Error: err.Error()}
	}
	return InstanceReply{Creds: string(c.Text), Expires: c.Expires}
}

// activator mints the leaf node credential of an agent's activator:
// {"agent": "<id>"} names it, for the server's connection listings.
func (s *Service) activator(body []byte) InstanceReply {
	var req struct {
		Agent string `json:"agent"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Agent == "" || len(req.Agent) > 128 {
		return InstanceReply{Error: "want {\"agent\": \"<id>\"}"}
	}
	c, err := s.A.Mint("activator:"+req.Agent, roles.Activator(), s.InstanceTTL)
	if err != nil {
		return InstanceReply{Error: err.Error()}
	}
	return InstanceReply{Creds: string(c.Text), Expires: c.Expires}
}

// caller mints a caller credential for functions that exist and are not
// internal, and records it.
func (s *Service) caller(ctx context.Context, reg *registry.Registry, kv jetstream.KeyValue, body []byte) CredsReply {
	var req CredsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return CredsReply{Error: "bad request: " + err.Error()}
	}
	if err := wire.ValidateName(req.Name); err != nil {
		return CredsReply{Error: "name: " + err.Error()}
	}
	ttl := DefaultCallerTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > MaxCallerTTL {
			return CredsReply{Error: fmt.Sprintf("ttl %q: want a positive duration up to %s", req.TTL, MaxCallerTTL)}
		}
		ttl = d
	}
	fns := slices.Compact(slices.Sorted(slices.Values(req.Functions)))
	if len(fns) == 0 {
		return CredsReply{Error: "name at least one function (--functions a,b)"}
	}
	var errs []error
	for _, f := range fns {
		spec, err := reg.Get(ctx, f)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("function %q: %w", f, err))
		case spec.AccessPolicy() == registry.AccessInternal:
			errs = append(errs, fmt.Errorf("function %q is internal: only functions that declare a call to it may call it", f))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return CredsReply{Error: err.Error()}
	}
	if s.liveCaller(req.Name, time.Now()) {
		return CredsReply{Error: fmt.Sprintf("a caller credential named %q is in use (its holders would share an inbox): revoke it first, or choose another name", req.Name)}
	}
	inbox := roles.CallerInbox(req.Name)
	c, err := s.A.Mint("caller:"+req.Name, roles.Caller(inbox, fns...), ttl)
	if err != nil {
		return CredsReply{Error: err.Error()}
	}
	rec := Record{User: c.User, Name: req.Name, Role: "caller", Functions: fns, Created: time.Now().UTC(), Expires: c.Expires}
	b, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, c.User, b); err != nil {
		return CredsReply{Error: "record the credential: " + err.Error()}
	}
	s.mu.Lock()
	if s.callers == nil {
		s.callers = map[string]Record{}
	}
	s.callers[c.User] = rec // before the watch brings it: a second ask is refused at once
	s.mu.Unlock()
	return CredsReply{Creds: string(c.Text), InboxPrefix: inbox, Record: rec}
}
