package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// env is a gateway on real HTTP on loopback, in front of a real embedded
// NATS server with real function instances.
type env struct {
	t    *testing.T
	srv  *natstest.Server
	nc   *nats.Conn // the functions' connection
	gw   *Gateway
	base string // http://127.0.0.1:port
	addr string
	// key grants every function at a rate no test reaches; requests
	// carry it unless they say otherwise (sendAs).
	key string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	// Tests poll anonymously; only TestRateLimits tests the limits.
	return newEnvWith(t, Config{RetryAfter: 2 * time.Second, AnonymousRate: 1e6})
}

// newEnvWith is newEnv with a gateway configured by cfg (Addr aside).
func newEnvWith(t *testing.T, cfg Config) *env {
	t.Helper()
	s := natstest.Run(t)
	e := &env{t: t, srv: s, nc: natstest.Connect(t, s)}
	fntest.Platform(t, e.nc)
	e.key = e.newKey("tests", []string{"*"}, "1000000/s")
	gnc := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureProbe(ctx, js); err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	g, err := New(ctx, gnc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("gateway serve: %v", err)
		}
		g.Close()
	})
	e.gw, e.addr, e.base = g, ln.Addr().String(), "http://"+ln.Addr().String()
	return e
}

// serve starts a function instance and waits until the gateway knows it.
func (e *env) serve(cfg fn.Config, h *fn.Handler) *fn.Instance {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, e.nc, cfg, h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = inst.Stop(ctx)
	})
	hash := inst.Spec().SchemaHash
	natstest.WaitFor(e.t, 5*time.Second, "gateway to learn "+cfg.Name, func() bool {
		f, ok := e.gw.cache.get(cfg.Name)
		return ok && f.spec.SchemaHash == hash
	})
	return inst
}

// newKey creates an API key, and waits for the gateway (when running)
// to know it.
func (e *env) newKey(name string, functions []string, rate string, opts ...apikeys.Option) string {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key, rec, err := apikeys.Create(ctx, js, name, functions, rate, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.gw != nil {
		natstest.WaitFor(e.t, 2*time.Second, "gateway to learn key "+name, func() bool {
			_, ok := e.gw.keys.Lookup(rec.ID)
			return ok
		})
	}
	return key
}

// register writes a spec with no instance behind it.
func (e *env) register(spec *registry.Spec) {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := reg.Put(ctx, spec); err != nil {
		e.t.Fatal(err)
	}
	natstest.WaitFor(e.t, 5*time.Second, "gateway to learn "+spec.Name, func() bool {
		_, ok := e.gw.cache.get(spec.Name)
		return ok
	})
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	problem Problem
}

func (e *env) do(method, path, contentType string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.send(req)
}

func (e *env) post(name, body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/fn/"+name, "application/json", strings.NewReader(body))
}

// send sends req with the env's key, unless it has an Authorization
// header already.
func (e *env) send(req *http.Request) response {
	e.t.Helper()
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	return e.do1(req)
}

// sendAs sends req with key as its bearer token; "" sends it anonymously.
func (e *env) sendAs(req *http.Request, key string) response {
	e.t.Helper()
	req.Header.Del("Authorization")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return e.do1(req)
}

func (e *env) do1(req *http.Request) response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	return readResponse(e.t, resp)
}

func readResponse(t *testing.T, resp *http.Response) response {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("status %d with Content-Type %q, want application/problem+json; body %s", resp.StatusCode, ct, b)
		}
		if err := json.Unmarshal(b, &r.problem); err != nil {
			t.Fatalf("problem body %q: %v", b, err)
		}
		if r.problem.Status != resp.StatusCode || r.problem.Code.HTTPStatus() != resp.StatusCode ||
			r.problem.Type != ProblemTypePrefix+string(r.problem.Code) || r.problem.RequestID == "" {
			t.Fatalf("inconsistent problem %+v for status %d", r.problem, resp.StatusCode)
		}
	}
	return r
}

// raw sends bytes exactly as given, for paths an http.Client would fix.
func (e *env) raw(request string) response {
	e.t.Helper()
	resp := rawResponse(e.t, e.addr, request)
	defer resp.Body.Close()
	return readResponse(e.t, resp)
}

// rawStatus is raw for requests net/http itself refuses, whose answer is
// not a problem document.
func rawStatus(t *testing.T, addr, request string) int {
	t.Helper()
	resp := rawResponse(t, addr, request)
	resp.Body.Close()
	return resp.StatusCode
}

func rawResponse(t *testing.T, addr, request string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", request, err)
	}
	return resp
}

func rawPost(path, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, len(body), body)
}

func (r response) pointers() []string {
	var p []string
	for _, e := range r.problem.Errors {
		p = append(p, e.Pointer)
	}
	return p
}
