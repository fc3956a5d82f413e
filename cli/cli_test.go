package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type result struct {
	code           int
	stdout, stderr string
}

func yard(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errb},
		func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

type echoIn struct {
	Name string `json:"name" jsonschema:"minLength=1"`
}

type echoOut struct {
	Message string `json:"message"`
}

func startEcho(t *testing.T) map[string]string {
	t.Helper()
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "echo", Description: "echoes"},
		fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) {
			if in.Name == "missing" {
				return echoOut{}, fn.NotFound("no %s here", in.Name)
			}
			return echoOut{Message: "hi " + in.Name}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop(context.Background()) })
	return map[string]string{"NATS_URL": s.ClientURL()}
}

func TestInvoke(t *testing.T) {
	env := startEcho(t)
	r := yard(t, env, "", "invoke", "echo", "-d", `{"name":"Ada"}`)
	if r.code != ExitOK || r.stdout != `{"message":"hi Ada"}`+"\n" {
		t.Fatalf("%+v", r)
	}
	r = yard(t, env, `{"name":"Bob"}`, "invoke", "echo", "-f", "-")
	if r.code != ExitOK || !strings.Contains(r.stdout, "hi Bob") {
		t.Fatalf("stdin: %+v", r)
	}
	// --server wins over NATS_URL.
	r = yard(t, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "", "invoke", "echo", "-d", `{"name":"C"}`, "--server", env["NATS_URL"])
	if r.code != ExitOK {
		t.Fatalf("--server: %+v", r)
	}
}

