package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// serveAccess starts function name with the access policy given, answering
// like hello.
func (e *env) serveAccess(name, access string) {
	e.t.Helper()
	e.serve(fn.Config{Name: name, Access: access}, fn.Handle(hello))
}

// req builds a request to the env's gateway.
func (e *env) req(method, path, body string) *http.Request {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

func (e *env) js() jetstream.JetStream {
	e.t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return js
}

func wantProblem(t *testing.T, what string, r response, status int, code wire.Code) {
	t.Helper()
	if r.status != status || r.problem.Code != code {
		t.Fatalf("%s: got %d %s, want %d %s", what, r.status, r.body, status, code)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: WWW-Authenticate = %q", what, r.header.Get("WWW-Authenticate"))
	}
}

// TestAuthentication walks the chain on an authenticated function: no
// credentials, malformed, unknown, wrong-secret and foreign credentials
// are 401 with a challenge; a key without the function is 403; with it,
// 200. A public function answers everyone.
func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("orders", registry.AccessAuthenticated)
	e.serveAccess("greet", registry.AccessPublic)
	shop := e.newKey("shop", []string{"orders"}, "")
	other := e.newKey("other", []string{"greet", "inventory"}, "")
	id, _, _ := parseKey(shop)

	wantProblem(t, "anonymous", e.sendAs(e.req("POST", "/fn/orders", validPerson), ""), 401, wire.CodeUnauthenticated)
	for name, key := range map[string]string{
		"malformed":    "yk_short",
		"unknown":      apikeys.Prefix + "zzzzzzzzzzzz_" + strings.Repeat("a", apikeys.SecretLen),
		"wrong secret": apikeys.Prefix + id + "_" + strings.Repeat("a", apikeys.SecretLen),
		"a token":      "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
	} {
		r := e.sendAs(e.req("POST", "/fn/orders", validPerson), key)
		wantProblem(t, name, r, 401, wire.CodeUnauthenticated)
		if !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s: WWW-Authenticate = %q", name, r.header.Get("WWW-Authenticate"))
		}
		// A bad credential is refused even where none is needed.
		wantProblem(t, name+" on a public function", e.sendAs(e.req("POST", "/fn/greet", validPerson), key), 401, wire.CodeUnauthenticated)
	}
	basic := e.req("POST", "/fn/orders", validPerson)
	basic.Header.Set("Authorization", "Basic dXNlcjpwdw==")
	wantProblem(t, "basic", e.send(basic), 401, wire.CodeUnauthenticated)
	two := e.req("POST", "/fn/orders", validPerson)
	two.Header.Add("Authorization", "Bearer "+shop)
	two.Header.Add("Authorization", "Bearer "+shop)
	wantProblem(t, "two headers", e.send(two), 401, wire.CodeUnauthenticated)

	wantProblem(t, "not granted", e.sendAs(e.req("POST", "/fn/orders", validPerson), other), 403, wire.CodePermissionDenied)
	wantProblem(t, "not granted, GET", e.sendAs(e.req("GET", "/fn/orders", ""), other), 403, wire.CodePermissionDenied)
	wantProblem(t, "anonymous, GET", e.sendAs(e.req("GET", "/fn/orders", ""), ""), 401, wire.CodeUnauthenticated)
	if r := e.sendAs(e.req("POST", "/fn/orders", validPerson), shop); r.status != 200 {
		t.Fatalf("granted: %d %s", r.status, r.body)
	}
	if r := e.sendAs(e.req("GET", "/fn/orders", ""), shop); r.status != 200 {
		t.Fatalf("granted, GET: %d %s", r.status, r.body)
	}
	// "bearer" is case-insensitive (RFC 7235).
	lower := e.req("POST", "/fn/orders", validPerson)
	lower.Header.Set("Authorization", "bearer "+shop)
	if r := e.send(lower); r.status != 200 {
		t.Fatalf("lower-case scheme: %d %s", r.status, r.body)
	}
	for _, key := range []string{"", shop, other} {
		if r := e.sendAs(e.req("POST", "/fn/greet", validPerson), key); r.status != 200 {
			t.Fatalf("public with %q: %d %s", key, r.status, r.body)
		}
	}
}

