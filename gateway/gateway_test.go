package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type person struct {
	Name    string   `json:"name" jsonschema:"minLength=1,maxLength=20"`
	Age     int      `json:"age,omitempty" jsonschema:"minimum=0,maximum=150"`
	Tags    []string `json:"tags,omitempty" jsonschema:"maxItems=3"`
	Address address  `json:"address"`
}

type address struct {
	City string `json:"city" jsonschema:"minLength=1"`
	Zip  string `json:"zip,omitempty" jsonschema:"pattern=^[0-9]{5}$"`
}

type greeting struct {
	Message string `json:"message"`
}

func hello(ctx context.Context, p person) (greeting, error) {
	return greeting{Message: "Hello, " + p.Name + " of " + p.Address.City}, nil
}

const validPerson = `{"name":"Ada","address":{"city":"London"}}`

func TestInvoke(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))

	r := e.post("hello", validPerson)
	if r.status != http.StatusOK || string(r.body) != `{"message":"Hello, Ada of London"}` {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if r.header.Get("Content-Type") != "application/json" || r.header.Get(wire.HeaderRequestID) == "" {
		t.Errorf("headers %v", r.header)
	}

	// curl -d sends application/x-www-form-urlencoded; a missing type is
	// accepted too. Both bodies must still be JSON.
	for _, ct := range []string{"", "application/x-www-form-urlencoded", "application/json; charset=utf-8", "application/merge-patch+json"} {
		if r := e.do(http.MethodPost, "/fn/hello", ct, strings.NewReader(validPerson)); r.status != http.StatusOK {
			t.Errorf("Content-Type %q: got %d %s", ct, r.status, r.body)
		}
	}
}

func TestRequestIDTravels(t *testing.T) {
	e := newEnv(t)
	var seen atomic.Value
	e.serve(fn.Config{Name: "hello"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		seen.Store(fn.RequestID(ctx))
		return greeting{Message: "hi"}, nil
	}))
	req, _ := http.NewRequest(http.MethodPost, e.base+"/fn/hello", strings.NewReader(validPerson))
	req.Header.Set(wire.HeaderRequestID, "client-id-123")
	r := e.send(req)
	if r.status != 200 || r.header.Get(wire.HeaderRequestID) != "client-id-123" || seen.Load() != "client-id-123" {
		t.Errorf("status %d, header %q, handler saw %v", r.status, r.header.Get(wire.HeaderRequestID), seen.Load())
	}

	req, _ = http.NewRequest(http.MethodPost, e.base+"/fn/hello", strings.NewReader(validPerson))
	req.Header.Set(wire.HeaderRequestID, "bad id with spaces")
	if r := e.send(req); r.status != http.StatusBadRequest || r.problem.Code != wire.CodeInvalidArgument {
		t.Errorf("bad request id: got %d %s", r.status, r.body)
	}
}

