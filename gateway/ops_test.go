package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/logtail"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// TestOpsRoutes drives the operator routes against a real function: the
// list with instance counts, instance counters that grow with traffic,
// log lines after a sequence, and a dead letter listed, replayed and
// run again. Only operator keys get in.
func TestOpsRoutes(t *testing.T) {
	e := newEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	e.serve(fn.Config{Name: "hello", Access: "public"}, fn.Handle(func(ctx context.Context, p person) (greeting, error) {
		if failing.Load() {
			return greeting{}, errors.New("the ledger is closed")
		}
		return greeting{Message: "Hello, " + p.Name}, nil
	}, fn.WithRetry(1, time.Millisecond)))
	op := e.newKey("ops", nil, "1000000/s", apikeys.AsOperator())
	caller := e.newKey("caller", []string{"*"}, "1000000/s")

	// Who may: nobody anonymous, no key that is not an operator's.
	anon, _ := http.NewRequest(http.MethodGet, e.base+"/ops/functions", nil)
	wantProblem(t, "anonymous", e.do1(anon), http.StatusUnauthorized, wire.CodeUnauthenticated)
	for _, path := range []string{"/ops/functions", "/ops/dlq", "/ops/functions/hello/logs", "/ops/nothing"} {
		wantProblem(t, "caller key "+path, e.sendAs(e.req(http.MethodGet, path, ""), caller), http.StatusForbidden, wire.CodePermissionDenied)
	}
	wantProblem(t, "caller replay", e.sendAs(e.req(http.MethodPost, "/ops/dlq/x/replay", ""), caller), http.StatusForbidden, wire.CodePermissionDenied)

	// The OpenAPI document shows the /ops routes to operators alone.
	if r := e.sendAs(e.req(http.MethodGet, "/openapi.json", ""), caller); r.status != 200 || strings.Contains(string(r.body), "/ops/") {
		t.Errorf("a caller's /openapi.json: %d, mentions /ops/: %v", r.status, strings.Contains(string(r.body), "/ops/"))
	}
	if r := e.sendAs(e.req(http.MethodGet, "/openapi.json", ""), op); r.status != 200 || !strings.Contains(string(r.body), `"/ops/dlq/{id}/replay"`) {
		t.Errorf("an operator's /openapi.json: %d, without the /ops routes", r.status)
	}

	get := func(path string, v any) {
		t.Helper()
		r := e.sendAs(e.req(http.MethodGet, path, ""), op)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, r.body)
		}
	}
	var fns struct{ Functions []OpsFunction }
	get("/ops/functions", &fns)
	if len(fns.Functions) != 1 || fns.Functions[0].Name != "hello" || fns.Functions[0].Instances != 1 ||
		fns.Functions[0].State != "running" || fns.Functions[0].Access != "public" {
		t.Fatalf("functions: %+v", fns.Functions)
	}

	// Counters: three sync calls that fail show as three requests, three errors.
	for range 3 {
		if r := e.post("hello", validPerson); r.status != http.StatusInternalServerError {
			t.Fatalf("failing call: %d %s", r.status, r.body)
		}
	}
	var inst struct{ Instances []OpsInstance }
	get("/ops/functions/hello/instances", &inst)
	if len(inst.Instances) != 1 {
		t.Fatalf("instances: %+v", inst.Instances)
	}
	if in := inst.Instances[0]; in.Requests != 3 || in.Failed != 3 || in.Completed != 0 || in.Concurrency == 0 || in.ID == "" {
		t.Fatalf("instance counters after 3 failed calls: %+v", in)
	}

	// An async call that fails its one attempt is a dead letter.
	r := e.postAsync("hello", validPerson, nil)
	var acc accepted
	if r.status != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil {
		t.Fatalf("async: %d %s", r.status, r.body)
	}
	if rec := e.waitRecord(acc.ID); rec.Status != invocation.Dead {
		t.Fatalf("record %+v, want dead", rec)
	}
	var dlq struct {
		DeadLetters []invocation.DeadLetter `json:"dead_letters"`
	}
	get("/ops/dlq?function=hello", &dlq)
	if len(dlq.DeadLetters) != 1 || dlq.DeadLetters[0].ID != acc.ID || dlq.DeadLetters[0].Error == nil ||
		string(dlq.DeadLetters[0].Payload) != validPerson {
		t.Fatalf("dead letters: %+v", dlq.DeadLetters)
	}
	get("/ops/dlq?function=other", &dlq)
	if len(dlq.DeadLetters) != 0 {
		t.Fatalf("another function's dead letters: %+v", dlq.DeadLetters)
	}

	// Replayed once the ledger opens, it succeeds and leaves the DLQ.
	failing.Store(false)
	rr := e.sendAs(e.req(http.MethodPost, "/ops/dlq/"+acc.ID+"/replay", ""), op)
	if rr.status != http.StatusAccepted || rr.header.Get("Location") != "/invocations/"+acc.ID {
		t.Fatalf("replay: %d %s %v", rr.status, rr.body, rr.header)
	}
	natstest.WaitFor(t, 20*time.Second, "the replayed invocation to succeed", func() bool {
		res := e.sendAs(e.req(http.MethodGet, "/invocations/"+acc.ID, ""), op)
		var rec invocation.Record
		ok := res.status == 200 && json.Unmarshal(res.body, &rec) == nil && rec.Status == invocation.Succeeded
		if !ok {
			t.Logf("record: %d %s", res.status, res.body)
		}
		return ok
	})
	get("/ops/dlq", &dlq)
	if len(dlq.DeadLetters) != 0 {
		t.Fatalf("dead letters after replay: %+v", dlq.DeadLetters)
	}

	// Recent invocations, newest first, each as its last update left it.
	second := e.postAsync("hello", `{"name":"Bo","address":{"city":"Oslo"}}`, nil)
	var acc2 accepted
	if second.status != http.StatusAccepted || json.Unmarshal(second.body, &acc2) != nil {
		t.Fatalf("async: %d %s", second.status, second.body)
	}
	e.waitRecord(acc2.ID)
	var recent struct{ Invocations []invocation.Record }
	get("/ops/functions/hello/invocations", &recent)
	if len(recent.Invocations) != 2 || recent.Invocations[0].ID != acc2.ID || recent.Invocations[1].ID != acc.ID ||
		recent.Invocations[0].Status != invocation.Succeeded || recent.Invocations[1].Status != invocation.Succeeded {
		t.Fatalf("recent invocations: %+v", recent.Invocations)
	}
	get("/ops/functions/hello/invocations?limit=1", &recent)
	if len(recent.Invocations) != 1 || recent.Invocations[0].ID != acc2.ID {
		t.Fatalf("the newest invocation: %+v", recent.Invocations)
	}
	wantProblem(t, "big invocations limit", e.sendAs(e.req(http.MethodGet, "/ops/functions/hello/invocations?limit=5000", ""), op), http.StatusBadRequest, wire.CodeInvalidArgument)

	// Versions: hello runs without a deploy and has none; a deployed
	// function lists its versions newest first, the live one marked.
	var vers struct{ Versions []OpsVersion }
	get("/ops/functions/hello/versions", &vers)
	if len(vers.Versions) != 0 {
		t.Fatalf("versions of a function never deployed: %+v", vers.Versions)
	}
	deployTwice(t, e, "stock")
	get("/ops/functions/stock/versions", &vers)
	if len(vers.Versions) != 2 || vers.Versions[0].Version != 2 || !vers.Versions[0].Current || vers.Versions[1].Version != 1 ||
		vers.Versions[1].Current || vers.Versions[1].DeployedAt.IsZero() {
		t.Fatalf("versions: %+v", vers.Versions)
	}
	wantProblem(t, "replay twice", e.sendAs(e.req(http.MethodPost, "/ops/dlq/"+acc.ID+"/replay", ""), op), http.StatusNotFound, wire.CodeNotFound)
	wantProblem(t, "replay a bad id", e.sendAs(e.req(http.MethodPost, "/ops/dlq/a*b/replay", ""), op), http.StatusBadRequest, wire.CodeInvalidArgument)
	wantProblem(t, "GET replay", e.sendAs(e.req(http.MethodGet, "/ops/dlq/"+acc.ID+"/replay", ""), op), http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed)

	// A dead letter of a function no longer in the registry stays put:
	// nothing would take the work.
	deployTwice(t, e, "gone")
	js0, _ := jetstream.New(e.nc)
	ctx0, cancel0 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel0()
	if _, err := js0.PublishMsg(ctx0, &nats.Msg{Subject: wire.DLQPrefix + "gone", Data: []byte(`{}`),
		Header: nats.Header{wire.HeaderInvocationID: {"gone-1"}}}); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(ctx0, js0)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove(ctx0, "gone"); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "gateway to forget gone", func() bool { _, ok := e.gw.cache.get("gone"); return !ok })
	get("/ops/dlq?function=gone", &dlq)
	if len(dlq.DeadLetters) != 1 {
		t.Fatalf("gone's dead letters: %+v", dlq.DeadLetters)
	}
	goneSeq := dlq.DeadLetters[0].Seq
	wantProblem(t, "replay for a removed function", e.sendAs(e.req(http.MethodPost, fmt.Sprintf("/ops/dlq/gone-1/replay?seq=%d", goneSeq), ""), op), http.StatusConflict, wire.CodeConflict)
	wantProblem(t, "replay with another letter's seq", e.sendAs(e.req(http.MethodPost, fmt.Sprintf("/ops/dlq/%s/replay?seq=%d", acc.ID, goneSeq), ""), op), http.StatusNotFound, wire.CodeNotFound)
	get("/ops/dlq?function=gone", &dlq)
	if len(dlq.DeadLetters) != 1 {
		t.Fatalf("gone's dead letter after refused replays: %+v", dlq.DeadLetters)
	}
	wantProblem(t, "big dlq limit", e.sendAs(e.req(http.MethodGet, "/ops/dlq?limit=5000", ""), op), http.StatusBadRequest, wire.CodeInvalidArgument)

	// Logs: what agents ship to yard.logs.<name>.<instance>, by sequence.
	var logs struct {
		Lines []logtail.Line
		Next  uint64
	}
	get("/ops/functions/hello/logs", &logs)
	if len(logs.Lines) != 0 {
		t.Fatalf("logs before any stream: %+v", logs)
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: wire.StreamLogs, Subjects: []string{wire.LogsPrefix + ">"}}); err != nil {
		t.Fatal(err)
	}
	logLine := func(fn, inst, line string) {
		if _, err := js.Publish(ctx, wire.LogsPrefix+fn+"."+inst, []byte(line+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		logLine("hello", "a1", fmt.Sprintf("line %d", i))
		logLine("other", "b1", "not hello's")
	}
	get("/ops/functions/hello/logs?limit=3", &logs)
	if len(logs.Lines) != 3 || logs.Lines[0].Line != "line 2" || logs.Lines[2].Line != "line 4" || logs.Lines[2].Instance != "a1" {
		t.Fatalf("the newest 3 lines: %+v", logs.Lines)
	}
	after := logs.Next
	logLine("hello", "a2", "line 5")
	get(fmt.Sprintf("/ops/functions/hello/logs?after=%d", after), &logs)
	if len(logs.Lines) != 1 || logs.Lines[0].Line != "line 5" || logs.Lines[0].Instance != "a2" || logs.Next <= after {
		t.Fatalf("lines after %d: %+v", after, logs)
	}
	get(fmt.Sprintf("/ops/functions/hello/logs?after=%d", logs.Next), &logs)
	if len(logs.Lines) != 0 {
		t.Fatalf("nothing new: %+v", logs)
	}
	// A sequence past the stream's end (YARD_LOGS made anew) starts over.
	get("/ops/functions/hello/logs?after=999999", &logs)
	if len(logs.Lines) != 6 || logs.Lines[5].Line != "line 5" {
		t.Fatalf("lines after a sequence past the end: %+v", logs)
	}
	wantProblem(t, "bad after", e.sendAs(e.req(http.MethodGet, "/ops/functions/hello/logs?after=-1", ""), op), http.StatusBadRequest, wire.CodeInvalidArgument)
	wantProblem(t, "big limit", e.sendAs(e.req(http.MethodGet, "/ops/functions/hello/logs?limit=100000", ""), op), http.StatusBadRequest, wire.CodeInvalidArgument)
	wantProblem(t, "unknown function", e.sendAs(e.req(http.MethodGet, "/ops/functions/nope/logs", ""), op), http.StatusNotFound, wire.CodeNotFound)
	wantProblem(t, "unknown route", e.sendAs(e.req(http.MethodGet, "/ops/nothing", ""), op), http.StatusNotFound, wire.CodeNotFound)
}

// deployTwice deploys two versions of a function with no instance.
func deployTwice(t *testing.T, e *env, name string) {
	t.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		spec := &registry.Spec{Name: name, Description: fmt.Sprintf("take %d", i+1), InputSchema: json.RawMessage(`{"type":"object"}`),
			OutputSchema: json.RawMessage(`{"type":"object"}`), Timeout: registry.Duration(time.Second)}
		if _, err := reg.Deploy(ctx, spec, 0); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 5*time.Second, "gateway to learn "+name+" v2", func() bool {
		f, ok := e.gw.cache.get(name)
		return ok && f.spec.Version == 2
	})
}
