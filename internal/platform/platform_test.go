package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func start(t *testing.T, anon bool) *platform.Platform {
	t.Helper()
	dir := t.TempDir()
	p, err := platform.Start(context.Background(), platform.Config{
		Server: server.Config{Port: -1, StoreDir: dir + "/jetstream"}, Dir: dir, AllowAnonymous: anon,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// as connects with a role's credential file, recording denials.
func as(t *testing.T, p *platform.Platform, creds string, d *natstest.Denials, opts ...nats.Option) *nats.Conn {
	t.Helper()
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	} else {
		// The server closes anonymous connections when the public
		// functions change ("authentication expired"), and they reconnect
		// with the new rights; two changes in a row must not make the
		// client give up (docs/security.md).
		opts = append(opts, nats.IgnoreAuthErrorAbort())
	}
	if d != nil {
		opts = append(opts, d.Option())
	}
	return natstest.ConnectURL(t, p.NS.ClientURL(), opts...)
}

// serve answers fn.<name> as a deployed function would, on the admin's
// connection, after putting its spec in the registry.
func serve(t *testing.T, admin *nats.Conn, name, access string) {
	t.Helper()
	js, _ := jetstream.New(admin)
	reg, err := registry.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	spec := &registry.Spec{Name: name, InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Timeout: registry.Duration(time.Second), Access: access}
	if err := reg.Put(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.QueueSubscribe(wire.FnPrefix+name, wire.FnPrefix+name, func(m *nats.Msg) { _ = m.Respond([]byte(`"hi from ` + name + `"`)) }); err != nil {
		t.Fatal(err)
	}
	_ = admin.Flush()
}

// refused fails unless a JetStream call is denied by the server.
func refusedJS(t *testing.T, d *natstest.Denials, subject string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := call(ctx); err == nil {
		t.Fatalf("%s: allowed", subject)
	}
	d.Wait(t, subject)
}

func TestAnonymousCallsPublicFunctionsOnly(t *testing.T) {
	p := start(t, true)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "greet", registry.AccessPublic)
	serve(t, admin, "orders", registry.AccessAuthenticated)
	serve(t, admin, "payments", registry.AccessInternal)
	if st, err := os.Stat(p.CredsFile(platform.RoleAdmin)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.creds: %v %v", st, err)
	}

	var d natstest.Denials
	anon := as(t, p, "", &d)
	// The rights follow the registry: greet became public after the
	// connection was made.
	natstest.WaitFor(t, 20*time.Second, "anonymous to reach greet", func() bool {
		m, err := anon.Request("fn.greet", nil, 200*time.Millisecond)
		return err == nil && string(m.Data) == `"hi from greet"`
	})
	for _, fn := range []string{"orders", "payments"} {
		if _, err := anon.Request("fn."+fn, nil, 200*time.Millisecond); err == nil {
			t.Fatalf("anonymous called %s", fn)
		}
		d.Wait(t, "fn."+fn)
	}
	// Only gateways may send what instances take as validated.
	if _, err := anon.Request("yard.gw.greet", nil, 200*time.Millisecond); err == nil {
		t.Fatal("anonymous used the gateway's subject")
	}
	d.Wait(t, "yard.gw.greet")
	// The attacks of the issue: join a queue group, read every request.
	for _, subj := range []string{"fn.payments", "fn.>"} {
		if _, err := anon.QueueSubscribe(subj, "fn.payments", func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		d.Wait(t, subj)
	}
	js, _ := jetstream.New(anon)
	refusedJS(t, &d, "$JS.API.STREAM.PURGE."+wire.StreamAsync, func(ctx context.Context) error {
		_, err := anon.Request("$JS.API.STREAM.PURGE."+wire.StreamAsync, nil, 200*time.Millisecond)
		return err
	})
	refusedJS(t, &d, "$JS.API.STREAM.INFO.KV_"+wire.BucketFunctions, func(ctx context.Context) error {
		_, err := js.KeyValue(ctx, wire.BucketFunctions)
		return err
	})
	refusedJS(t, &d, "$KV."+wire.BucketFunctions+".greet", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "$KV."+wire.BucketFunctions+".greet", []byte(`{}`))
		return err
	})
	refusedJS(t, &d, "$O."+wire.StoreArtifacts+".C.x", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "$O."+wire.StoreArtifacts+".C.x", []byte(`binary`))
		return err
	})
	refusedJS(t, &d, "$JS.API.DIRECT.GET.KV_"+wire.BucketResults, func(ctx context.Context) error {
		_, err := anon.Request("$JS.API.DIRECT.GET.KV_"+wire.BucketResults, []byte(`{"last_by_subj":"$KV.yard_results.>"}`), 200*time.Millisecond)
		return err
	})
	// Discovery works: nats micro ls.
	if _, err := anon.Request("$SRV.PING", nil, 200*time.Millisecond); err != nil && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("$SRV.PING: %v", err)
	}
}