// TestBadNames checks that no malformed name reaches NATS: every request
// is answered 400 and nothing is published on any subject.
func TestBadNames(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))

	spy := natstest.Connect(t, e.srv)
	var published atomic.Int64
	for _, subj := range []string{"fn.>", "yard.gw.>"} {
		sub, err := spy.Subscribe(subj, func(m *nats.Msg) { published.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	paths := []string{
		"/fn/hello.v1", "/fn/a.b", "/fn/.", "/fn/%2E", "/fn/hello%2Ev1", "/fn/%2e%2e",
		"/fn/*", "/fn/%2A", "/fn/>", "/fn/%3E", "/fn/hello.*", "/fn/hello.>",
		"/fn/hel%20lo", "/fn/hello%0D%0AX-Injected:%201", "/fn/hello%0A", "/fn/hello%00",
		"/fn/" + strings.Repeat("a", 64), "/fn/Hello", "/fn/HELLO", "/fn/h%C3%A9llo", "/fn/%E2%80%8Bhello",
		"/fn/hello%2Fworld", "/fn/hello/world", "/fn/-hello", "/fn/1hello", "/fn/hello_x",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			r := e.raw(rawPost(p, validPerson))
			if r.status != http.StatusBadRequest || r.problem.Code != wire.CodeInvalidArgument {
				t.Fatalf("got %d %s, want 400 invalid_argument", r.status, r.body)
			}
		})
	}
	// Broken escapes and a raw space are not HTTP: net/http refuses them
	// (plain 400) before the gateway sees them, which is just as safe.
	for _, p := range []string{"/fn/%", "/fn/%zz", "/fn/a b"} {
		resp := rawStatus(t, e.addr, rawPost(p, validPerson))
		if resp != http.StatusBadRequest {
			t.Errorf("%q: got %d, want 400", p, resp)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := published.Load(); n != 0 {
		t.Fatalf("%d messages reached fn.> or yard.gw.> for malformed names", n)
	}
	// The spy does see a good request, so the check above can fail.
	if r := e.post("hello", validPerson); r.status != 200 {
		t.Fatalf("good request: %d", r.status)
	}
	natstest.WaitFor(t, 5*time.Second, "spy to see the good request", func() bool { return published.Load() == 1 })
}

func TestNotFoundAndUnavailable(t *testing.T) {
	e := newEnv(t)
	if r := e.post("nobody", `{}`); r.status != http.StatusNotFound || r.problem.Code != wire.CodeNotFound {
		t.Errorf("unknown function: got %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/fn/nobody", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET unknown function: got %d", r.status)
	}
	if r := e.do(http.MethodGet, "/nowhere", "", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown route: got %d", r.status)
	}

	// Known to the registry, but no instance runs.
	e.register(&registry.Spec{Name: "idle", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "x", Timeout: registry.Duration(time.Second)})
	r := e.post("idle", `{}`)
	if r.status != http.StatusServiceUnavailable || r.problem.Code != wire.CodeUnavailable {
		t.Fatalf("no instance: got %d %s", r.status, r.body)
	}
	if r.header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After = %q, want 2", r.header.Get("Retry-After"))
	}
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	defer close(release)
	// One handler honours its context, one ignores it: both end in 504.
	e.serve(fn.Config{Name: "polite"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		<-ctx.Done()
		return greeting{}, ctx.Err()
	}, fn.WithTimeout(150*time.Millisecond)))
	e.serve(fn.Config{Name: "stubborn"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		<-release
		return greeting{Message: "late"}, nil
	}, fn.WithTimeout(150*time.Millisecond)))
	for _, name := range []string{"polite", "stubborn"} {
		r := e.post(name, validPerson)
		if r.status != http.StatusGatewayTimeout || r.problem.Code != wire.CodeDeadlineExceeded {
			t.Errorf("%s: got %d %s, want 504", name, r.status, r.body)
		}
	}
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))
	tests := []struct {
		name, body string
		pointer    string // "-" for any
	}{
		{"empty", ``, "-"},
		{"truncated", `{"name":"Ada","address":{"city":"Lon`, "-"},
		{"trailing data", validPerson + `{}`, "-"},
		{"trailing garbage", validPerson + ` x`, "-"},
		{"duplicate key", `{"name":"Ada","name":"Bob","address":{"city":"London"}}`, "-"},
		{"nested duplicate key", `{"name":"Ada","address":{"city":"a","city":"b"}}`, "-"},
		{"10000-deep", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "-"},
		{"10000-deep objects", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), "-"},
		{"invalid UTF-8 value", "{\"name\":\"A\xffa\",\"address\":{\"city\":\"London\"}}", "-"},
		{"invalid UTF-8 key", "{\"n\xc3\":\"Ada\",\"address\":{\"city\":\"London\"}}", "-"},
		{"not an object", `"Ada"`, ""},
		{"missing required", `{"address":{}}`, "-"},
		{"wrong type", `{"name":42,"address":{"city":"London"}}`, "/name"},
		{"out of range", `{"name":"Ada","age":151,"address":{"city":"London"}}`, "/age"},
		{"negative", `{"name":"Ada","age":-1,"address":{"city":"London"}}`, "/age"},
		{"too long", `{"name":"` + strings.Repeat("a", 21) + `","address":{"city":"London"}}`, "/name"},
		{"pattern", `{"name":"Ada","address":{"city":"London","zip":"ABCDE"}}`, "/address/zip"},
		{"unknown field", `{"name":"Ada","address":{"city":"London"},"admin":true}`, "/admin"},
		{"too many items", `{"name":"Ada","tags":["a","b","c","d"],"address":{"city":"London"}}`, "/tags"},
		{"item type", `{"name":"Ada","tags":["a",1],"address":{"city":"London"}}`, "/tags/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post("hello", tt.body)
			if r.status != http.StatusBadRequest || r.problem.Code != wire.CodeInvalidArgument {
				t.Fatalf("got %d %s, want 400", r.status, r.body)
			}
			if len(r.problem.Errors) == 0 {
				t.Fatalf("no field errors in %s", r.body)
			}
			if tt.pointer != "-" && !slices.Contains(r.pointers(), tt.pointer) {
				t.Errorf("pointers %v, want %s", r.pointers(), tt.pointer)
			}
		})
	}

	// Thousands of bad fields make a bounded answer, not a huge one.
	var b strings.Builder
	b.WriteString(`{"name":"Ada","address":{"city":"x"}`)
	for i := range 5000 {
		fmt.Fprintf(&b, `,"x%d":1`, i)
	}
	b.WriteString("}")
	if r := e.post("hello", b.String()); r.status != 400 || len(r.problem.Errors) != wire.MaxFieldErrors+1 {
		t.Errorf("5000 unknown fields: %d with %d errors", r.status, len(r.problem.Errors))
	}

	// Every offending field is listed, not just the first.
	r := e.post("hello", `{"age":200,"tags":[1],"address":{"zip":"x"},"extra":1}`)
	want := []string{"/name", "/age", "/tags/0", "/address/city", "/address/zip", "/extra"}
	for _, p := range want {
		if !slices.Contains(r.pointers(), p) {
			t.Errorf("missing %s in %v", p, r.pointers())
		}
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))
	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	if r := e.post("hello", big); r.status != http.StatusRequestEntityTooLarge || r.problem.Code != wire.CodePayloadTooLarge {
		t.Errorf("Content-Length over the limit: got %d", r.status)
	}
	// Chunked, so the size is only known while reading.
	req, _ := http.NewRequest(http.MethodPost, e.base+"/fn/hello", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	if r := e.send(req); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked over the limit: got %d", r.status)
	}
	// Exactly at the limit is read in full (and then fails validation).
	exact := `{"name":"` + strings.Repeat("a", 1<<20-11) + `"}`
	if len(exact) != 1<<20 {
		t.Fatalf("len %d", len(exact))
	}
	if r := e.post("hello", exact); r.status != http.StatusBadRequest {
		t.Errorf("at the limit: got %d", r.status)
	}
}