// TestRevocationReachesEveryGateway: a revoked key is refused within 2 s
// by the gateway under test and by a second one on the same NATS.
func TestRevocationReachesEveryGateway(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("orders", registry.AccessAuthenticated)
	key := e.newKey("shop", []string{"orders"}, "")
	other := newGatewayOn(t, e)
	for _, base := range []string{e.base, other} {
		r := e.sendAs(mustReq(t, "POST", base+"/fn/orders", validPerson), key)
		if r.status != 200 {
			t.Fatalf("%s before revocation: %d %s", base, r.status, r.body)
		}
	}
	id, _, _ := parseKey(key)
	if _, err := apikeys.Revoke(context.Background(), e.js(), id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, base := range []string{e.base, other} {
		natstest.WaitFor(t, 2*time.Second-time.Since(start), base+" to refuse the revoked key", func() bool {
			return e.sendAs(mustReq(t, "POST", base+"/fn/orders", validPerson), key).status == 401
		})
	}
	r := e.sendAs(mustReq(t, "POST", other+"/fn/orders", validPerson), key)
	wantProblem(t, "revoked", r, 401, wire.CodeUnauthenticated)
	if !strings.Contains(r.problem.Detail, "revoked") {
		t.Errorf("detail %q", r.problem.Detail)
	}
}

func mustReq(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	return r
}

// newGatewayOn serves a second gateway on e's NATS server and returns its
// base URL.
func newGatewayOn(t *testing.T, e *env) string {
	t.Helper()
	g := startGateway(t, natstest.Connect(t, e.srv), Config{})
	ln, err := g.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// TestInternalIsNotFound: an internal function does not exist over HTTP,
// for anyone, key with "*" included: POST and GET answer exactly as for an
// unknown function, and no listing shows it.
func TestInternalIsNotFound(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("payments", registry.AccessInternal)
	for _, key := range []string{"", e.key} {
		for _, method := range []string{"POST", "GET"} {
			body := ""
			if method == "POST" {
				body = validPerson
			}
			got := e.sendAs(e.req(method, "/fn/payments", body), key)
			unknown := e.sendAs(e.req(method, "/fn/paymentz", body), key)
			wantProblem(t, method+" internal", got, 404, wire.CodeNotFound)
			if strings.ReplaceAll(got.problem.Detail, "payments", "paymentz") != unknown.problem.Detail ||
				got.problem.Title != unknown.problem.Title || got.problem.Type != unknown.problem.Type {
				t.Errorf("%s: internal %+v, unknown %+v", method, got.problem, unknown.problem)
			}
		}
		if r := e.sendAs(e.req("GET", "/fn", ""), key); strings.Contains(string(r.body), "payments") {
			t.Errorf("GET /fn lists an internal function: %s", r.body)
		}
	}
}

func listed(t *testing.T, r response) []string {
	t.Helper()
	var out struct {
		Functions []struct {
			Name string `json:"name"`
		} `json:"functions"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
		t.Fatalf("GET /fn: %d %s", r.status, r.body)
	}
	var names []string
	for _, f := range out.Functions {
		names = append(names, f.Name)
	}
	return names
}

// TestListShowsWhatOneMayCall: GET /fn lists public functions for
// everyone, authenticated ones only to whom they are granted, internal
// ones to nobody.
func TestListShowsWhatOneMayCall(t *testing.T) {
	e := newEnv(t)
	for name, access := range map[string]string{"greet": registry.AccessPublic, "orders": registry.AccessAuthenticated,
		"stock": "", "payments": registry.AccessInternal} {
		e.register(&registry.Spec{Name: name, Access: access, InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`), SchemaHash: name, Timeout: registry.Duration(time.Second)})
	}
	shop := e.newKey("shop", []string{"orders"}, "")
	for key, want := range map[string][]string{
		"":    {"greet"},
		shop:  {"greet", "orders"},
		e.key: {"greet", "orders", "stock"},
	} {
		if got := listed(t, e.sendAs(e.req("GET", "/fn", ""), key)); !slices.Equal(got, want) {
			t.Errorf("key %.10q: GET /fn lists %v, want %v", key, got, want)
		}
	}
}

// TestEnvValuesNeverServed: GET /fn/{name} and GET /fn name a function's
// environment variables but never show their values.
func TestEnvValuesNeverServed(t *testing.T) {
	e := newEnv(t)
	e.register(&registry.Spec{Name: "billing", Access: registry.AccessPublic, InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "x", Timeout: registry.Duration(time.Second), Env: map[string]string{"DB_PASSWORD": "hunter2-secret", "REGION": "eu-west-9"}})
	for _, key := range []string{"", e.key} {
		for _, path := range []string{"/fn/billing", "/fn"} {
			r := e.sendAs(e.req("GET", path, ""), key)
			body := string(r.body)
			if r.status != 200 || strings.Contains(body, "hunter2") || strings.Contains(body, "eu-west-9") || strings.Contains(body, `"env":`) ||
				!strings.Contains(body, `"env_names":["DB_PASSWORD","REGION"]`) {
				t.Errorf("GET %s: %d %s", path, r.status, body)
			}
		}
	}
}

