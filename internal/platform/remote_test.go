package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestRemoteCluster: three plain nats-servers, configured with the
// include ServerConfig writes and nothing of Switchyard's besides, run
// the platform once StartRemote is pointed at them: the anonymous rights
// and a revocation reach every server, streams get three replicas, the
// gateway's credential works, and a second control plane takes over from
// the first.
func TestRemoteCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	dir := t.TempDir()
	trustDir := filepath.Join(dir, "trust")
	urls := startNATSCluster(t, dir, trustDir, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	credsDir := filepath.Join(dir, "creds")
	p, err := platform.StartRemote(ctx, platform.RemoteConfig{URL: strings.Join(urls, ","), TrustDir: trustDir, CredsDir: credsDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if p.NS != nil {
		t.Fatal("a remote platform runs no server")
	}
	for _, role := range []string{platform.RoleAdmin, platform.RoleGateway, platform.RoleAgent} {
		if st, err := os.Stat(platform.CredsFile(credsDir, role)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s credential: %v %v", role, st, err)
		}
	}
	admin := natstest.ConnectURL(t, urls[0], nats.UserCredentials(platform.CredsFile(credsDir, platform.RoleAdmin)),
		nats.CustomInboxPrefix(roles.AdminInbox))

	// Anonymous callers on every server: nothing but the public functions,
	// and greet becomes one after they connected.
	anon := make([]*nats.Conn, len(urls))
	denials := make([]*natstest.Denials, len(urls))
	for k, u := range urls {
		denials[k] = &natstest.Denials{}
		anon[k] = natstest.ConnectURL(t, u, nats.IgnoreAuthErrorAbort(), nats.MaxReconnects(-1), denials[k].Option())
		if _, err := anon[k].Request("fn.greet", nil, 200*time.Millisecond); err == nil {
			t.Fatalf("server %d: anonymous called greet before it was public", k+1)
		}
		denials[k].Wait(t, "fn.greet")
	}
	serve(t, admin, "greet", registry.AccessPublic)
	serve(t, admin, "orders", registry.AccessAuthenticated)
	var lastErr error
	defer func() {
		if t.Failed() {
			t.Logf("the last anonymous call: %v", lastErr)
		}
	}()
	for k := range urls {
		natstest.WaitFor(t, 20*time.Second, fmt.Sprintf("anonymous on server %d to reach greet", k+1), func() bool {
			m, err := anon[k].Request("fn.greet", nil, 200*time.Millisecond)
			lastErr = err
			return err == nil && string(m.Data) == `"hi from greet"`
		})
		if _, err := anon[k].Request("fn.orders", nil, 200*time.Millisecond); err == nil {
			t.Fatalf("server %d: anonymous called orders", k+1)
		}
		denials[k].Wait(t, "fn.orders")
		refusedJS(t, denials[k], "$JS.API.STREAM.INFO.KV_"+wire.BucketFunctions, func(ctx context.Context) error {
			js, _ := jetstream.New(anon[k])
			_, err := js.KeyValue(ctx, wire.BucketFunctions)
			return err
		})
		if _, err := anon[k].Request("$SYS.REQ.SERVER.PING", nil, 200*time.Millisecond); err == nil {
			t.Fatalf("server %d: anonymous reached the system account", k+1)
		}
	}

	// Every platform stream gets three replicas.
	js, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	var low []string
	natstest.WaitFor(t, time.Minute, "every stream to have three replicas", func() bool {
		low = low[:0]
		lister := js.ListStreams(ctx)
		n := 0
		for info := range lister.Info() {
			n++
			if info.Config.Replicas != 3 {
				low = append(low, fmt.Sprintf("%s R%d", info.Config.Name, info.Config.Replicas))
			}
		}
		return lister.Err() == nil && n > 0 && len(low) == 0
	})

	// The gateway's credential works on every server.
	for k, u := range urls {
		gw := natstest.ConnectURL(t, u, nats.UserCredentials(platform.CredsFile(credsDir, platform.RoleGateway)),
			nats.CustomInboxPrefix(roles.GatewayInbox))
		if m, err := gw.Request("fn.orders", nil, 5*time.Second); err != nil || string(m.Data) != `"hi from orders"` {
			t.Fatalf("server %d: the gateway calls orders: %v", k+1, err)
		}
		gjs, _ := jetstream.New(gw)
		st, err := gjs.Stream(ctx, wire.StreamAsync)
		if err != nil || st.CachedInfo().Config.Replicas != 3 {
			t.Fatalf("server %d: the gateway reads %s: %v", k+1, wire.StreamAsync, err)
		}
	}

	// A second control plane joins (the servers hold the account: it
	// pushes nothing until it has read the platform's state) and the first
	// goes: the second serves alone.
	p2, err := platform.StartRemote(ctx, platform.RemoteConfig{URL: strings.Join(urls, ","), TrustDir: trustDir, CredsDir: credsDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p2.Close)
	p.Close()

	// A caller credential from the trust service works everywhere until
	// revoked, then no server lets it in.
	// A request sent while the first one's subscription is still known
	// on another server may be lost with it: ask until answered.
	var reply trust.CredsReply
	natstest.WaitFor(t, 20*time.Second, "the second control plane to answer", func() bool {
		m, err := admin.Request(roles.TrustCreds, []byte(`{"name":"shop","functions":["orders"]}`), time.Second)
		if err != nil {
			return false
		}
		if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Error != "" {
			t.Fatalf("caller credential: %s %v", m.Data, err)
		}
		return true
	})
	path := filepath.Join(t.TempDir(), "shop.creds")
	if err := os.WriteFile(path, []byte(reply.Creds), 0o600); err != nil {
		t.Fatal(err)
	}
	caller := func(u string) error {
		nc, err := nats.Connect(u, nats.UserCredentials(path), nats.CustomInboxPrefix(reply.InboxPrefix))
		if err != nil {
			return err
		}
		defer nc.Close()
		_, err = nc.Request("fn.orders", nil, 5*time.Second)
		return err
	}
	for k, u := range urls {
		if err := caller(u); err != nil {
			t.Fatalf("server %d: the caller before its revocation: %v", k+1, err)
		}
	}
	kv, err := js.KeyValue(ctx, wire.BucketCreds)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, reply.User)
	if err != nil {
		t.Fatal(err)
	}
	var rec trust.Record
	_ = json.Unmarshal(e.Value(), &rec)
	rec.Revoked = time.Now()
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, reply.User, b); err != nil {
		t.Fatal(err)
	}
	for k, u := range urls {
		natstest.WaitFor(t, 20*time.Second, fmt.Sprintf("server %d to refuse the revoked credential", k+1), func() bool {
			err := caller(u)
			return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthRevoked)
		})
	}
	// Anonymous callers still reach greet on every server.
	for k := range urls {
		natstest.WaitFor(t, 20*time.Second, fmt.Sprintf("anonymous on server %d to reach greet", k+1), func() bool {
			m, err := anon[k].Request("fn.greet", nil, 200*time.Millisecond)
			return err == nil && string(m.Data) == `"hi from greet"`
		})
	}
}

// startNATSCluster runs n nats-servers in this process from configuration
// files that include what trust.Authority.ServerConfig writes for the
// keys in trustDir (anonymous callers allowed), on random ports, and
// returns their client URLs.
func startNATSCluster(t *testing.T, dir, trustDir string, n int) []string {
	t.Helper()
	keys, err := trust.LoadKeys(trustDir)
	if err != nil {
		t.Fatal(err)
	}
	auth := trust.NewAuthority(keys, true)
	client, route := make([]int, n), make([]int, n)
	var routes, urls []string
	for k := range n {
		client[k], route[k] = natstest.FreePort(t), natstest.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", route[k]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[k]))
	}
	for k := range n {
		node := filepath.Join(dir, fmt.Sprintf("n%d", k+1))
		if err := os.MkdirAll(node, 0o700); err != nil {
			t.Fatal(err)
		}
		include, err := auth.ServerConfig(filepath.Join(node, "jwt"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(node, "switchyard.conf"), []byte(include), 0o600); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
include ./switchyard.conf
jetstream { store_dir: %q }
cluster {
  name: yard
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, k+1, client[k], filepath.Join(node, "js"), route[k], strings.Join(routes, ", "))
		natstest.RunConfig(t, node, conf)
	}
	return urls
}
