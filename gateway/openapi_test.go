package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// TestOpenAPIFollowsPolicyAndRegistry: GET /openapi.json describes the
// functions its caller may call (anonymous: the public ones; never an
// internal one) and follows the registry as functions come and go.
func TestOpenAPIFollowsPolicyAndRegistry(t *testing.T) {
	e := newEnv(t)
	e.serveAccess("greet", registry.AccessPublic)
	e.serveAccess("hello", registry.AccessAuthenticated)
	e.serveAccess("ledger", registry.AccessInternal)
	paths := func(key string) []string {
		t.Helper()
		r := e.sendAs(e.req("GET", "/openapi.json", ""), key)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /openapi.json: %d %s", r.status, r.body)
		}
		var doc struct {
			OpenAPI string                     `json:"openapi"`
			Paths   map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(r.body, &doc); err != nil || doc.OpenAPI != "3.1.0" {
			t.Fatalf("document: %v, openapi %q", err, doc.OpenAPI)
		}
		var out []string
		for p := range doc.Paths {
			if strings.HasPrefix(p, "/fn/") {
				out = append(out, p)
			}
		}
		slices.Sort(out)
		return out
	}
	if got := paths(""); !slices.Equal(got, []string{"/fn/greet"}) {
		t.Errorf("anonymous sees %v, want only the public /fn/greet", got)
	}
	if got := paths(e.key); !slices.Equal(got, []string{"/fn/greet", "/fn/hello"}) {
		t.Errorf("a key granted everything sees %v, want greet and hello, never internal ledger", got)
	}
	// A new public function appears as soon as the gateway knows it.
	e.serveAccess("wave", registry.AccessPublic)
	natstest.WaitFor(t, 5*time.Second, "/openapi.json to describe wave", func() bool {
		return slices.Contains(paths(""), "/fn/wave")
	})
	if r := e.sendAs(e.req("POST", "/openapi.json", "{}"), ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /openapi.json: %d", r.status)
	}
}

// TestConsoleMounted: / leads to the console, whose pages need no key
// (what they show comes from the API, with the key signed in with).
func TestConsoleMounted(t *testing.T) {
	e := newEnv(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("GET /: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	r := e.sendAs(e.req("GET", "/console/", ""), "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "<html") || r.header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /console/: %d %.100s", r.status, r.body)
	}
	if r := e.sendAs(e.req("POST", "/", "{}"), ""); r.status != http.StatusNotFound {
		t.Errorf("POST /: %d, want the 404 of no route", r.status)
	}
}