// TestRateLimits: anonymous callers are limited per address, keys per key
// (their own rate, or the default); over the limit is 429 with a
// Retry-After from the bucket, and one key's flood leaves another's alone.
func TestRateLimits(t *testing.T) {
	e := newEnvWith(t, Config{AnonymousRate: 0.2, AnonymousBurst: 2, PrincipalRate: 0.5, PrincipalBurst: 3})
	e.serveAccess("greet", registry.AccessPublic)
	slow := e.newKey("slow", []string{"greet"}, "6/m") // 0.1/s, burst 1
	dflt := e.newKey("default", []string{"greet"}, "")
	calls := func(key string, n int) []response {
		var out []response
		for range n {
			out = append(out, e.sendAs(e.req("POST", "/fn/greet", validPerson), key))
		}
		return out
	}
	check := func(what string, rs []response, ok int, minWait int) {
		t.Helper()
		for i, r := range rs {
			if i < ok {
				if r.status != 200 {
					t.Fatalf("%s: request %d: %d %s", what, i, r.status, r.body)
				}
				continue
			}
			wantProblem(t, what, r, 429, wire.CodeResourceExhausted)
			secs, err := strconv.Atoi(r.header.Get("Retry-After"))
			if r.problem.Reason != ReasonRateLimited || err != nil || secs < minWait {
				t.Fatalf("%s: reason %q, Retry-After %q, want at least %d", what, r.problem.Reason, r.header.Get("Retry-After"), minWait)
			}
		}
	}
	check("anonymous", calls("", 3), 2, 4)    // 0.2/s: a token every 5 s
	check("slow key", calls(slow, 2), 1, 9)   // 0.1/s: every 10 s
	check("default", calls(dflt, 4), 3, 1)    // 0.5/s: every 2 s
	check("big key", calls(e.key, 20), 20, 0) // its own, large rate
}

