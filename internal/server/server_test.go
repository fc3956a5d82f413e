package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func TestStart(t *testing.T) {
	ns, err := Start(Config{Port: -1, StoreDir: t.TempDir(), SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !ns.JetStreamEnabled() {
		t.Fatal("JetStream off")
	}
	// A body the gateway accepts fits, with its headers; a NATS caller
	// cannot send more than an HTTP caller.
	if got := nc.MaxPayload(); got != wire.MaxPayload || got < wire.MaxBodyBytes+16<<10 {
		t.Fatalf("max_payload %d, want %d", got, wire.MaxPayload)
	}
	if err := nc.Publish("x", make([]byte, wire.MaxPayload+1)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("a payload past the limit: %v", err)
	}
}

// TestAdoptGlobalData: data kept for the global account by a server without
// accounts moves to the account once, and is never moved over data the
// account has.
func TestAdoptGlobalData(t *testing.T) {
	dir := t.TempDir()
	g := filepath.Join(dir, "jetstream", "$G", "streams", "S")
	if err := os.MkdirAll(g, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := adoptGlobalData(dir, "ACC"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream", "ACC", "streams", "S")); err != nil {
		t.Fatalf("not moved: %v", err)
	}
	_ = os.MkdirAll(g, 0o700)
	if err := adoptGlobalData(dir, "ACC"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g); err != nil {
		t.Fatal("moved over the account's own data")
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(Config{Port: -1}); err == nil {
		t.Error("started without a StoreDir")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Config{Port: ln.Addr().(*net.TCPAddr).Port, StoreDir: t.TempDir()})
	var inUse *AddrInUseError
	if !errors.As(err, &inUse) || inUse.Addr != ln.Addr().String() {
		t.Fatalf("port in use: got %v", err)
	}
}

// TestClusterConfig: routes are parsed and given the route credentials,
// and a cluster node without a name, or with a bad route, is refused
// before anything starts.
func TestClusterConfig(t *testing.T) {
	c := &Cluster{Routes: []string{"nats://a:6222", "b:6222", " ", "nats-route://c:6222"}, User: "u", Password: "p w"}
	urls, err := c.RouteURLs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range urls {
		got = append(got, u.String())
	}
	want := []string{"nats://u:p%20w@a:6222", "nats://u:p%20w@b:6222", "nats-route://u:p%20w@c:6222"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for _, bad := range []string{"nats://a", "http://a:1", "nats://a:1/x", "::"} {
		if _, err := (&Cluster{Routes: []string{bad}}).RouteURLs(); err == nil {
			t.Errorf("route %q accepted", bad)
		}
	}
	if _, err := Start(Config{Port: -1, StoreDir: t.TempDir(), Cluster: &Cluster{Listen: "127.0.0.1:-1"}}); err == nil ||
		!strings.Contains(err.Error(), "needs a name") {
		t.Fatalf("a nameless node: %v", err)
	}
	if _, err := Start(Config{Port: -1, StoreDir: t.TempDir(), Name: "n1", Cluster: &Cluster{Listen: "nowhere"}}); err == nil ||
		!strings.Contains(err.Error(), "want host:port") {
		t.Fatalf("a bad listen address: %v", err)
	}
}