func TestInvokeErrors(t *testing.T) {
	env := startEcho(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"schema", []string{"invoke", "echo", "-d", `{"name":""}`}, ExitFnError, "invalid_argument (400)"},
		{"handler error", []string{"invoke", "echo", "-d", `{"name":"missing"}`}, ExitFnError, "not_found (404): no missing here"},
		{"unknown function", []string{"invoke", "nobody"}, ExitFnError, "not_found"},
		{"bad name", []string{"invoke", "a.b"}, ExitUsage, "invalid function name"},
		{"bad JSON", []string{"invoke", "echo", "-d", `{`}, ExitUsage, "not valid JSON"},
		{"both inputs", []string{"invoke", "echo", "-d", `{}`, "-f", "x"}, ExitUsage, "not both"},
		{"no name", []string{"invoke"}, ExitUsage, "exactly one"},
		{"bad flag", []string{"invoke", "echo", "--nope"}, ExitUsage, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := yard(t, env, "", tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("got exit %d, stderr %q; want %d with %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
	r := yard(t, env, "", "invoke", "echo", "-d", `{"name":""}`, "--json")
	var we wire.Error
	if r.code != ExitFnError || json.Unmarshal([]byte(r.stdout), &we) != nil || we.Errors[0].Pointer != "/name" {
		t.Fatalf("--json error: %+v", r)
	}
	if r := yard(t, map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, "", "invoke", "echo"); r.code != ExitError ||
		!strings.Contains(r.stderr, "yard up") {
		t.Fatalf("no server: %+v", r)
	}
}

func TestInvokeNoInstance(t *testing.T) {
	s := natstest.Run(t)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	ctx := context.Background()
	inst, err := fn.Start(ctx, nc, fn.Config{Name: "gone"}, fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Registered, but no instance serves it: unavailable.
	js, _ := jetstream.New(nc)
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(ctx, &registry.Spec{Name: "idle", Timeout: registry.Duration(time.Second),
		InputSchema: json.RawMessage(`{}`), OutputSchema: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if r := yard(t, env, "", "invoke", "idle"); r.code != ExitFnError || !strings.Contains(r.stderr, "unavailable (503)") {
		t.Fatalf("%+v", r)
	}
	// The last instance of a function run without a deploy takes it away
	// when it stops.
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if r := yard(t, env, "", "invoke", "gone"); r.code != ExitFnError || !strings.Contains(r.stderr, "not_found (404)") {
		t.Fatalf("%+v", r)
	}
}

func TestLs(t *testing.T) {
	env := startEcho(t)
	r := yard(t, env, "", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "NAME") || !regexpMatch(`echo\s+-\s+1\s+running\s+-\s+30s\s+echoes`, r.stdout) {
		t.Fatalf("%+v", r)
	}
	r = yard(t, env, "", "ls", "--json")
	var entries []lsEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 1 || entries[0].Instances != 1 {
		t.Fatalf("--json: %+v (%v)", r, err)
	}
}

// TestLsNextRun: ls shows when a scheduled function runs next, and rm
// stops its schedules.
func TestLsNextRun(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "nightly", Description: "reports",
		Schedules: []fn.Schedule{{Cron: "0 3 * * *"}, {Cron: "@every 1h"}}},
		fn.Handle(func(ctx context.Context, in struct{}) (struct{}, error) { return in, nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	r := yard(t, env, "", "ls")
	if r.code != 0 || !regexpMatch(`nightly\s+-\s+1\s+running\s+\d\d:\d\d:\d\dZ \(in [0-9hms]+\)`, r.stdout) {
		t.Fatalf("%+v", r)
	}
	r = yard(t, env, "", "ls", "--json")
	var entries []lsEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || len(entries) != 1 || len(entries[0].Schedules) != 2 {
		t.Fatalf("--json: %+v (%v)", r, err)
	}
	e := entries[0]
	next, err := time.Parse(time.RFC3339, e.NextRun)
	if err != nil || next.Before(time.Now()) || next.After(time.Now().Add(time.Hour+time.Second)) || e.Schedules[0].NextRun != e.NextRun {
		t.Fatalf("next run %q (%v) of %+v", e.NextRun, err, e.Schedules)
	}
	if r := yard(t, env, "", "rm", "nightly"); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	js, _ := jetstream.New(nc)
	inv, err := invocation.Open(context.Background(), js, invocation.Config{})
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "the platform to stop the schedules of a removed function", func() bool {
		left, err := inv.Schedules(context.Background(), "nightly")
		return err == nil && len(left) == 0
	})
}

func TestLsEmpty(t *testing.T) {
	s := natstest.Run(t)
	r := yard(t, map[string]string{"NATS_URL": s.ClientURL()}, "", "ls", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("%+v", r)
	}
}

func TestUpPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := yard(t, nil, "", "up", "--data", t.TempDir(), "--nats-port", port, "--no-functions")
	if r.code != ExitError || !strings.Contains(r.stderr, "--nats-port") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("NATS port taken: %+v", r)
	}
	r = yard(t, nil, "", "up", "--data", t.TempDir(), "--nats-port", strconv.Itoa(natstest.FreePort(t)), "--http", ln.Addr().String(), "--no-functions")
	if r.code != ExitError || !strings.Contains(r.stderr, "--http") {
		t.Fatalf("HTTP port taken: %+v", r)
	}
	if r := yard(t, nil, "", "up", "--sync", "sometimes"); r.code != ExitUsage || !strings.Contains(r.stderr, "--sync") {
		t.Fatalf("bad --sync: %+v", r)
	}
}

// TestUp runs the whole platform as a user does: yard up builds and starts
// the example functions as processes, and greet answers over HTTP, NATS
// and yard invoke; a second yard up on the same data starts again.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example functions")
	}
	// As a user runs it: from a folder of their own, with the default,
	// relative data directory.
	functions, err := filepath.Abs("../functions")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	data := ".yard"
	var oldKey string
	for round := range 2 {
		natsPort := natstest.FreePort(t)
		httpPort := natstest.FreePort(t)
		metricsAddr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
		var stderr natstest.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- Run(ctx, []string{"up", "--data", data, "--nats-port", strconv.Itoa(natsPort),
				"--http", "127.0.0.1:" + strconv.Itoa(httpPort), "--functions", functions, "--metrics", metricsAddr},
				IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &stderr}, func(string) string { return "" })
		}()
		natstest.WaitFor(t, 2*time.Minute, "yard up to print its banner", func() bool {
			select {
			case code := <-done:
				t.Fatalf("yard up exited %d: %s", code, stderr.String())
			default:
			}
			return strings.Contains(stderr.String(), "Switchyard is up")
		})
		if !strings.Contains(stderr.String(), "catalog, greet") {
			t.Fatalf("round %d banner: %s", round, stderr.String())
		}
		resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(httpPort)+"/fn/greet", "application/x-www-form-urlencoded",
			strings.NewReader(`{"name":"Ada"}`))
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || body.String() != `{"message":"Hello, Ada!"}` {
			t.Fatalf("curl-style call: %d %s", resp.StatusCode, body.String())
		}
		// The banner's metrics count that call; its console link signs
		// the admin in with a key of this run, and the last run's is
		// revoked.
		if !strings.Contains(stderr.String(), "Metrics    http://"+metricsAddr+"/metrics") {
			t.Fatalf("banner without metrics: %s", stderr.String())
		}
		mresp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		mbody, _ := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		if !strings.Contains(string(mbody), `yard_gateway_requests_total{code="200",function="greet",mode="sync"} 1`) {
			t.Errorf("metrics after one call: %s", mbody)
		}
		link := regexp.MustCompile(`Console    (http://\S+)/console/#key=(yk_\S+)`).FindStringSubmatch(stderr.String())
		if link == nil {
			t.Fatalf("banner without a console link: %s", stderr.String())
		}
		keyed := func(key string) int {
			req, _ := http.NewRequest("GET", link[1]+"/fn", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := keyed(link[2]); code != 200 {
			t.Errorf("the console link's key: %d", code)
		}
		if oldKey != "" {
			if code := keyed(oldKey); code != http.StatusUnauthorized {
				t.Errorf("the last run's console key: %d, want 401", code)
			}
		}
		oldKey = link[2]
		env := map[string]string{"NATS_URL": "nats://127.0.0.1:" + strconv.Itoa(natsPort)}
		if r := yard(t, env, "", "invoke", "greet", "-d", `{"name":"Ada"}`); r.stdout != body.String()+"\n" {
			t.Fatalf("invoke: %+v", r)
		}
		if r := yard(t, env, "", "ls"); !regexpMatch(`catalog\s+v\d+\s+1\s+running`, r.stdout) || !regexpMatch(`greet\s+v\d+\s+1\s+running`, r.stdout) {
			t.Fatalf("ls: %+v", r)
		}
		// The agent keeps the functions' log lines in YARD_LOGS.
		// describe names instances as ps and yard logs do.
		if r := yard(t, env, "", "describe", "greet"); r.code != 0 || !regexpMatch(`running instances: 1\n\s+greet-v\d+-\w+\s`, r.stdout) {
			t.Fatalf("describe: %+v", r)
		}
		r := yard(t, env, "", "logs", "greet")
		if r.code != 0 || !strings.Contains(r.stdout, "msg=serving") {
			t.Fatalf("logs: %+v", r)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if !strings.HasPrefix(line, "greet-v") || strings.Contains(line, "fn=catalog") {
				t.Fatalf("logs greet shows a line of another function: %q", line)
			}
		}
		r = yard(t, env, "", "logs", "greet", "--json")
		var entry logEntry
		if err := json.Unmarshal([]byte(strings.SplitN(r.stdout, "\n", 2)[0]), &entry); err != nil || !strings.HasPrefix(entry.Instance, "greet-v") || entry.Line == "" || entry.Time.IsZero() {
			t.Fatalf("logs --json: %+v (%v)", r, err)
		}
		// The console key is an operator's: the /ops routes answer it,
		// within the gateway's own rights.
		opsGet := func(path string) string {
			t.Helper()
			req, _ := http.NewRequest("GET", link[1]+path, nil)
			req.Header.Set("Authorization", "Bearer "+link[2])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
			}
			return string(b)
		}
		if b := opsGet("/ops/functions"); !regexpMatch(`"name":"greet","description":"[^"]*","version":\d+,"access":"public","instances":1,"state":"running"`, b) {
			t.Errorf("/ops/functions: %s", b)
		}
		if b := opsGet("/ops/functions/greet/instances"); !regexpMatch(`"requests":[1-9]`, b) {
			t.Errorf("/ops/functions/greet/instances after calls: %s", b)
		}
		if b := opsGet("/ops/functions/greet/logs"); !strings.Contains(b, "msg=serving") || !strings.Contains(b, `"instance":"greet-v`) {
			t.Errorf("/ops/functions/greet/logs: %s", b)
		}
		if b := opsGet("/ops/functions/greet/versions"); !regexpMatch(`"versions":\[\{"version":\d+,"deployed_at":"[^"]+","schema_hash":"sha256:`, b) || !strings.Contains(b, `"current":true`) {
			t.Errorf("/ops/functions/greet/versions: %s", b)
		}
		if b := opsGet("/ops/functions/greet/invocations"); !strings.HasPrefix(b, `{"function":"greet","invocations":[`) {
			t.Errorf("/ops/functions/greet/invocations: %s", b)
		}
		if b := opsGet("/ops/dlq"); b != `{"dead_letters":[]}`+"\n" {
			t.Errorf("/ops/dlq: %q", b)
		}
		// Every component ran on its own credential: any right missing
		// from a role shows as a violation in the server's log.
		if strings.Contains(stderr.String(), "Violation") {
			t.Fatalf("round %d: a component was refused a right it needs:\n%s", round, stderr.String())
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("yard up exit %d: %s", code, stderr.String())
			}
		case <-time.After(time.Minute):
			t.Fatal("yard up did not stop")
		}
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// runUntil starts a long-running yard command and returns a stop function
// that cancels it and returns its exit code.
func runUntil(t *testing.T, env map[string]string, ready string, args ...string) (stop func() int, stderr *natstest.Buffer) {
	t.Helper()
	stderr = &natstest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: stderr},
			func(k string) string { return env[k] })
	}()
	natstest.WaitFor(t, time.Minute, "yard "+args[0]+" to be ready", func() bool {
		select {
		case code := <-done:
			t.Fatalf("yard %s exited %d: %s", args[0], code, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), ready)
	})
	return func() int { cancel(); return <-done }, stderr
}

