package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// interest counts the subscriptions of the platform's account that match
// subject.
func interest(t *testing.T, p *platform.Platform, subject string) int {
	acc, err := p.NS.LookupAccount(p.Auth.AccountKey())
	if err != nil {
		t.Fatal(err)
	}
	return acc.Interest(subject)
}

// leafNode runs a NATS server that connects to url as a leaf node with
// creds ("" for none), as an agent's activator does, and a client on it.
func leafNode(t *testing.T, hub, creds string) (*natsserver.Server, *nats.Conn) {
	t.Helper()
	u, err := url.Parse(hub)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.NewServer(&natsserver.Options{DontListen: true, NoSigs: true, NoSystemAccount: true,
		LeafNode: natsserver.LeafNodeOpts{Remotes: []*natsserver.RemoteLeafOpts{{URLs: []*url.URL{u}, Credentials: creds}},
			ReconnectInterval: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("leaf node not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

// TestActivatorCredential: only agents get the activator's credential; it
// connects as a leaf node and nothing else, receives requests to functions
// no instance serves and nothing else, and cannot send anything to the
// platform, not even an answer. No other credential, and no connection
// without one, may connect as a leaf node.
func TestActivatorCredential(t *testing.T) {
	dir := t.TempDir()
	p, err := platform.Start(context.Background(), platform.Config{
		Server: server.Config{Port: -1, StoreDir: dir + "/jetstream", Leaf: "127.0.0.1:-1"}, Dir: dir, AllowAnonymous: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	leafURL := server.LeafURL(p.NS)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	serve(t, admin, "orders", registry.AccessPublic)
	var d natstest.Denials

	// Only an agent may ask for it.
	gw := as(t, p, p.CredsFile(platform.RoleGateway), &d, nats.CustomInboxPrefix(roles.GatewayInbox))
	if _, err := gw.Request(roles.TrustActivator, []byte(`{"agent":"x"}`), 200*time.Millisecond); err == nil {
		t.Fatal("the gateway got an activator credential")
	}
	d.Wait(t, roles.TrustActivator)
	ag := as(t, p, p.CredsFile(platform.RoleAgent), &d, nats.CustomInboxPrefix(roles.AgentInbox))
	m, err := ag.Request(roles.TrustActivator, []byte(`{"agent":"a1"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply trust.InstanceReply
	if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Creds == "" || reply.Expires.IsZero() {
		t.Fatalf("activator credential: %s", m.Data)
	}
	creds := filepath.Join(t.TempDir(), "activator.creds")
	if err := os.WriteFile(creds, []byte(reply.Creds), 0o600); err != nil {
		t.Fatal(err)
	}

	// As a client: refused.
	if nc, err := nats.Connect(p.NS.ClientURL(), nats.UserCredentials(creds), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("the activator credential connected as a client")
	}

	// As a leaf node: it stands by for a function with no instance and
	// receives its requests.
	ns, lc := leafNode(t, leafURL, creds)
	natstest.WaitFor(t, 10*time.Second, "the leaf node to connect", func() bool { return ns.NumLeafNodes() == 1 })
	held := make(chan *nats.Msg, 16)
	for _, subj := range []string{"fn.cold", "yard.>", "$JS.API.>", "$KV.>"} {
		if _, err := lc.Subscribe(subj, func(m *nats.Msg) { held <- m }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lc.QueueSubscribe("fn.orders", "fn.orders", func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	_ = lc.Flush()
	natstest.WaitFor(t, 10*time.Second, "the hub to see the leaf's interest", func() bool {
		return interest(t, p, "fn.cold") > 0
	})
	caller := admin
	if err := caller.PublishRequest("fn.cold", caller.NewRespInbox(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-held:
		if got.Subject != "fn.cold" {
			t.Fatalf("the leaf received %s", got.Subject)
		}
		// Its answer never reaches the caller: it may send nothing.
		if err := got.Respond([]byte(`"forged"`)); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leaf did not receive a request to a function with no instance")
	}
	if m, err := caller.Request("fn.cold", []byte(`{}`), 500*time.Millisecond); err == nil {
		t.Fatalf("the leaf answered a caller: %s", m.Data)
	}
	if got := <-held; got.Subject != "fn.cold" { // that request
		t.Fatalf("the leaf received %s", got.Subject)
	}
	// Requests to a function an instance serves go to the instance.
	if m, err := caller.Request("fn.orders", []byte(`{}`), 2*time.Second); err != nil || string(m.Data) != `"hi from orders"` {
		t.Fatalf("orders: %v %v", err, m)
	}
	// Platform traffic never reaches it, nor does anything it sends reach
	// the platform.
	js, _ := jetstream.New(admin)
	if _, err := js.Publish(context.Background(), wire.AuditPrefix+"ops", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	sent := []string{"fn.orders", "yard.activate.orders", "$JS.API.STREAM.PURGE." + wire.StreamAsync, "$KV." + wire.BucketFunctions + ".orders"}
	spies := map[string]*nats.Subscription{}
	for _, subj := range sent {
		if spies[subj], err = admin.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
	}
	_ = admin.Flush()
	for _, subj := range sent {
		if err := lc.Publish(subj, []byte(`"from the leaf"`)); err != nil {
			t.Fatal(err)
		}
	}
	_ = lc.Flush()
	time.Sleep(500 * time.Millisecond) // a leaf's message takes microseconds
	for _, spy := range spies {
		if m, err := spy.NextMsg(time.Millisecond); err == nil {
			t.Fatalf("the leaf node sent %s to the platform", m.Subject)
		}
	}
	for len(held) > 0 {
		// Its own messages reach its own subscriptions, on its own server.
		if got := <-held; string(got.Data) != `"from the leaf"` {
			t.Fatalf("the leaf received %s", got.Subject)
		}
	}

	// No other credential, nor none at all, connects as a leaf node.
	_, caller2 := createCaller(t, admin, trust.CredsRequest{Name: "c1", Functions: []string{"orders"}})
	for what, c := range map[string]string{"a caller's credential": caller2, "no credential": "", "the agent's credential": p.CredsFile(platform.RoleAgent)} {
		other, _ := leafNode(t, leafURL, c)
		time.Sleep(time.Second) // it retries every 100ms: ten tries
		if other.NumLeafNodes() != 0 {
			t.Fatalf("a leaf node with %s connected", what)
		}
	}
	if n := p.NS.NumLeafNodes(); n != 1 {
		t.Fatalf("%d leaf nodes connected to the platform, want the activator's alone", n)
	}
}

// TestActivatorRenewsItsCredential: the activator's credential lives 5s
// here; the agent renews it before it expires, starting the new leaf node
// before it retires the old one, so the platform never stops seeing a
// standby, and held requests are still answered afterwards.
func TestActivatorRenewsItsCredential(t *testing.T) {
	dir := t.TempDir()
	p, err := platform.Start(context.Background(), platform.Config{
		Server: server.Config{Port: -1, StoreDir: dir + "/jetstream", Leaf: "127.0.0.1:-1"}, Dir: dir, InstanceTTL: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	admin := as(t, p, p.CredsFile(platform.RoleAdmin), nil, nats.CustomInboxPrefix(roles.AdminInbox))
	js, _ := jetstream.New(admin)
	reg, err := registry.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	// Deployed, at zero, and unable to start (no artifact): what reaches
	// fn.cold can only be answered by the activator.
	spec := &registry.Spec{Name: "cold", Version: 1, InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Timeout: registry.Duration(10 * time.Second)}
	if err := reg.Put(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	agentNC := as(t, p, p.CredsFile(platform.RoleAgent), nil, nats.CustomInboxPrefix(roles.AgentInbox))
	ag, err := agent.New(context.Background(), agentNC, agent.Config{Dir: t.TempDir(), Creds: p.CredsFile(platform.RoleAgent),
		LeafURLs: []string{server.LeafURL(p.NS)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	natstest.WaitFor(t, 20*time.Second, "the activator to stand by", func() bool { return interest(t, p, "fn.cold") > 0 })

	// Three lifetimes: the standby never goes.
	leaves := map[string]bool{}
	for end := time.Now().Add(13 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if interest(t, p, "fn.cold") == 0 {
			t.Fatal("the platform saw no standby for fn.cold while the credential was renewed")
		}
		lz, err := p.NS.Leafz(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lz.Leafs {
			leaves[l.Name+"/"+strconv.FormatUint(l.ID, 10)] = true
		}
	}
	if len(leaves) < 3 {
		t.Fatalf("%d leaf node connections in three credential lifetimes, want a new one per lifetime: %v", len(leaves), leaves)
	}
	// A request held now is still answered (not_started: cold cannot start).
	req := nats.NewMsg("fn.cold")
	req.Data = []byte(`{}`)
	req.Header.Set(wire.HeaderDeadline, time.Now().Add(500*time.Millisecond).UTC().Format(time.RFC3339Nano))
	m, err := admin.RequestMsg(req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ReplyError(m.Header, m.Data); e == nil || e.Code != wire.CodeDeadlineExceeded || e.Reason != "not_started" {
		t.Fatalf("held after renewals: %v (%s)", e, m.Data)
	}
}

// TestActivatorOnACluster: on three nodes, with the activator's leaf node
// on n1, an instance on n2 and the caller on n3, every request goes to the
// instance while it serves; once it is gone a request is held, and it is
// forwarded to the instance that comes back, on another node.
func TestActivatorOnACluster(t *testing.T) {
	nodes, dir, urls := startCluster(t, 3)
	admin := func(k int) *nats.Conn {
		return natstest.ConnectURL(t, urls[k], nats.UserCredentials(filepath.Join(dir, "admin.creds")), nats.CustomInboxPrefix(roles.AdminInbox))
	}
	a1, a2, a3 := admin(0), admin(1), admin(2)
	js, _ := jetstream.New(a1)
	ctx := context.Background()
	var reg *registry.Registry
	natstest.WaitFor(t, 60*time.Second, "the registry", func() bool {
		var err error
		reg, err = registry.Open(ctx, js)
		return err == nil
	})
	// Deployed (so the activator stands by) with no artifact: no agent
	// starts it; "instances" here are micro services on n2.
	spec := &registry.Spec{Name: "cold", Version: 1, InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`),
		Timeout: registry.Duration(10 * time.Second)}
	if err := reg.Put(ctx, spec); err != nil {
		t.Fatal(err)
	}
	agentNC := natstest.ConnectURL(t, urls[0], nats.UserCredentials(filepath.Join(dir, "creds", "agent.creds")), nats.CustomInboxPrefix(roles.AgentInbox))
	var ag *agent.Agent
	// A young cluster may still be placing the agents' streams: try again.
	natstest.WaitFor(t, 60*time.Second, "the agent to start", func() bool {
		var err error
		ag, err = agent.New(ctx, agentNC, agent.Config{Dir: t.TempDir(), Creds: filepath.Join(dir, "creds", "agent.creds"),
			LeafURLs: []string{server.LeafURL(nodes[0].NS)}})
		if err != nil {
			t.Logf("agent: %v (trying again)", err)
		}
		return err == nil
	})
	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	t.Cleanup(func() { stop(); <-done })
	for k := range nodes {
		natstest.WaitFor(t, 30*time.Second, fmt.Sprintf("n%d to see the standby", k+1), func() bool { return interest(t, nodes[k], "fn.cold") > 0 })
	}
	instance := func() micro.Service {
		svc, err := micro.AddService(a2, micro.Config{Name: "cold", Version: "1.0.0", QueueGroup: "fn.cold",
			Endpoint: &micro.EndpointConfig{Subject: "fn.cold", Handler: micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte(`"from n2"`)) })}})
		if err != nil {
			t.Fatal(err)
		}
		_ = a2.Flush()
		return svc
	}
	held := func() uint64 {
		s, err := js.Stream(ctx, wire.StreamHeld)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	svc := instance()
	natstest.WaitFor(t, 30*time.Second, "n3 to reach the instance", func() bool {
		m, err := a3.Request("fn.cold", []byte(`{}`), time.Second)
		return err == nil && string(m.Data) == `"from n2"`
	})
	before := held()
	for k := range 500 {
		m, err := a3.Request("fn.cold", []byte(`{}`), 5*time.Second)
		if err != nil || string(m.Data) != `"from n2"` {
			t.Fatalf("request %d: %v %v", k, err, m)
		}
	}
	if got := held() - before; got != 0 {
		t.Fatalf("%d of 500 requests were held while an instance served on another node", got)
	}

	// The instance goes; a request from n3 is held on n1's leaf node, and
	// reaches the instance that comes back on n2.
	serving := interest(t, nodes[2], "fn.cold")
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	_ = a2.Flush()
	natstest.WaitFor(t, 30*time.Second, "n3 to lose the instance", func() bool { return interest(t, nodes[2], "fn.cold") < serving })
	answer := make(chan *nats.Msg, 1)
	go func() {
		m, err := a3.Request("fn.cold", []byte(`{}`), 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		answer <- m
	}()
	natstest.WaitFor(t, 10*time.Second, "the request to be held", func() bool { return held() > before })
	instance()
	if m := <-answer; m == nil || string(m.Data) != `"from n2"` {
		t.Fatalf("held request: %v", m)
	}
}
