package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// callbackTarget records the callbacks it receives; the first hold
// requests get no answer until the test ends (a deliverer stuck mid-way).
type callbackTarget struct {
	mu    sync.Mutex
	got   []invocation.Record
	hold  int
	first chan struct{}
	srv   *httptest.Server
}

func newCallbackTarget(t *testing.T, hold int) *callbackTarget {
	c := &callbackTarget{hold: hold, first: make(chan struct{})}
	release := make(chan struct{})
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var rec invocation.Record
		_ = json.Unmarshal(body, &rec)
		c.mu.Lock()
		c.got = append(c.got, rec)
		n := len(c.got)
		c.mu.Unlock()
		if n == 1 {
			close(c.first)
		}
		if n <= c.hold {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(func() { close(release); c.srv.Close() })
	return c
}

func (c *callbackTarget) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// callbackEnv is a server with the platform and a function "double".
func callbackEnv(t *testing.T) (*natstest.Server, *invocation.Store) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "double"}, fn.Handle(func(_ context.Context, in struct{ N int }) (struct{ N int }, error) {
		return struct{ N int }{2 * in.N}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	js, _ := jetstream.New(nc)
	st, err := invocation.Open(context.Background(), js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func startGateway(t *testing.T, nc *nats.Conn, cfg Config) *Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.Addr = "127.0.0.1:0"
	g, err := New(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// TestCallbackDelivered: the gateway posts an async invocation's outcome
// to its callback URL once, with the invocation id, and acknowledges it.
func TestCallbackDelivered(t *testing.T) {
	s, st := callbackEnv(t)
	target := newCallbackTarget(t, 0)
	startGateway(t, natstest.Connect(t, s), Config{AllowPrivateCallbacks: true})
	rec, _, err := st.Submit(context.Background(), invocation.Submission{Function: "double", Body: []byte(`{"N":4}`), CallbackURL: target.srv.URL + "/done"})
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the callback", func() bool { return target.count() == 1 })
	if got := target.got[0]; got.ID != rec.ID || got.Status != invocation.Succeeded || string(got.Result) != `{"N":8}` {
		t.Fatalf("callback %+v", got)
	}
	waitCallbacksEmpty(t, natstest.Connect(t, s))
}

// TestCallbackSurvivesDelivererCrash: a gateway SIGKILLed in the middle of
// delivering a callback loses it to no one: another gateway delivers it.
func TestCallbackSurvivesDelivererCrash(t *testing.T) {
	s, st := callbackEnv(t)
	target := newCallbackTarget(t, 1)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperDeliverer$")
	child.Env = append(os.Environ(), "YARD_TEST_DELIVERER_NATS="+s.ClientURL())
	child.Stderr = os.Stderr
	// The child lives until killed, or until this process's end closes
	// its standard input.
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

	rec, _, err := st.Submit(context.Background(), invocation.Submission{Function: "double", Body: []byte(`{"N":5}`), CallbackURL: target.srv.URL + "/done"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-target.first: // the child is delivering, and stuck
	case <-time.After(20 * time.Second):
		t.Fatal("the deliverer never posted the callback")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	startGateway(t, natstest.Connect(t, s), Config{AllowPrivateCallbacks: true, CallbackAckWait: time.Second})
	natstest.WaitFor(t, 20*time.Second, "the callback delivered again", func() bool { return target.count() == 2 })
	if got := target.got[1]; got.ID != rec.ID || got.Status != invocation.Succeeded || string(got.Result) != `{"N":10}` {
		t.Fatalf("callback %+v", got)
	}
	waitCallbacksEmpty(t, natstest.Connect(t, s))
	if n := target.count(); n != 2 {
		t.Fatalf("%d deliveries, want 2", n)
	}
}

// TestHelperDeliverer is the gateway process TestCallbackSurvivesDelivererCrash
// kills; it does nothing in a normal run.
func TestHelperDeliverer(t *testing.T) {
	url := os.Getenv("YARD_TEST_DELIVERER_NATS")
	if url == "" {
		t.Skip("a helper process of TestCallbackSurvivesDelivererCrash")
	}
	nc := natstest.ConnectURL(t, url)
	startGateway(t, nc, Config{AllowPrivateCallbacks: true, CallbackAckWait: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed, or the parent is gone
}

func waitCallbacksEmpty(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, _ := jetstream.New(nc)
	natstest.WaitFor(t, 10*time.Second, "the delivered callback to leave "+wire.StreamCallbacks, func() bool {
		st, err := js.Stream(context.Background(), wire.StreamCallbacks)
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}