// TestRefusedCredentialsLimited: refused credentials spend their
// address's failure bucket (the anonymous rate); once it is empty, a
// bearer token is answered 429 before its signature is checked, while API
// keys (cheap to check) and calls without credentials still get in.
func TestRefusedCredentialsLimited(t *testing.T) {
	e := newEnvWith(t, Config{AnonymousRate: 0.2, AnonymousBurst: 2})
	e.serveAccess("greet", registry.AccessPublic)
	bad := "yk_" + strings.Repeat("0", 12) + "_" + strings.Repeat("A", 43)
	for i := range 2 {
		wantProblem(t, "bad key "+strconv.Itoa(i), e.sendAs(e.req("POST", "/fn/greet", validPerson), bad), 401, wire.CodeUnauthenticated)
	}
	// A token (not an API key) waits: checking it costs a signature.
	r := e.sendAs(e.req("POST", "/fn/greet", validPerson), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
	wantProblem(t, "a token after two refusals", r, 429, wire.CodeResourceExhausted)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 || r.problem.Reason != ReasonRateLimited {
		t.Fatalf("after two refusals: Retry-After %q, reason %q", r.header.Get("Retry-After"), r.problem.Reason)
	}
	// A good API key from the same address still gets in (a neighbour
	// guessing keys does not lock it out); bad ones keep getting 401.
	if r := e.sendAs(e.req("POST", "/fn/greet", validPerson), e.key); r.status != 200 {
		t.Fatalf("a good key after the refusals: %d %s", r.status, r.body)
	}
	wantProblem(t, "a bad key after the refusals", e.sendAs(e.req("POST", "/fn/greet", validPerson), bad), 401, wire.CodeUnauthenticated)
	if r := e.sendAs(e.req("POST", "/fn/greet", validPerson), ""); r.status != 200 {
		t.Fatalf("without credentials: %d %s", r.status, r.body)
	}
}

// TestLimiterMapBounded: a flood of identities never keeps more than
// MaxLimiters buckets.
func TestLimiterMapBounded(t *testing.T) {
	l := newRateLimiters(100)
	now := time.Now()
	l.now = func() time.Time { return now }
	for i := range 10000 {
		l.allow("ip:10.0.0."+strconv.Itoa(i), 1, 1)
		if n := l.len(); n > 100 {
			t.Fatalf("%d buckets after %d identities", n, i+1)
		}
	}
	// Idle buckets go first: with time passing, the active one survives.
	l.allow("ip:busy", 1, 1)
	for i := range 300 {
		now = now.Add(10 * time.Millisecond)
		if i%10 == 0 {
			l.allow("ip:busy", 1, 1)
		}
		l.allow("ip:other"+strconv.Itoa(i), 1000, 1)
	}
	if d := l.allow("ip:busy", 1, 1); d == 0 {
		t.Error("the busy bucket was dropped while busy")
	}
}

// TestAsyncResultsBelongToTheirCaller: an invocation accepted for a key is
// readable by that key only; others (another key, anonymous) get the 404 of
// an unknown id. One accepted anonymously is readable by anyone with the
// id. The same Idempotency-Key from two keys makes two invocations.
func TestAsyncResultsBelongToTheirCaller(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("hello", registry.AccessAuthenticated)
	e.serveAccess("greet", registry.AccessPublic)
	alice := e.newKey("alice", []string{"hello", "greet"}, "")
	bob := e.newKey("bob", []string{"hello", "greet"}, "")
	accept := func(key, name string, header map[string]string) string {
		t.Helper()
		req := e.req("POST", "/fn/"+name+"?async=1", validPerson)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		r := e.sendAs(req, key)
		var acc accepted
		if r.status != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil {
			t.Fatalf("accept: %d %s", r.status, r.body)
		}
		return acc.ID
	}
	read := func(key, id string) response {
		return e.sendAs(e.req("GET", "/invocations/"+id, ""), key)
	}
	finished := func(key, id string) {
		t.Helper()
		natstest.WaitFor(t, 10*time.Second, "invocation "+id, func() bool {
			r := read(key, id)
			var rec invocation.Record
			return r.status == 200 && json.Unmarshal(r.body, &rec) == nil && rec.Status == invocation.Succeeded
		})
	}

	for _, header := range []map[string]string{nil, {"Idempotency-Key": "order-7"}} {
		mine := accept(alice, "hello", header)
		finished(alice, mine)
		unknown := read(bob, "o0123456789abcdef0123456789abcdef0123456789-1")
		for who, key := range map[string]string{"bob": bob, "anonymous": ""} {
			r := read(key, mine)
			wantProblem(t, who+" reading alice's", r, 404, wire.CodeNotFound)
			if strings.ReplaceAll(r.problem.Detail, mine, "x") != strings.ReplaceAll(unknown.problem.Detail, "o0123456789abcdef0123456789abcdef0123456789-1", "x") {
				t.Errorf("%s: %q differs from an unknown id's %q", who, r.problem.Detail, unknown.problem.Detail)
			}
		}
		if theirs := accept(bob, "hello", header); theirs == mine {
			t.Fatalf("bob's invocation has alice's id %s", mine)
		}
	}

	anon := accept("", "greet", nil)
	for _, key := range []string{"", alice, bob} {
		finished(key, anon)
	}

	// Records no HTTP caller made: one of an internal function, queued
	// over NATS under an id of its own, and one named by its stream
	// sequence. Neither is served, not even to a key granted everything
	// it may be granted.
	e.serveAccess("ledger", registry.AccessInternal)
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := invocation.Open(context.Background(), js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []nats.Header{{wire.HeaderInvocationID: {"plain-ledger-1"}}, {}} {
		msg := &nats.Msg{Subject: "yard.async.ledger", Data: []byte(validPerson), Header: h}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"plain-ledger-1", "seq-"} {
		var rec *invocation.Record
		natstest.WaitFor(t, 10*time.Second, "the ledger record "+id, func() bool {
			if id == "plain-ledger-1" {
				rec, err = store.Get(context.Background(), id)
				return err == nil && rec.Status == invocation.Succeeded
			}
			for seq := range 64 {
				if r, err := store.Get(context.Background(), fmt.Sprintf("seq-%d", seq)); err == nil && r.Function == "ledger" && r.Status == invocation.Succeeded {
					rec = r
					return true
				}
			}
			return false
		})
		for who, key := range map[string]string{"anonymous": "", "alice": alice} {
			wantProblem(t, who+" reading "+rec.ID, read(key, rec.ID), 404, wire.CodeNotFound)
		}
	}
	// There is no listing of invocations over HTTP.
	for _, path := range []string{"/invocations", "/invocations/"} {
		if r := e.sendAs(e.req("GET", path, ""), alice); r.status != 404 && r.status != 400 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
}

// TestCORS: only allowlisted origins get CORS headers and a preflight
// answer; without an allowlist, no CORS header is ever sent.
func TestCORS(t *testing.T) {
	e := newEnvWith(t, Config{CORSOrigins: []string{"https://shop.example"}})
	e.serveAccess("greet", registry.AccessPublic)
	preflight := func(e *env, origin string) response {
		req := e.req("OPTIONS", "/fn/greet", "")
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		return e.sendAs(req, "")
	}
	r := preflight(e, "https://shop.example")
	h := r.header
	if r.status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Fatalf("allowed preflight: %d %v", r.status, h)
	}
	r = preflight(e, "https://evil.example")
	if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refused preflight: %d %v", r.status, r.header)
	}
	for origin, want := range map[string]string{"https://shop.example": "https://shop.example", "https://evil.example": ""} {
		req := e.req("POST", "/fn/greet", validPerson)
		req.Header.Set("Origin", origin)
		r := e.sendAs(req, "")
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != want {
			t.Errorf("POST from %s: %d, Allow-Origin %q", origin, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
	}

	plain := newEnv(t)
	plain.serveAccess("greet", registry.AccessPublic)
	r = preflight(plain, "https://shop.example")
	for k := range r.header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("no allowlist, yet %s: %v", k, r.header)
		}
	}
	if r.status != http.StatusMethodNotAllowed {
		t.Errorf("no allowlist: preflight got %d", r.status)
	}
}

// TestConnectionCaps: beyond MaxConnsPerIP idle connections from one
// address, more are closed at once; another address still gets in (up to
// MaxConns); once a connection closes, a request succeeds again.
func TestConnectionCaps(t *testing.T) {
	e := newEnvWith(t, Config{MaxConnsPerIP: 3, MaxConns: 4})
	e.serveAccess("greet", registry.AccessPublic)
	dialFrom := func(local string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", e.addr)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	dial := func(local string) net.Conn {
		t.Helper()
		c, err := dialFrom(local)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// closedByServer: the server closes c without a byte.
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		var ne net.Error
		return n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	counted := func(want int) {
		t.Helper()
		natstest.WaitFor(t, 5*time.Second, "connections to be counted", func() bool {
			l := e.gw.conns.Load()
			if l == nil {
				return false
			}
			n, _ := l.open()
			return n == want
		})
	}
	var held []net.Conn
	for range 3 {
		held = append(held, dial("127.0.0.1"))
	}
	counted(3)
	extra := dial("127.0.0.1")
	if !closedByServer(extra) {
		t.Fatal("a connection over the per-address cap stayed open")
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	if resp, err := client.Post(e.base+"/fn/greet", "application/json", strings.NewReader(validPerson)); err == nil {
		resp.Body.Close()
		t.Fatalf("a request over the per-address cap got %d", resp.StatusCode)
	}
	// Another loopback address has its own count, within the total.
	if other, err := dialFrom("127.0.0.2"); err == nil {
		counted(4)
		if c, err := dialFrom("127.0.0.3"); err == nil && !closedByServer(c) {
			t.Fatal("a connection over the total cap stayed open")
		}
		other.Close()
		counted(3)
	} else {
		t.Logf("127.0.0.2 is not usable here (%v); total cap not checked", err)
	}
	held[0].Close()
	natstest.WaitFor(t, 5*time.Second, "a request to succeed once a connection closed", func() bool {
		resp, err := client.Post(e.base+"/fn/greet", "application/json", strings.NewReader(validPerson))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestReadyzFollowsJetStream: /readyz is 503 once JetStream cannot store.
func TestReadyzFollowsJetStream(t *testing.T) {
	e := newEnv(t)
	if r := e.sendAs(e.req("GET", "/readyz", ""), ""); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if err := e.srv.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "readyz to fail", func() bool {
		r := e.sendAs(e.req("GET", "/readyz", ""), "")
		return r.status == 503 && r.problem.Code == wire.CodeUnavailable && strings.Contains(r.problem.Detail, "JetStream")
	})
}

// TestReadyzWrites: /readyz writes to YARD_PROBE; a stream that refuses
// writes while the account answers (here: sealed) makes it 503.
func TestReadyzWrites(t *testing.T) {
	e := newEnv(t)
	if r := e.sendAs(e.req("GET", "/readyz", ""), ""); r.status != 200 {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := js.Stream(ctx, wire.StreamProbe)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("YARD_PROBE holds %d messages after a readyz, want 1", n)
	}
	cfg := st.CachedInfo().Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "readyz to fail", func() bool {
		r := e.sendAs(e.req("GET", "/readyz", ""), "")
		return r.status == 503 && r.problem.Code == wire.CodeUnavailable && strings.Contains(r.problem.Detail, "JetStream")
	})
}

// TestDeniedRequestsAudited: refusals are published on yard.audit.denied
// with who, what and the outcome, at most about auditRate a second.
func TestDeniedRequestsAudited(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("orders", registry.AccessAuthenticated)
	other := e.newKey("other", []string{"greet"}, "")
	var mu sync.Mutex
	var events []deniedEvent
	sub, err := e.nc.Subscribe(AuditDeniedSubject, func(m *nats.Msg) {
		var ev deniedEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("event %s: %v", m.Data, err)
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = e.nc.Flush()
	got := func() []deniedEvent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}

	e.sendAs(e.req("POST", "/fn/orders", validPerson), "")
	e.sendAs(e.req("POST", "/fn/orders", validPerson), other)
	natstest.WaitFor(t, 5*time.Second, "two events", func() bool { return len(got()) == 2 })
	evs := got()
	id, _, _ := parseKey(other)
	if evs[0].Who != "ip:127.0.0.1" || evs[0].Action != "invoke" || evs[0].Target != "orders" || evs[0].Outcome != "denied: unauthenticated" ||
		evs[1].Who != "key:"+id || evs[1].Outcome != "denied: permission_denied" || evs[1].Time.IsZero() {
		t.Fatalf("events %+v", evs)
	}

	// A flood is reported at a bounded rate.
	start := time.Now()
	for range 200 {
		e.sendAs(e.req("POST", "/fn/orders", validPerson), "")
	}
	elapsed := time.Since(start)
	bound := 2 + auditBurst + int(elapsed.Seconds()*auditRate) + 1
	natstest.WaitFor(t, 5*time.Second, "the burst of events", func() bool { return len(got()) >= auditBurst })
	// Whatever the gateway published has reached the subscriber after a
	// round trip on each connection.
	if err := e.gw.nc.(*nats.Conn).Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(got()); n > bound {
		t.Fatalf("%d events for 200 denials in %s, want at most %d", n, elapsed, bound)
	}
}

// TestOIDCTokens: a bearer token that is not an API key goes to the OIDC
// verifier; a valid one is a principal of kind token with the functions
// its scope grants, owning its async results; a bad one is 401.
func TestOIDCTokens(t *testing.T) {
	p := startProvider(t)
	e := newEnvWith(t, Config{OIDC: p.newOIDC(t, OIDCConfig{}), AnonymousRate: 1e6})
	e.serveAccess("orders", registry.AccessAuthenticated)
	e.serveAccess("stock", registry.AccessAuthenticated)
	token := p.sign(t, p.claims(time.Now()))
	if r := e.sendAs(e.req("POST", "/fn/orders", validPerson), token); r.status != 200 {
		t.Fatalf("good token: %d %s", r.status, r.body)
	}
	wantProblem(t, "not granted", e.sendAs(e.req("POST", "/fn/stock", validPerson), token), 403, wire.CodePermissionDenied)
	expired := p.claims(time.Now().Add(-time.Hour))
	r := e.sendAs(e.req("POST", "/fn/orders", validPerson), p.sign(t, expired))
	wantProblem(t, "expired token", r, 401, wire.CodeUnauthenticated)
	if !strings.Contains(r.problem.Detail, "expired") {
		t.Errorf("detail %q", r.problem.Detail)
	}
	wantProblem(t, "garbage", e.sendAs(e.req("POST", "/fn/orders", validPerson), "not-a-jwt"), 401, wire.CodeUnauthenticated)

	acc := e.sendAs(e.req("POST", "/fn/orders?async=1", validPerson), token)
	var a accepted
	if acc.status != 202 || json.Unmarshal(acc.body, &a) != nil {
		t.Fatalf("async: %d %s", acc.status, acc.body)
	}
	natstest.WaitFor(t, 10*time.Second, "the token to read its result", func() bool {
		return e.sendAs(e.req("GET", "/invocations/"+a.ID, ""), token).status == 200
	})
	bob := p.claims(time.Now())
	bob["sub"] = "bob"
	for who, cred := range map[string]string{"another subject": p.sign(t, bob), "a key": e.key, "anonymous": ""} {
		wantProblem(t, who, e.sendAs(e.req("GET", "/invocations/"+a.ID, ""), cred), 404, wire.CodeNotFound)
	}
}