// TestAnonymousRightsShrinkUnderConnectStorm: callers that connect while
// the public functions change must not keep the rights of before. The
// server checks connections once when it applies new claims; one that
// authenticated under the old claims and joined after that check is
// closed by the authority's sweeps. Without them this fails within a few
// rounds on a busy machine.
func TestAnonymousRightsShrinkUnderConnectStorm(t *testing.T) {
	p := start(t, true)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "greet", registry.AccessPublic)
	serve(t, admin, "secret", registry.AccessInternal)

	const clients = 16
	conns := make([]*nats.Conn, clients)
	var quiet natstest.Denials // the refusals below are expected
	for round := range 10 {
		// Open connections while the rights widen and narrow.
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				if conns[i] == nil {
					conns[i] = as(t, p, "", &quiet, nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
				}
			})
		}
		if err := p.Auth.SetPublic([]string{"greet", "secret"}); err != nil {
			t.Fatal(err)
		}
		if err := p.Auth.SetPublic([]string{"greet"}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		kept := make(chan int, clients)
		for i, nc := range conns {
			wg.Go(func() {
				// The sweeps after a change close a straggler within 5 s;
				// it reconnects with the narrower rights.
				deadline := time.Now().Add(8 * time.Second)
				for time.Now().Before(deadline) {
					if nc.IsConnected() {
						if _, err := nc.Request("fn.secret", nil, 300*time.Millisecond); err != nil {
							return
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
				kept <- i
			})
		}
		wg.Wait()
		close(kept)
		for i := range kept {
			t.Errorf("round %d: caller %d kept the wider rights", round, i)
		}
		if round%3 == 2 {
			for i := range conns {
				conns[i].Close()
				conns[i] = nil
			}
		}
	}
}

func TestNoCredentialsRefusedWithoutAnonymous(t *testing.T) {
	p := start(t, false)
	if _, err := nats.Connect(p.NS.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connection: %v", err)
	}
	// A credential of another operator's making.
	other, err := trust.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := trust.NewAuthority(other, false).Mint("intruder", roles.Rights{All: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/other.creds"
	if err := os.WriteFile(path, c.Text, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(path)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("foreign credential: %v", err)
	}
	// A user JWT signed by a key the account does not know, naming it.
	kp, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = p.Auth.AccountKey()
	token, _ := uc.Encode(kp)
	seed, _ := user.Seed()
	if _, err := nats.Connect(p.NS.ClientURL(), nats.UserJWTAndSeed(token, string(seed))); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("forged credential: %v", err)
	}
}

// createCaller asks the trust service for a caller credential, as
// `yard creds create` does.
func createCaller(t *testing.T, admin *nats.Conn, req trust.CredsRequest) (trust.CredsReply, string) {
	t.Helper()
	b, _ := json.Marshal(req)
	m, err := admin.Request(roles.TrustCreds, b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply trust.CredsReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Error != "" {
		return reply, ""
	}
	path := t.TempDir() + "/" + req.Name + ".creds"
	if err := os.WriteFile(path, []byte(reply.Creds), 0o600); err != nil {
		t.Fatal(err)
	}
	return reply, path
}

// TestAdminRepliesStayPrivate: anonymous callers share _INBOX and may read
// it; the admin's replies (here a freshly minted credential) go to its own
// prefix, and an admin client that forgets the prefix is refused, not
// overheard.
func TestAdminRepliesStayPrivate(t *testing.T) {
	p := start(t, true)
	anon := as(t, p, "", nil)
	heard := make(chan *nats.Msg, 64)
	if _, err := anon.ChanSubscribe("_INBOX.>", heard); err != nil {
		t.Fatal(err)
	}
	if err := anon.Flush(); err != nil {
		t.Fatal(err)
	}
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "orders", registry.AccessAuthenticated)
	if reply, _ := createCaller(t, admin, trust.CredsRequest{Name: "bob", Functions: []string{"orders"}}); reply.Creds == "" {
		t.Fatalf("no credential minted: %+v", reply)
	}
	// The sentinel is routed after the reply was: once anonymous has it,
	// anything it could have overheard has arrived too.
	if err := admin.Publish("_INBOX.sentinel", []byte("end")); err != nil {
		t.Fatal(err)
	}
	for m := range heard {
		if m.Subject == "_INBOX.sentinel" {
			break
		}
		t.Fatalf("anonymous overheard %s: %.80q", m.Subject, m.Data)
	}

	var d natstest.Denials
	careless := as(t, p, p.CredsFile(platform.RoleAdmin), &d)
	if _, err := careless.Request(roles.TrustCreds, []byte(`{"name":"eve","functions":["orders"]}`), time.Second); err == nil {
		t.Fatal("an admin client on the default inbox got a reply")
	}
	d.Wait(t, "_INBOX.")
}

// TestRepliesGoToInboxesOnly: a requester chooses the reply subject, so
// one aimed at the registry or the credential records must not make a
// responder write there: an instance (with its real credential) may only
// answer inboxes, and the trust service answers callers' inboxes only.
func TestRepliesGoToInboxesOnly(t *testing.T) {
	p := start(t, true)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "payments", registry.AccessInternal)
	js, _ := jetstream.New(admin)
	ctx := context.Background()
	reg, err := js.KeyValue(ctx, wire.BucketFunctions)
	if err != nil {
		t.Fatal(err)
	}
	// greet, public, answered by an honest responder holding greet's own
	// instance credential.
	js2, _ := jetstream.New(admin)
	r2, err := registry.Open(ctx, js2)
	if err != nil {
		t.Fatal(err)
	}
	greet := &registry.Spec{Name: "greet", InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Timeout: registry.Duration(time.Second), Access: registry.AccessPublic, Version: 1}
	if err := r2.Put(ctx, greet); err != nil {
		t.Fatal(err)
	}
	m, err := admin.Request(roles.TrustInstance+"greet", []byte(`{"instance":"greet-v1-test"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var ir trust.InstanceReply
	if err := json.Unmarshal(m.Data, &ir); err != nil || ir.Creds == "" {
		t.Fatalf("instance credential: %s %v", m.Data, err)
	}
	path := t.TempDir() + "/greet.creds"
	if err := os.WriteFile(path, []byte(ir.Creds), 0o600); err != nil {
		t.Fatal(err)
	}
	var d natstest.Denials
	inst := as(t, p, path, &d, nats.CustomInboxPrefix(wire.InboxPrefix("greet")))
	if _, err := inst.QueueSubscribe("fn.greet", "fn.greet", func(m *nats.Msg) { _ = m.Respond([]byte(`{"message":"Hello"}`)) }); err != nil {
		t.Fatal(err)
	}
	_ = inst.Flush()
	before, err := reg.Get(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	anon := as(t, p, "", nil)
	natstest.WaitFor(t, 20*time.Second, "anonymous to reach greet", func() bool {
		_, err := anon.Request("fn.greet", nil, 200*time.Millisecond)
		return err == nil
	})
	if err := anon.PublishRequest("fn.greet", "$KV."+wire.BucketFunctions+".payments", nil); err != nil {
		t.Fatal(err)
	}
	d.WaitPublish(t, "$KV."+wire.BucketFunctions+".payments")
	if after, err := reg.Get(ctx, "payments"); err != nil || after.Revision() != before.Revision() {
		t.Fatalf("the registry entry of payments changed: %v", err)
	}

	// A caller aims the trust service's answer at a credential record.
	_, cpath := createCaller(t, admin, trust.CredsRequest{Name: "mal", Functions: []string{"greet"}})
	if cpath == "" {
		t.Fatal("no caller credential")
	}
	creds, err := js.KeyValue(ctx, wire.BucketCreds)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := creds.ListKeys(ctx)
	var victim string
	for k := range keys.Keys() {
		victim = k
	}
	vbefore, err := creds.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	mal := as(t, p, cpath, nil, nats.CustomInboxPrefix(roles.CallerInbox("mal")))
	if err := mal.PublishRequest(roles.TrustRecords+"greet.abc123", "$KV."+wire.BucketCreds+"."+victim, nil); err != nil {
		t.Fatal(err)
	}
	// An honest read after it is answered: the trust service took the
	// first request before this one.
	if _, err := mal.Request(roles.TrustRecords+"greet.abc123", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if vafter, err := creds.Get(ctx, victim); err != nil || vafter.Revision() != vbefore.Revision() {
		t.Fatalf("the credential record %s changed: %v", victim, err)
	}
}

func TestCallerCredentials(t *testing.T) {
	p := start(t, false)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "orders", registry.AccessAuthenticated)
	serve(t, admin, "catalog", registry.AccessPublic)
	serve(t, admin, "payments", registry.AccessInternal)

	if r, _ := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"payments"}}); !strings.Contains(r.Error, "internal") {
		t.Fatalf("internal function granted: %+v", r)
	}
	if r, _ := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"nope"}}); r.Error == "" {
		t.Fatalf("unknown function granted: %+v", r)
	}
	if r, _ := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"orders"}, TTL: "-1s"}); r.Error == "" {
		t.Fatalf("negative ttl: %+v", r)
	}
	reply, path := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"orders"}})
	if path == "" {
		t.Fatal(reply.Error)
	}
	// One live credential a name: two would share an inbox prefix.
	if r, _ := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"catalog"}}); !strings.Contains(r.Error, "in use") {
		t.Fatalf("a second live credential named shop: %+v", r)
	}
	ajs, _ := jetstream.New(admin)
	events, err := audit.List(context.Background(), ajs, time.Time{}, 10)
	if err != nil || !slices.ContainsFunc(events, func(e audit.Event) bool {
		return e.Action == "create caller credential" && e.Target == "shop" && e.Outcome == audit.OutcomeOK
	}) || !slices.ContainsFunc(events, func(e audit.Event) bool { return strings.Contains(e.Outcome, "internal") }) {
		t.Fatalf("audit log: %+v %v", events, err)
	}
	var d natstest.Denials
	// Without its own inbox prefix the caller cannot read replies at all.
	plain := as(t, p, path, &d)
	if _, err := plain.Request("fn.orders", nil, 300*time.Millisecond); err == nil {
		t.Fatal("a reply reached the shared _INBOX")
	}
	d.Wait(t, "_INBOX.")
	caller := as(t, p, path, &d, nats.CustomInboxPrefix(reply.InboxPrefix))
	if m, err := caller.Request("fn.orders", nil, time.Second); err != nil || string(m.Data) != `"hi from orders"` {
		t.Fatalf("granted function: %v", err)
	}
	if _, err := caller.Request("fn.catalog", nil, 200*time.Millisecond); err == nil {
		t.Fatal("ungranted function answered")
	}
	d.Wait(t, "fn.catalog")
	if _, err := caller.Subscribe("fn.orders", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	d.Wait(t, "fn.orders")

	// Records by literal id, through the trust service; never by a
	// wildcard, never of another function, never by a direct get.
	js, _ := jetstream.New(admin)
	results, err := js.KeyValue(context.Background(), wire.BucketResults)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"orders.abc123", "orders.o1234567890abcdef-other"} {
		if _, err := results.Put(context.Background(), key, []byte(`{"id":"`+strings.TrimPrefix(key, "orders.")+`","status":"succeeded"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := caller.Request(roles.TrustRecords+"orders.abc123", nil, time.Second); err != nil || !strings.Contains(string(m.Data), `"abc123"`) {
		t.Fatalf("record by id: %v %v", m, err)
	}
	for _, subject := range []string{roles.TrustRecords + "orders.*", roles.TrustRecords + "orders.nope"} {
		m, err := caller.Request(subject, nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if we := wire.ReplyError(m.Header, m.Data); we == nil || strings.Contains(string(m.Data), "succeeded") {
			t.Fatalf("%s: %s, want an error", subject, m.Data)
		}
	}
	for _, subject := range []string{roles.TrustRecords + "payments.abc123",
		"$JS.API.DIRECT.GET.KV_" + wire.BucketResults + ".$KV." + wire.BucketResults + ".orders.>"} {
		if _, err := caller.Request(subject, nil, 200*time.Millisecond); err == nil {
			t.Fatalf("%s answered", subject)
		}
		d.Wait(t, subject)
	}

	// The trust service answers admins only.
	if _, err := caller.Request(roles.TrustCreds, []byte(`{"name":"x","functions":["orders"]}`), 200*time.Millisecond); err == nil {
		t.Fatal("a caller minted a credential")
	}
	d.Wait(t, roles.TrustCreds)

	// Revoked: the live connection is closed and a new one refused.
	closed := make(chan struct{})
	caller.SetClosedHandler(func(*nats.Conn) { close(closed) })
	caller.SetReconnectHandler(nil)
	kv, err := js.KeyValue(context.Background(), wire.BucketCreds)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), reply.User)
	if err != nil {
		t.Fatal(err)
	}
	var rec trust.Record
	_ = json.Unmarshal(e.Value(), &rec)
	rec.Revoked = time.Now()
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(context.Background(), reply.User, b); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 20*time.Second, "the revoked credential to be refused", func() bool {
		nc, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(path))
		if err == nil {
			nc.Close()
			return false
		}
		return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthRevoked)
	})
	natstest.WaitFor(t, 20*time.Second, "the revoked connection to lose its rights", func() bool {
		_, err := caller.Request("fn.orders", nil, 100*time.Millisecond)
		return err != nil
	})
	// Revoked, its name is free again.
	natstest.WaitFor(t, 20*time.Second, "the name shop to be free", func() bool {
		r, _ := createCaller(t, admin, trust.CredsRequest{Name: "shop", Functions: []string{"orders"}})
		return r.Error == ""
	})
}

func TestExpiredCredentialRefused(t *testing.T) {
	p := start(t, false)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "orders", registry.AccessAuthenticated)
	reply, path := createCaller(t, admin, trust.CredsRequest{Name: "brief", Functions: []string{"orders"}, TTL: "2s"})
	if path == "" {
		t.Fatal(reply.Error)
	}
	nc := as(t, p, path, nil, nats.CustomInboxPrefix(reply.InboxPrefix), nats.MaxReconnects(0))
	if _, err := nc.Request("fn.orders", nil, time.Second); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the server to close the expired connection", nc.IsClosed)
	// JWT expiry has a resolution of a second.
	natstest.WaitFor(t, 5*time.Second, "a second past expiry", func() bool { return time.Now().After(reply.Expires.Add(time.Second)) })
	if _, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(path)); !errors.Is(err, nats.ErrAuthExpired) && !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("an expired credential: %v", err)
	}
}

