package server

import (
	"errors"
	"net"
	"testing"

	"github.com/nats-io/nats.go"
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