func TestServerAndGatewayCommands(t *testing.T) {
	natsPort := strconv.Itoa(natstest.FreePort(t))
	data := t.TempDir()
	stopServer, _ := runUntil(t, nil, "Ctrl-C stops", "server", "--data", data, "--nats-port", natsPort)
	env := map[string]string{"NATS_URL": "nats://127.0.0.1:" + natsPort}
	// Authentication is on, and without --allow-anonymous nobody gets in
	// without a credential.
	if _, err := nats.Connect(env["NATS_URL"]); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connection to yard server: %v", err)
	}

	httpAddr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	stopGateway, _ := runUntil(t, env, "gateway on http://"+httpAddr, "gateway", "--http", httpAddr, "--allow-private-callbacks",
		"--creds", filepath.Join(data, "creds", "gateway.creds"))

	nc, err := nats.Connect(env["NATS_URL"], nats.UserCredentials(filepath.Join(data, "admin.creds")), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fntest.Platform(t, nc)
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "echo"},
		fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) { return echoOut{Message: in.Name}, nil }))
	if err != nil {
		t.Fatal(err)
	}
	// echo is authenticated: the client needs an API key, which the
	// gateway learns of by itself.
	r := yard(t, env, "", "keys", "create", "tester", "--functions", "echo", "--creds", filepath.Join(data, "admin.creds"))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "yk_") {
		t.Fatalf("keys create: %+v", r)
	}
	key := strings.TrimSpace(r.stdout)
	natstest.WaitFor(t, 5*time.Second, "the gateway to route to echo", func() bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/fn/echo", strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// --allow-private-callbacks: a loopback callback URL is accepted.
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/fn/echo?async=1", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Yard-Callback-Url", "http://127.0.0.1:9/hook")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("loopback callback with --allow-private-callbacks: %d", resp.StatusCode)
	}
	_ = inst.Stop(context.Background())
	if code := stopGateway(); code != 0 {
		t.Errorf("gateway exit %d", code)
	}
	if code := stopServer(); code != 0 {
		t.Errorf("server exit %d", code)
	}
}