func TestMediaTypeAndMethods(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))
	for _, ct := range []string{"text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1", "%%%"} {
		r := e.do(http.MethodPost, "/fn/hello", ct, strings.NewReader(validPerson))
		if r.status != http.StatusUnsupportedMediaType || r.problem.Code != wire.CodeUnsupportedMediaType {
			t.Errorf("Content-Type %q: got %d", ct, r.status)
		}
	}
	for _, m := range []struct{ method, path, allow string }{
		{http.MethodPut, "/fn/hello", "GET, HEAD, POST"},
		{http.MethodDelete, "/fn/hello", "GET, HEAD, POST"},
		{http.MethodPost, "/fn", "GET, HEAD"},
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodPost, "/readyz", "GET, HEAD"},
	} {
		r := e.do(m.method, m.path, "application/json", strings.NewReader("{}"))
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != m.allow {
			t.Errorf("%s %s: got %d Allow %q", m.method, m.path, r.status, r.header.Get("Allow"))
		}
	}
}

func TestPanicAndHiddenErrors(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int64
	e.serve(fn.Config{Name: "flaky"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		switch calls.Add(1) {
		case 1:
			panic("boom: secret state")
		case 2:
			return greeting{}, errors.New("db password=hunter2 refused")
		case 3:
			return greeting{}, fn.NotFound("no such person %s", p.Name)
		}
		return greeting{Message: "ok"}, nil
	}))
	for i, want := range []struct {
		status int
		code   wire.Code
	}{{500, wire.CodeInternal}, {500, wire.CodeInternal}, {404, wire.CodeNotFound}, {200, ""}} {
		r := e.post("flaky", validPerson)
		if r.status != want.status || r.problem.Code != want.code {
			t.Fatalf("call %d: got %d %s, want %d", i+1, r.status, r.body, want.status)
		}
		if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "hunter2") {
			t.Fatalf("call %d leaked the error: %s", i+1, r.body)
		}
	}
}

