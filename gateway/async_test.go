package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func (e *env) postAsync(name, body string, header map[string]string) response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/fn/"+name+"?async=1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.send(req)
}

func (e *env) waitRecord(id string) invocation.Record {
	e.t.Helper()
	var rec invocation.Record
	natstest.WaitFor(e.t, 20*time.Second, "invocation "+id+" to finish", func() bool {
		r := e.do(http.MethodGet, "/invocations/"+id, "", nil)
		if r.status != 200 {
			return false
		}
		if err := json.Unmarshal(r.body, &rec); err != nil {
			e.t.Fatal(err)
		}
		return rec.Status.Final()
	})
	return rec
}

func TestAsyncAccept(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	e.serve(fn.Config{Name: "hello"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		calls.Add(1)
		if p.Name == "Nobody" {
			return greeting{}, errors.New("boom")
		}
		return greeting{Message: "Hello, " + p.Name}, nil
	}, fn.WithRetry(2, 5*time.Millisecond)))

	r := e.postAsync("hello", validPerson, nil)
	var acc accepted
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil || acc.ID == "" ||
		acc.Status != invocation.Queued || r.header.Get("Location") != "/invocations/"+acc.ID || acc.StatusURL != r.header.Get("Location") {
		t.Fatalf("accept: %d %s %v", r.status, r.body, r.header)
	}
	rec := e.waitRecord(acc.ID)
	if rec.Status != invocation.Succeeded || string(rec.Result) != `{"message":"Hello, Ada"}` {
		t.Fatalf("record %+v", rec)
	}

	// Prefer: respond-async works the same.
	req, _ := http.NewRequest(http.MethodPost, e.base+"/fn/hello", strings.NewReader(validPerson))
	req.Header.Set("Prefer", "respond-async, wait=10")
	if r := e.send(req); r.status != http.StatusAccepted {
		t.Fatalf("Prefer: %d", r.status)
	}

	// The same checks as sync, before anything is queued.
	if r := e.postAsync("hello", `{"name":1}`, nil); r.status != http.StatusBadRequest {
		t.Errorf("invalid input: %d", r.status)
	}
	if r := e.postAsync("nobody", `{}`, nil); r.status != http.StatusNotFound {
		t.Errorf("unknown function: %d", r.status)
	}

	// A failing invocation ends dead, with its error.
	r = e.postAsync("hello", `{"name":"Nobody","address":{"city":"x"}}`, nil)
	_ = json.Unmarshal(r.body, &acc)
	if rec := e.waitRecord(acc.ID); rec.Status != invocation.Dead || rec.Attempts != 2 || rec.Error.Code != wire.CodeInternal {
		t.Fatalf("dead record %+v", rec)
	}
}

func TestAsyncIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	e.serve(fn.Config{Name: "hello"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		calls.Add(1)
		return greeting{Message: p.Name}, nil
	}))
	key := map[string]string{"Idempotency-Key": "charge-7"}
	var first, second accepted
	_ = json.Unmarshal(e.postAsync("hello", validPerson, key).body, &first)
	e.waitRecord(first.ID)
	r := e.postAsync("hello", validPerson, key)
	_ = json.Unmarshal(r.body, &second)
	if r.status != http.StatusAccepted || second.ID != first.ID || second.Status != invocation.Succeeded {
		t.Fatalf("same key, same body: %d %s", r.status, r.body)
	}
	if r := e.postAsync("hello", `{"name":"Bob","address":{"city":"x"}}`, key); r.status != http.StatusConflict || r.problem.Code != wire.CodeConflict {
		t.Fatalf("same key, other body: %d %s", r.status, r.body)
	}
	if r := e.postAsync("hello", validPerson, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}); r.status != http.StatusBadRequest {
		t.Fatalf("long key: %d", r.status)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
}

func TestAsyncCallbackURLChecked(t *testing.T) {
	e := newEnv(t)
	// Registered, but no instance runs: an accepted callback is never
	// delivered, so this test sends nothing beyond loopback.
	e.register(&registry.Spec{Name: "hello", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "x", Timeout: registry.Duration(time.Second)})
	for _, u := range []string{"http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://localhost/x", "ftp://example.com/x",
		"http://10.0.0.1/x", "http://[::1]/x", "not a url"} {
		for _, h := range []string{wire.HeaderCallbackURL, "X-Callback-Url"} {
			r := e.postAsync("hello", validPerson, map[string]string{h: u})
			if r.status != http.StatusBadRequest || r.problem.Code != wire.CodeInvalidArgument {
				t.Errorf("%s: %s accepted: %d %s", h, u, r.status, r.body)
			}
		}
	}
	if r := e.postAsync("hello", validPerson, map[string]string{wire.HeaderCallbackURL: "https://example.com/hook"}); r.status != http.StatusAccepted {
		t.Errorf("public callback refused: %d %s", r.status, r.body)
	}
}

func TestInvocationStatusErrors(t *testing.T) {
	e := newEnv(t)
	if r := e.do(http.MethodGet, "/invocations/unknownid", "", nil); r.status != http.StatusNotFound || r.problem.Code != wire.CodeNotFound {
		t.Errorf("unknown: %d", r.status)
	}
	for _, id := range []string{"a.b", "%2A", "a%20b", "a:b", "a%23b", "a,b", strings.Repeat("x", 65)} {
		if r := e.do(http.MethodGet, "/invocations/"+id, "", nil); r.status != http.StatusBadRequest {
			t.Errorf("%q: %d", id, r.status)
		}
	}
	if r := e.do(http.MethodPost, "/invocations/abc", "application/json", strings.NewReader("{}")); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.status)
	}
}

// TestAsyncQueueFull: a full work queue is 429 resource_exhausted with
// Retry-After, and nothing is queued.
func TestAsyncQueueFull(t *testing.T) {
	e := newEnv(t)
	e.register(&registry.Spec{Name: "backlog", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "h", Timeout: registry.Duration(time.Second)})
	// An operator's tighter limit on the work queue.
	js, _ := jetstream.New(e.nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, wire.StreamAsync)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes = 2048
	if st, err = js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var r response
	for k := 0; k < 100; k++ {
		if r = e.postAsync("backlog", `{"pad":"`+strings.Repeat("x", 200)+`"}`, nil); r.status != http.StatusAccepted {
			break
		}
	}
	if r.status != http.StatusTooManyRequests || r.problem.Code != wire.CodeResourceExhausted || r.header.Get("Retry-After") == "" {
		t.Fatalf("full queue: %d %s", r.status, r.body)
	}
	info, _ := st.Info(ctx)
	if again := e.postAsync("backlog", `{}`, nil); again.status != http.StatusTooManyRequests {
		t.Fatalf("second try: %d", again.status)
	}
	if now, _ := st.Info(ctx); now.State.Msgs != info.State.Msgs {
		t.Errorf("a refused invocation was queued: %d -> %d", info.State.Msgs, now.State.Msgs)
	}
}
