// Package natstest runs a real, embedded NATS server with JetStream for
// tests: a random port, storage in t.TempDir(), shut down by t.Cleanup.
package natstest

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/server"
)

// Server is a running test server.
type Server struct {
	*natsserver.Server
	StoreDir string
}

// Run starts a JetStream-enabled server on a random loopback port.
func Run(t testing.TB) *Server {
	t.Helper()
	return RunIn(t, t.TempDir())
}

// RunIn starts a server on a random port that stores its data in dir, so a
// test can stop a server and start another on the same data.
func RunIn(t testing.TB, dir string) *Server {
	t.Helper()
	return run(t, server.Config{StoreDir: dir})
}

// RunWithUsers starts a server that accepts only users, each with its own
// permissions.
func RunWithUsers(t testing.TB, users []*natsserver.User) *Server {
	t.Helper()
	return run(t, server.Config{StoreDir: t.TempDir(), Users: users})
}

func run(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	cfg.Port, cfg.ReadyTimeout, cfg.Leaf = -1, 20*time.Second, "127.0.0.1:-1"
	ns, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("natstest: start server: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &Server{Server: ns, StoreDir: cfg.StoreDir}
}

// LeafURL is where the server takes leaf node connections (an agent's
// activator).
func (s *Server) LeafURL() string { return server.LeafURL(s.Server) }

// Connect opens a client connection that the test's cleanup closes.
func Connect(t testing.TB, s *Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return ConnectURL(t, s.ClientURL(), opts...)
}

// WaitFor polls cond every few milliseconds until it is true or the
// deadline passes, and fails the test with msg then.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ConnectURL opens a client connection to url that the test's cleanup
// closes.
func ConnectURL(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// FreePort is a loopback TCP port that was free a moment ago, for a
// process under test that must be told its port.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Buffer collects a process's output while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Denials records the permission violations the server reports to a
// connection, for tests that show an identity is refused something.
type Denials struct {
	mu   sync.Mutex
	errs []string
}

// Option installs the recorder as the connection's error handler.
func (d *Denials) Option() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			d.mu.Lock()
			d.errs = append(d.errs, err.Error())
			d.mu.Unlock()
		}
	})
}

// Has reports whether a violation naming subject (or a subject that
// starts with it) was reported.
func (d *Denials) Has(subject string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.errs {
		if strings.Contains(e, `"`+subject) || strings.HasPrefix(subject, "for ") && strings.Contains(e, subject) {
			return true
		}
	}
	return false
}

// Wait fails the test unless a violation naming subject is reported soon.
func (d *Denials) Wait(t testing.TB, subject string) {
	t.Helper()
	WaitFor(t, 5*time.Second, "a permissions violation on "+subject, func() bool { return d.Has(subject) })
}

// WaitPublish is Wait for a refused publish, told apart from a refused
// subscription to the same subject.
func (d *Denials) WaitPublish(t testing.TB, subject string) {
	t.Helper()
	WaitFor(t, 5*time.Second, "a publish violation on "+subject, func() bool { return d.Has(`for Publish to "` + subject) })
}
