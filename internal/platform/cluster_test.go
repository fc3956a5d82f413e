package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestCluster: three platform nodes that share the keys form a cluster,
// every platform stream (and one made later) gets three replicas, each
// node answers yard.servers, accepting work carries on when the node that
// leads YARD_ASYNC goes, and a route without the keys' secret is refused.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes, dir, urls := startCluster(t, 3)
	const n = 3
	var route [n]int
	for k, nd := range nodes {
		route[k] = nd.NS.ClusterAddr().Port
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := natstest.ConnectURL(t, strings.Join(urls, ","), nats.UserCredentials(platform.CredsFile(dir, platform.RoleAdmin)),
		nats.CustomInboxPrefix(roles.AdminInbox), nats.MaxReconnects(-1))
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}

	// A bucket made after the cluster formed, as a function's would be.
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "late"}); err != nil {
		t.Fatal(err)
	}
	low := func() []string {
		var names []string
		lister := js.ListStreams(ctx)
		for info := range lister.Info() {
			if info.Config.Replicas != 3 {
				names = append(names, fmt.Sprintf("%s R%d", info.Config.Name, info.Config.Replicas))
			}
		}
		if lister.Err() != nil {
			names = append(names, lister.Err().Error())
		}
		return names
	}
	deadline := time.Now().Add(time.Minute)
	for l := low(); len(l) > 0; l = low() {
		if time.Now().After(deadline) {
			t.Fatalf("streams below three replicas after a minute: %v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each node answers yard.servers; one leads the meta group.
	infos := servers(t, admin, n)
	leaders, asyncLeader := 0, -1
	for _, si := range infos {
		if si.MetaLeader {
			leaders++
		}
		for _, s := range si.Leads {
			if s == wire.StreamAsync {
				for k := range nodes {
					if nodes[k].NS.Name() == si.Name {
						asyncLeader = k
					}
				}
			}
		}
		if si.Cluster != server.DefaultClusterName || si.PID == 0 || si.ClientURL == "" {
			t.Errorf("server info %+v", si)
		}
	}
	if leaders != 1 || asyncLeader < 0 {
		t.Fatalf("meta leaders %d, YARD_ASYNC leader node %d: %+v", leaders, asyncLeader, infos)
	}

	// Work accepted before the YARD_ASYNC leader goes is still there after,
	// and new work is accepted once another node leads.
	store, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := store.Submit(ctx, invocation.Submission{Function: "work", Body: []byte(`{}`), IdempotencyKey: "before"})
	if err != nil {
		t.Fatal(err)
	}
	nodes[asyncLeader].Close()
	after, _, err := store.Submit(ctx, invocation.Submission{Function: "work", Body: []byte(`{}`), IdempotencyKey: "after"})
	if err != nil {
		t.Fatalf("submit with the YARD_ASYNC leader gone: %v", err)
	}
	st, err := js.Stream(ctx, wire.StreamAsync)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []*invocation.Record{before, after} {
		if _, err := st.GetMsg(ctx, rec.Seq); err != nil {
			t.Errorf("invocation %s (seq %d) after the leader went: %v", rec.ID, rec.Seq, err)
		}
	}
	servers(t, admin, n-1)

	// A route must know the secret the keys derive: neither none nor
	// another's is let in.
	other, err := trust.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := other.RoutePassword()
	live := (asyncLeader + 1) % n
	for _, pass := range []string{"", wrong} {
		if got := routeConnect(t, route[live], pass); !strings.Contains(got, "Authorization Violation") {
			t.Errorf("a route with password %q: got %q, want an authorization violation", pass, got)
		}
	}
}

// startCluster starts n platform nodes in this process that share the
// keys and the credentials in dir, and returns once each has started.
func startCluster(tb testing.TB, n int) (nodes []*platform.Platform, dir string, urls []string) {
	tb.Helper()
	dir = tb.TempDir()
	trustDir := filepath.Join(dir, "trust")
	if err := platform.WriteCredsFiles(dir, trustDir); err != nil {
		tb.Fatal(err)
	}
	client, route := make([]int, n), make([]int, n)
	var routes []string
	for k := range n {
		client[k], route[k] = natstest.FreePort(tb), natstest.FreePort(tb)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", route[k]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[k]))
	}
	nodes = make([]*platform.Platform, n)
	errs := make([]error, n)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d", k+1)
			nodes[k], errs[k] = platform.Start(ctx, platform.Config{
				Server: server.Config{Port: client[k], StoreDir: filepath.Join(dir, name, "jetstream"), Name: name, Leaf: "127.0.0.1:-1",
					Cluster: &server.Cluster{Listen: fmt.Sprintf("127.0.0.1:%d", route[k]), Routes: routes}},
				Dir: filepath.Join(dir, name), TrustDir: trustDir, CredsDir: dir,
			})
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			tb.Fatalf("node %d: %v", k+1, err)
		}
		tb.Cleanup(nodes[k].Close)
	}
	return nodes, dir, urls
}

// servers gathers the yard.servers answers until want nodes answered.
func servers(t *testing.T, nc *nats.Conn, want int) []wire.ServerInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		inbox := nc.NewRespInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.PublishRequest(wire.SubjectServers, inbox, nil); err != nil {
			t.Fatal(err)
		}
		var infos []wire.ServerInfo
		for {
			m, err := sub.NextMsg(500 * time.Millisecond)
			if err != nil {
				break
			}
			var si wire.ServerInfo
			if err := json.Unmarshal(m.Data, &si); err != nil {
				t.Fatal(err)
			}
			infos = append(infos, si)
		}
		_ = sub.Unsubscribe()
		if len(infos) == want {
			return infos
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d servers answered, want %d", len(infos), want)
		}
	}
}

// routeConnect speaks the route protocol to a node's cluster port as
// yard-route with pass, and returns what the node says to a PING.
func routeConnect(t *testing.T, port int, pass string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("route port: %q %v", line, err)
	}
	connect, _ := json.Marshal(map[string]any{"user": trust.RouteUser, "pass": pass, "name": "intruder",
		"cluster": server.DefaultClusterName, "verbose": false, "pedantic": false})
	fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect)
	var got []string
	for {
		line, err := r.ReadString('\n')
		got = append(got, strings.TrimSpace(line))
		if err != nil || strings.HasPrefix(line, "-ERR") || strings.HasPrefix(line, "PONG") {
			return strings.Join(got, " ")
		}
	}
}
