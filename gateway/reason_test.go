package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestProblemReason: a function's error reason appears in the problem
// document beside its code, and a reason that is not one never does.
func TestProblemReason(t *testing.T) {
	e := newEnv(t)
	e.serve(fn.Config{Name: "hello"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		if p.Name == "Eve" {
			return greeting{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "%s is on the list", p.Name), "blocked_person")
		}
		return greeting{}, fn.Errorf(fn.CodeConflict, "%s is busy", p.Name)
	}))

	r := e.post("hello", `{"name":"Eve","address":{"city":"London"}}`)
	if r.status != http.StatusConflict || r.problem.Code != wire.CodeConflict || r.problem.Reason != "blocked_person" ||
		r.problem.Detail != "Eve is on the list" || r.problem.Type != ProblemTypePrefix+"conflict" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil || doc["reason"] != "blocked_person" {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if r := e.post("hello", validPerson); r.status != http.StatusConflict || strings.Contains(string(r.body), `"reason"`) {
		t.Fatalf("an error without a reason: %d %s", r.status, r.body)
	}

	// A replier that is not a Switchyard instance sends what it likes.
	e.register(&registry.Spec{Name: "foreign", InputSchema: []byte(`{}`), OutputSchema: []byte(`{}`),
		SchemaHash: "x", Timeout: registry.Duration(time.Second)})
	sub, err := e.nc.QueueSubscribe("fn.foreign", "fn.foreign", func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header = (&wire.Error{Code: wire.CodeConflict, Message: "m"}).Headers()
		reply.Data = []byte(`{"code":"conflict","reason":"<script>alert(1)</script>","message":"m"}`)
		_ = m.RespondMsg(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := e.post("foreign", `{}`); r.status != http.StatusConflict || r.problem.Reason != "" || strings.Contains(string(r.body), "script") {
		t.Fatalf("an invalid reason was passed on: %d %s", r.status, r.body)
	}
}
