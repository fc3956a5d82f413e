package natstest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// RunConfig runs a nats-server in this process from the configuration conf,
// written as nats-server.conf in dir (where the files it includes are), as
// a server one runs oneself would be; the test's cleanup stops it.
func RunConfig(t testing.TB, dir, conf string) (*natsserver.Server, *natsserver.Options) {
	t.Helper()
	path := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, conf)
	}
	opts.NoSigs = true
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(20 * time.Second) {
		t.Fatalf("%s: nats-server not ready", path)
	}
	return ns, opts
}
