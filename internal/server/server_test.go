package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
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
