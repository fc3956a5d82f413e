package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// FuzzNameFromPath: whatever the path, a name that comes out is valid and
// makes exactly one subject token.
func FuzzNameFromPath(f *testing.F) {
	for _, s := range []string{"/fn/greet", "/fn/%2E", "/fn/a.b", "/fn/*", "/fn/%3E", "/fn/a%20b", "/fn/a%0D%0A",
		"/fn/" + strings.Repeat("a", 70), "/fn/%", "/fn/%C3%A9", "/fn/a/b", "/fn/a%2Fb", "/fn/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, err := nameFromPath(path)
		if err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("error %T is not an httpError", err)
			}
			return
		}
		if err := wire.ValidateName(name); err != nil {
			t.Fatalf("nameFromPath(%q) = %q, which is invalid: %v", path, name, err)
		}
		subj, err := wire.FnSubject(name)
		if err != nil || strings.Count(subj, ".") != 1 || strings.ContainsAny(subj, "*> \t\r\n") {
			t.Fatalf("name %q gives subject %q (%v)", name, subj, err)
		}
	})
}

// FuzzInvoke sends arbitrary bodies, content types and paths through the
// whole gateway to a real instance: every answer is 200 with the handler's
// JSON, or a well-formed problem document with a platform status; never a
// 500.
func FuzzInvoke(f *testing.F) {
	s := natstest.Run(f)
	nc := natstest.Connect(f, s)
	fntest.Platform(f, nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inst, err := fn.Start(ctx, nc, fn.Config{Name: "hello"}, fn.Handle(hello))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = inst.Stop(context.Background()) })
	js, err := jetstream.New(nc)
	if err != nil {
		f.Fatal(err)
	}
	key, _, err := apikeys.Create(ctx, js, "fuzz", []string{"*"}, "1000000000/s")
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(ctx, natstest.Connect(f, s), Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(g.Close)

	f.Add("hello", "application/json", validPerson)
	f.Add("hello", "", `{"name":"Ada","address":{"city":"x"},"age":150}`)
	f.Add("hello", "text/plain", `{}`)
	f.Add("hello", "application/json", `{"name":"Ada","name":"Ada"}`)
	f.Add("hello", "application/json", strings.Repeat("[", 100))
	f.Add("hello", "application/json", "{\"name\":\"\xff\"}")
	f.Add("nobody", "application/json", `{}`)
	f.Add("%2E", "application/json", `{}`)
	allowed := map[int]bool{200: true, 400: true, 404: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, name, contentType, body string) {
		req, err := http.NewRequest(http.MethodPost, "http://gw/fn/x", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.URL.RawPath = "/fn/" + name
		req.URL.Path = "/fn/" + name
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d for name %q, type %q, body %q: %s", rec.Code, name, contentType, body, rec.Body)
		}
		if rec.Code == 200 {
			var out greeting
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || !strings.HasPrefix(out.Message, "Hello, ") {
				t.Fatalf("200 with body %s", rec.Body)
			}
			return
		}
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || !p.Code.Known() {
			t.Fatalf("status %d with body %s", rec.Code, rec.Body)
		}
	})
}

// FuzzParseKey: whatever the text, parseKey either refuses it or returns
// an id and secret that are exactly the key's parts, of the documented
// alphabets and lengths, and that make the same key again.
func FuzzParseKey(f *testing.F) {
	good := "yk_abcdefghij12_" + strings.Repeat("a", apikeys.SecretLen)
	for _, s := range []string{good, "", "yk_", "yk__", good + "a", good[:len(good)-1], strings.ToUpper(good),
		"yk_abcdefghij12_" + strings.Repeat("a", apikeys.SecretLen-1) + "b", "yk_abcdefghij12-" + strings.Repeat("a", apikeys.SecretLen),
		"eyJhbGciOiJSUzI1NiJ9.e30.sig", "yk_\x00bcdefghij12_" + strings.Repeat("a", apikeys.SecretLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := parseKey(s)
		if err != nil {
			// The error never echoes the text, which may be a real key.
			if id != "" || secret != "" || err != apikeys.ErrMalformed {
				t.Fatalf("parseKey(%q) failed with id %q, secret %q, err %v", s, id, secret, err)
			}
			return
		}
		if s != apikeys.Prefix+id+"_"+secret || !apikeys.ValidID(id) || len(secret) != apikeys.SecretLen {
			t.Fatalf("parseKey(%q) = %q, %q", s, id, secret)
		}
		for _, c := range []byte(secret) {
			if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
				t.Fatalf("secret %q of %q has %q", secret, s, c)
			}
		}
	})
}