func TestListAndHealth(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello", Description: "says hello"}, fn.Handle(hello))
	e.serve(fn.Config{Name: "alpha"}, fn.Handle(hello))

	r := e.do(http.MethodGet, "/fn", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"input_schema"`) {
		t.Fatalf("GET /fn: %d %s", r.status, r.body)
	}
	if i, j := strings.Index(string(r.body), `"alpha"`), strings.Index(string(r.body), `"hello"`); i < 0 || j < i {
		t.Errorf("GET /fn not sorted by name: %s", r.body)
	}
	r = e.do(http.MethodGet, "/fn/hello", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"says hello"`) {
		t.Errorf("GET /fn/hello: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	e.srv.Shutdown()
	natstest.WaitFor(t, 5*time.Second, "readyz to fail", func() bool {
		return e.do(http.MethodGet, "/readyz", "", nil).status == http.StatusServiceUnavailable
	})
}

// TestSchemaRefresh restarts a function with a changed schema: the gateway
// must validate against the new one without a restart of its own.
func TestSchemaRefresh(t *testing.T) {
	e := newEnv(t)
	v1 := e.serve(fn.Config{Name: "hello"}, fn.Handle(hello))
	if r := e.post("hello", validPerson); r.status != 200 {
		t.Fatalf("v1: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	type strict struct {
		person
		Email string `json:"email" jsonschema:"format=email"`
	}
	start := time.Now()
	_, err := fn.Start(ctx, e.nc, fn.Config{Name: "hello"}, fn.Handle(func(ctx context.Context, s strict) (greeting, error) {
		return greeting{Message: s.Email}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	// The instance refuses the old input at once; wait for the gateway's
	// own check (its message names the function) to refuse it too.
	natstest.WaitFor(t, 2*time.Second, "gateway to require email", func() bool {
		r := e.post("hello", validPerson)
		return r.status == http.StatusBadRequest && slices.Contains(r.pointers(), "/email") &&
			r.problem.Detail == "input does not match the schema of hello"
	})
	t.Logf("new schema enforced %s after the instance started", time.Since(start).Round(time.Millisecond))
	if r := e.post("hello", `{"name":"Ada","address":{"city":"London"},"email":"ada@example.org"}`); r.status != 200 {
		t.Errorf("v2 valid input: %d %s", r.status, r.body)
	}
}

// TestDeadlineHeader: the gateway sends Yard-Deadline at the function's
// timeout. A spy reads the header itself, so the instance's own timeout
// cannot make the test pass.
func TestDeadlineHeader(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(hello, fn.WithTimeout(3*time.Second)))
	spy := natstest.Connect(t, e.srv)
	headers := make(chan nats.Header, 1)
	// Instances serve yard.gw.<name> too, so the gateway sends there.
	sub, err := spy.Subscribe("yard.gw.hello", func(m *nats.Msg) {
		select {
		case headers <- m.Header:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = spy.Flush()
	before := time.Now()
	if r := e.post("hello", validPerson); r.status != 200 {
		t.Fatal(r.status)
	}
	var h nats.Header
	select {
	case h = <-headers:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached yard.gw.hello")
	}
	d, err := time.Parse(time.RFC3339Nano, h.Get(wire.HeaderDeadline))
	if err != nil {
		t.Fatalf("Yard-Deadline %q: %v", h.Get(wire.HeaderDeadline), err)
	}
	if d.Before(before.Add(3*time.Second)) || d.After(time.Now().Add(3*time.Second)) {
		t.Errorf("deadline %s is not the 3s timeout from %s", d, before)
	}
	if h.Get(wire.HeaderRequestID) == "" {
		t.Error("no request id on the NATS request")
	}
	// It says which schemas it checked the input against.
	if got := h.Get(wire.HeaderSchemaHash); got == "" || len(got) < 16 {
		t.Errorf("Yard-Schema-Hash %q: want the spec's schema hash", got)
	}
}
