package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

func TestAsyncCommands(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	var broken atomic.Bool
	broken.Store(true)
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "echo"},
		fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) {
			if broken.Load() && in.Name == "fail" {
				return echoOut{}, errors.New("down")
			}
			return echoOut{Message: "hi " + in.Name}, nil
		}, fn.WithRetry(2, time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })

	r := yard(t, env, "", "invoke", "echo", "--async", "--wait", "-d", `{"name":"Ada"}`)
	if r.code != 0 || r.stdout != `{"message":"hi Ada"}`+"\n" {
		t.Fatalf("--async --wait: %+v", r)
	}
	r = yard(t, env, "", "invoke", "echo", "--async", "-d", `{"name":"Bob"}`)
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || id == "" || !strings.Contains(r.stderr, "yard invocations get "+id) {
		t.Fatalf("--async: %+v", r)
	}
	natstest.WaitFor(t, 10*time.Second, "the invocation to succeed", func() bool {
		r := yard(t, env, "", "invocations", "get", id, "--json")
		var rec invocation.Record
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &rec) == nil && rec.Status == invocation.Succeeded
	})
	if r := yard(t, env, "", "invocations", "get", id); !regexpMatch(`status\s+succeeded`, r.stdout) || !strings.Contains(r.stdout, "hi Bob") {
		t.Fatalf("get: %+v", r)
	}
	if r := yard(t, env, "", "invocations", "get", "nope"); r.code != ExitError || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("get unknown: %+v", r)
	}

	// Invalid input is refused before queueing, with the field at fault.
	if r := yard(t, env, "", "invoke", "echo", "--async", "-d", `{"name":""}`); r.code != ExitFnError || !strings.Contains(r.stderr, "/name") {
		t.Fatalf("invalid async input: %+v", r)
	}
	for _, args := range [][]string{
		{"invoke", "echo", "--wait"},
		{"invoke", "echo", "--async", "--idempotency-key", "has space"},
		{"invoke", "echo", "--async", "--callback-url", "http://127.0.0.1:1/x"},
		{"invoke", "echo", "--async", "--callback-url", "ftp://example.com/x"},
		{"dlq", "ls", "--limit", "-1"},
		{"ls", "--log-level", "bogus"},
	} {
		if r := yard(t, env, "", args...); r.code != ExitUsage {
			t.Errorf("%v: %+v, want exit %d", args, r, ExitUsage)
		}
	}

	// A failing invocation lands in the DLQ and can be replayed.
	r = yard(t, env, "", "invoke", "echo", "--async", "--wait", "-d", `{"name":"fail"}`)
	if r.code != ExitFnError || !strings.Contains(r.stderr, "dead after 2 attempts") {
		t.Fatalf("dead: %+v", r)
	}
	r = yard(t, env, "", "dlq", "ls", "echo")
	if r.code != 0 || !regexpMatch(`echo\s+2\s+`, r.stdout) {
		t.Fatalf("dlq ls: %+v", r)
	}
	var letters []invocation.DeadLetter
	r = yard(t, env, "", "dlq", "ls", "--json")
	if json.Unmarshal([]byte(r.stdout), &letters) != nil || len(letters) != 1 || !strings.Contains(string(letters[0].Payload), `"fail"`) {
		t.Fatalf("dlq ls --json: %+v", r)
	}
	broken.Store(false)
	if r := yard(t, env, "", "dlq", "replay", letters[0].ID); r.code != 0 {
		t.Fatalf("replay: %+v", r)
	}
	natstest.WaitFor(t, 10*time.Second, "the replay to succeed", func() bool {
		r := yard(t, env, "", "invocations", "get", letters[0].ID, "--json")
		return strings.Contains(r.stdout, `"succeeded"`)
	})
	if r := yard(t, env, "", "dlq", "ls", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("DLQ not empty: %+v", r)
	}
	if r := yard(t, env, "", "dlq", "replay"); r.code != ExitUsage {
		t.Fatalf("replay without args: %+v", r)
	}
	if r := yard(t, env, "", "dlq", "replay", "--all", "echo", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"replayed": 0`) {
		t.Fatalf("replay --all: %+v", r)
	}
}