// TestDescribeBreakers: describe shows the circuit each instance keeps for
// the functions it calls, as text and in --json.
func TestDescribeBreakers(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	env := map[string]string{"NATS_URL": s.ClientURL()}
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "caller", Calls: []string{"absent-x"}},
		fn.Handle(func(ctx context.Context, in echoIn) (echoOut, error) {
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := fn.Invoke[echoOut](ctx, "absent-"+in.Name, in)
			return echoOut{}, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(context.Background())
	if r := yard(t, env, "", "invoke", "caller", "-d", `{"name":"x"}`); r.code != ExitFnError {
		t.Fatalf("invoke: %+v", r)
	}
	r := yard(t, env, "", "describe", "caller")
	if r.code != 0 || !regexpMatch(`circuit breakers[^\n]*\n(.*\n)*\s+absent-x\s+closed\s+\(instance \w+\)`, r.stdout) ||
		!regexpMatch(`calls\s+absent-x\n`, r.stdout) {
		t.Fatalf("describe: %+v", r)
	}
	r = yard(t, env, "", "describe", "caller", "--json")
	var out struct {
		Breakers []breakerState `json:"breakers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !slices.ContainsFunc(out.Breakers, func(b breakerState) bool {
		return b.Target == "absent-x" && b.State == "closed" && b.Instance != ""
	}) {
		t.Fatalf("describe --json: %+v (%v)", r, err)
	}
}

// TestUnknownSubcommand: a grouping command refuses what it does not know.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"invocations", "ls"}, {"dlq", "bogus"}} {
		if r := yard(t, map[string]string{}, "", args...); r.code != ExitUsage || !strings.Contains(r.stderr, "unknown command") {
			t.Errorf("%v: %+v", args, r)
		}
	}
}