// TestComponentRights: a gateway and an agent are refused what their rows
// do not allow, a function instance everything of another function's.
func TestComponentRights(t *testing.T) {
	p := start(t, false)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "orders", registry.AccessAuthenticated)
	serve(t, admin, "payments", registry.AccessInternal)

	var d natstest.Denials
	gw := as(t, p, p.CredsFile(platform.RoleGateway), &d, nats.CustomInboxPrefix(roles.GatewayInbox))
	gjs, _ := jetstream.New(gw)
	refusedJS(t, &d, "$KV."+wire.BucketFunctions+".orders", func(ctx context.Context) error {
		_, err := gjs.Publish(ctx, "$KV."+wire.BucketFunctions+".orders", []byte(`{}`))
		return err
	})
	refusedJS(t, &d, "$JS.API.STREAM.DELETE."+wire.StreamAsync, func(ctx context.Context) error {
		return gjs.DeleteStream(ctx, wire.StreamAsync)
	})
	refusedJS(t, &d, "$JS.API.STREAM.PURGE."+wire.StreamAsync, func(ctx context.Context) error {
		_, err := gw.Request("$JS.API.STREAM.PURGE."+wire.StreamAsync, nil, 200*time.Millisecond)
		return err
	})
	if _, err := gw.Subscribe("fn.payments", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	d.Wait(t, "fn.payments")
	// It accepts async work, with an Idempotency-Key too: a repeat of the
	// key finds the first invocation.
	store, err := invocation.Open(context.Background(), gjs, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "charge-7", "charge-7"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rec, _, err := store.Submit(ctx, invocation.Submission{Function: "orders", Body: []byte(`{}`), IdempotencyKey: key})
		cancel()
		if err != nil || rec.Seq == 0 {
			t.Fatalf("gateway submits with key %q: %+v %v (denied: %v)", key, rec, err, d.Has("$KV."+wire.BucketResults+".orders.>"))
		}
	}

	ag := as(t, p, p.CredsFile(platform.RoleAgent), &d, nats.CustomInboxPrefix(roles.AgentInbox))
	if _, err := ag.Request("$JS.API.STREAM.PURGE."+wire.StreamAsync, nil, 200*time.Millisecond); err == nil {
		t.Fatal("agent purged the work queue")
	}
	d.Wait(t, "$JS.API.STREAM.PURGE."+wire.StreamAsync)
	if _, err := ag.Request("$JS.API.STREAM.DELETE."+wire.StreamAsync, nil, 200*time.Millisecond); err == nil {
		t.Fatal("agent deleted the work queue")
	}
	d.Wait(t, "$JS.API.STREAM.DELETE."+wire.StreamAsync)
	if _, err := ag.Request("$JS.API.STREAM.UPDATE."+wire.StreamAsync, []byte(`{}`), 200*time.Millisecond); err == nil {
		t.Fatal("agent reconfigured the work queue")
	}
	d.Wait(t, "$JS.API.STREAM.UPDATE."+wire.StreamAsync)
	if _, err := ag.Request(roles.TrustCreds, []byte(`{}`), 200*time.Millisecond); err == nil {
		t.Fatal("agent minted a caller credential")
	}
	d.Wait(t, roles.TrustCreds)

	// An agent gets an instance credential with its function's rights.
	m, err := ag.Request(roles.TrustInstance+"orders", []byte(`{"instance":"orders-v1-test"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var inst trust.InstanceReply
	if err := json.Unmarshal(m.Data, &inst); err != nil || inst.Creds == "" || time.Until(inst.Expires) > trust.DefaultInstanceTTL+time.Minute {
		t.Fatalf("instance credential: %+v %v", inst, err)
	}
	path := t.TempDir() + "/orders.creds"
	_ = os.WriteFile(path, []byte(inst.Creds), 0o600)
	fnc := as(t, p, path, &d, nats.CustomInboxPrefix(wire.InboxPrefix("orders")))
	for _, subj := range []string{"fn.payments", "fn.>", "yard.gw.payments"} {
		if _, err := fnc.QueueSubscribe(subj, subj, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		d.Wait(t, subj)
	}
	// yard.gw.<name> skips input validation: only gateways may send there.
	if err := fnc.Publish("yard.gw.payments", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	d.WaitPublish(t, "yard.gw.payments")
	if _, err := fnc.Request(roles.TrustInstance+"payments", []byte(`{"instance":"x"}`), 200*time.Millisecond); err == nil {
		t.Fatal("a function minted another's credential")
	}
	d.Wait(t, roles.TrustInstance+"payments")
	if m, err := fnc.Request("fn.orders", nil, time.Second); err == nil {
		t.Fatalf("orders calls itself without declaring it: %s", m.Data)
	}
}

// TestKeysPersistAndStayPrivate: a restart reuses keys and credentials;
// a key file others may read is refused.
func TestKeysPersistAndStayPrivate(t *testing.T) {
	dir := t.TempDir()
	cfg := platform.Config{Server: server.Config{Port: -1, StoreDir: dir + "/jetstream"}, Dir: dir}
	p, err := platform.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p.CredsFile(platform.RoleAdmin))
	p.Close()
	p, err = platform.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.CredsFile(platform.RoleAdmin))
	nc, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(p.CredsFile(platform.RoleAdmin)), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("a restart replaced admin.creds")
	}
	// The gateway's credential is recorded; revoked, it is refused, and the
	// next start writes a new one.
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), wire.BucketCreds)
	if err != nil {
		t.Fatal(err)
	}
	gwBefore, _ := os.ReadFile(p.CredsFile(platform.RoleGateway))
	var revoked bool
	keys, _ := kv.ListKeys(context.Background())
	for k := range keys.Keys() {
		e, _ := kv.Get(context.Background(), k)
		var rec trust.Record
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Role == platform.RoleGateway {
			rec.Revoked = time.Now()
			b, _ := json.Marshal(rec)
			_, _ = kv.Put(context.Background(), k, b)
			revoked = true
		}
	}
	if !revoked {
		t.Fatal("the gateway's credential is not in yard_creds")
	}
	natstest.WaitFor(t, 20*time.Second, "the revoked gateway credential to be refused", func() bool {
		c, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(p.CredsFile(platform.RoleGateway)))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	nc.Close()
	p.Close()
	p, err = platform.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	gwAfter, _ := os.ReadFile(p.CredsFile(platform.RoleGateway))
	c, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(p.CredsFile(platform.RoleGateway)))
	if err != nil || string(gwAfter) == string(gwBefore) {
		t.Fatalf("gateway credential after a restart: replaced %v, %v", string(gwAfter) != string(gwBefore), err)
	}
	c.Close()
	p.Close()
	for _, f := range []string{"operator.nk", "account.nk", "signer.nk"} {
		st, err := os.Stat(dir + "/trust/" + f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	if err := os.Chmod(dir+"/trust/signer.nk", 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := platform.Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key: %v", err)
	}
}
