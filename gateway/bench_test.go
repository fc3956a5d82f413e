// What the platform costs over doing the same work in-process, in one
// command (about 45 s):
//
//	go test ./gateway -run '^$' -bench GatewayOverhead -benchtime 3x
//
// It serves one handler two ways, in this process, each on 127.0.0.1:0:
//
//	(a) baseline: a bare net/http server that reads the body, decodes and
//	    validates it, unmarshals it, calls the handler, marshals, validates
//	    and writes the output;
//	(b) platform: gateway → embedded NATS → fn instance, the same handler.
//
// and puts the same load on each in turn: a warm-up, a closed loop of 16
// workers for throughput, then an open loop at 1,000 req/s for latency
// (measured from each request's scheduled send time, so stalls are not
// hidden). Each benchmark iteration is one round of a then b; with
// -benchtime Nx the reported metrics are medians over N rounds, which keeps
// a burst of noise in one round from deciding the ratio, and the log shows
// each round (up to four fit). -overhead.load sets the length of each
// measured phase (default 3s).
//
// The figures are only meaningful on an otherwise idle machine. Every round
// reports how much CPU other processes used meanwhile ("other CPU", from
// /proc on Linux) and warns when it was more than a quarter of a core.
// Nothing is asserted on the figures; the benchmark fails only if a request
// fails.
//
// To see where (b) spends its time, profile and keep only its goroutines
// (the load generator and the baseline carry other labels):
//
//	go test ./gateway -run '^$' -bench GatewayOverhead -benchtime 1x -cpuprofile cpu.out
//	go tool pprof -top -tagfocus side=platform gateway.test cpu.out
package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/loadgen"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/schemas"
)

var overheadLoad = flag.Duration("overhead.load", 3*time.Second,
	"length of each measured phase of BenchmarkGatewayOverhead")

// The load both sides get.
const (
	overheadWorkers = 16   // closed loop
	overheadRate    = 1000 // open loop, req/s
	overheadWarmUp  = time.Second
)

// quoteIn is a realistic input: bounded strings, an enum, an integer range,
// a nested object and an array of objects.
type quoteIn struct {
	Customer string       `json:"customer" jsonschema:"minLength=1,maxLength=64"`
	Priority string       `json:"priority" jsonschema:"enum=low,enum=normal,enum=high"`
	Quantity int          `json:"quantity" jsonschema:"minimum=1,maximum=1000"`
	Address  quoteAddress `json:"address"`
	Items    []quoteItem  `json:"items" jsonschema:"minItems=1,maxItems=50"`
	Note     string       `json:"note,omitempty" jsonschema:"maxLength=500"`
}

type quoteAddress struct {
	Street  string `json:"street" jsonschema:"minLength=1,maxLength=200"`
	City    string `json:"city" jsonschema:"minLength=1,maxLength=100"`
	Country string `json:"country" jsonschema:"pattern=^[A-Z]{2}$"`
}

type quoteItem struct {
	SKU       string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	Qty       int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
	UnitCents int    `json:"unit_cents" jsonschema:"minimum=0,maximum=10000000"`
}

type quoteOut struct {
	Customer   string `json:"customer"`
	Lines      int    `json:"lines"`
	TotalCents int    `json:"total_cents"`
	Shipping   string `json:"shipping" jsonschema:"enum=standard,enum=express"`
}

// quote is the handler both sides run.
func quote(_ context.Context, in quoteIn) (quoteOut, error) {
	out := quoteOut{Customer: in.Customer, Lines: len(in.Items), Shipping: "standard"}
	for _, it := range in.Items {
		out.TotalCents += it.Qty * it.UnitCents
	}
	out.TotalCents *= in.Quantity
	if in.Priority == "high" {
		out.Shipping = "express"
	}
	return out, nil
}

var (
	quoteBody = []byte(`{"customer":"Ada Lovelace","priority":"high","quantity":3,` +
		`"address":{"street":"12 St James's Square","city":"London","country":"GB"},` +
		`"items":[{"sku":"ABC-1234","qty":2,"unit_cents":1999},{"sku":"XYZ-0001","qty":1,"unit_cents":4500},` +
		`{"sku":"QRS-0042","qty":5,"unit_cents":250}]}`)
	quoteWant = `{"customer":"Ada Lovelace","lines":3,"total_cents":29244,"shipping":"express"}`
	// Breaks the enum, the range, the nested object and the array at once.
	quoteBad = []byte(`{"customer":"","priority":"urgent","quantity":0,"address":{"street":"x","city":"y","country":"gb"},"items":[]}`)
)

// BenchmarkGatewayOverhead compares (a) and (b); see the top of the file.
// Each iteration is a whole round, so run it with -benchtime Nx.
func BenchmarkGatewayOverhead(b *testing.B) {
	a, p := startBaseline(b), startPlatform(b)
	checkSameAnswers(b, a, p)

	var rounds []round
	for b.Loop() {
		rounds = append(rounds, round{a: measure(b, "a", a, *overheadLoad), b: measure(b, "b", p, *overheadLoad)})
	}
	// One log call: the testing package keeps only the first ten lines a
	// benchmark logs, which is room for four rounds.
	b.Log(report(rounds))
	b.ReportMetric(0, "ns/op") // one op is a whole round: meaningless
	for _, m := range overheadMetrics {
		b.ReportMetric(median(rounds, m.of), m.unit)
	}
}

// overheadMetrics are what the benchmark reports, each the median over
// rounds. Latencies are from the open loop at overheadRate.
var overheadMetrics = []struct {
	unit string
	of   func(round) float64
}{
	{"a_rps", func(r round) float64 { return r.a.closed.Throughput() }},
	{"b_rps", func(r round) float64 { return r.b.closed.Throughput() }},
	{"b/a", round.ratio},
	{"a_p50_ms", func(r round) float64 { return msOf(r.a.open.Latency.P50) }},
	{"a_p99_ms", func(r round) float64 { return msOf(r.a.open.Latency.P99) }},
	{"b_p50_ms", func(r round) float64 { return msOf(r.b.open.Latency.P50) }},
	{"b_p99_ms", func(r round) float64 { return msOf(r.b.open.Latency.P99) }},
	{"a_allocs/req", func(r round) float64 { return r.a.allocsPerReq }},
	{"b_allocs/req", func(r round) float64 { return r.b.allocsPerReq }},
	{"a_cpu_us/req", func(r round) float64 { return float64(r.a.cpuPerReq) / 1e3 }},
	{"b_cpu_us/req", func(r round) float64 { return float64(r.b.cpuPerReq) / 1e3 }},
	{"other_cpu_cores", func(r round) float64 { return max(r.a.otherCores, r.b.otherCores) }},
}

func median(rounds []round, of func(round) float64) float64 {
	vs := make([]float64, len(rounds))
	for i, r := range rounds {
		vs[i] = of(r)
	}
	slices.Sort(vs)
	if n := len(vs); n%2 == 0 {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
	return vs[len(vs)/2]
}

// TestGatewayOverheadSetup keeps the benchmark honest in ordinary test runs:
// both sides must give the same answers, and a short load must go through
// without a failed request.
func TestGatewayOverheadSetup(t *testing.T) {
	t.Parallel()
	a, p := startBaseline(t), startPlatform(t)
	checkSameAnswers(t, a, p)
	for _, url := range []string{a, p} {
		r, err := loadgen.RunClosed(t.Context(), quoteTarget(url), loadgen.Closed{Workers: 4, Requests: 200})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Err(); err != nil {
			t.Errorf("%s: %v", url, err)
		}
		r, err = loadgen.RunOpen(t.Context(), quoteTarget(url), loadgen.Open{Rate: overheadRate, Requests: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Err(); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
}

// withSide labels the goroutines f starts, and theirs, for -tagfocus.
func withSide(side string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", side), func(context.Context) { f() })
}

var quiet = slog.New(slog.DiscardHandler)

// startBaseline serves quote in-process on a bare net/http server and
// returns its URL.
func startBaseline(tb testing.TB) string {
	tb.Helper()
	in, out := mustCompile[quoteIn](tb), mustCompile[quoteOut](tb)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body := baseline(r, w, in, out)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
	var url string
	withSide("baseline", func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		// The same limits as gateway.Server, so only the work differs.
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		go func() { _ = srv.Serve(ln) }()
		tb.Cleanup(func() { _ = srv.Close() })
		url = "http://" + ln.Addr().String() + "/fn/quote"
	})
	return url
}

// baseline does what the gateway and the instance do together, minus the
// trip through NATS: read, decode, validate, unmarshal, call, marshal,
// validate the output, answer.
func baseline(r *http.Request, w http.ResponseWriter, in, out *schemas.Schema) (int, []byte) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, gateway.DefaultMaxBodyBytes))
	if err != nil {
		return http.StatusRequestEntityTooLarge, []byte(`{"code":"payload_too_large"}`)
	}
	doc, err := schemas.Decode(body, schemas.DecodeLimits{})
	if err != nil {
		return http.StatusBadRequest, []byte(`{"code":"invalid_argument"}`)
	}
	if v := in.Validate(doc); len(v) > 0 {
		return http.StatusBadRequest, []byte(`{"code":"invalid_argument"}`)
	}
	var req quoteIn
	if err := json.Unmarshal(body, &req); err != nil {
		return http.StatusBadRequest, []byte(`{"code":"invalid_argument"}`)
	}
	res, err := quote(r.Context(), req)
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"code":"internal"}`)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return http.StatusInternalServerError, []byte(`{"code":"internal"}`)
	}
	doc, err = schemas.Decode(b, schemas.DecodeLimits{})
	if err != nil || len(out.Validate(doc)) > 0 {
		return http.StatusInternalServerError, []byte(`{"code":"internal"}`)
	}
	return http.StatusOK, b
}

func mustCompile[T any](tb testing.TB) *schemas.Schema {
	tb.Helper()
	raw, err := schemas.For[T]()
	if err != nil {
		tb.Fatal(err)
	}
	s, err := schemas.Compile(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// startPlatform serves quote as a function behind a gateway, on an embedded
// NATS server, and returns the gateway's URL for it.
func startPlatform(tb testing.TB) string {
	tb.Helper()
	var url string
	withSide("platform", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s := natstest.Run(tb)
		fnc := natstest.Connect(tb, s)
		fntest.Platform(tb, fnc)
		inst, err := fn.Start(ctx, fnc, fn.Config{Name: "quote", Logger: quiet}, fn.Handle(quote))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = inst.Stop(ctx)
		})
		// quote is an authenticated function: the load carries a key
		// whose rate no run reaches (the baseline ignores it).
		js, err := jetstream.New(fnc)
		if err != nil {
			tb.Fatal(err)
		}
		if benchKey, _, err = apikeys.Create(ctx, js, "bench", []string{"quote"}, "10000000/s"); err != nil {
			tb.Fatal(err)
		}
		// The gateway's own inbox, as yard gateway connects: instances
		// trust its validation only on replies there.
		g, err := gateway.New(ctx, natstest.Connect(tb, s, nats.CustomInboxPrefix(roles.GatewayInbox)), gateway.Config{Addr: "127.0.0.1:0", Logger: quiet})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(g.Close)
		ln, err := g.Listen()
		if err != nil {
			tb.Fatal(err)
		}
		sctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Serve(sctx, ln) }()
		tb.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				tb.Errorf("gateway serve: %v", err)
			}
		})
		url = "http://" + ln.Addr().String() + "/fn/quote"
		// The gateway learns of the function through the registry watch.
		natstest.WaitFor(tb, 10*time.Second, "the gateway to know quote", func() bool {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+benchKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	})
	return url
}

// checkSameAnswers makes sure both sides do the same work: the same answer
// to a good request, a 400 to a bad one.
func checkSameAnswers(tb testing.TB, a, b string) {
	tb.Helper()
	for _, url := range []string{a, b} {
		status, body := post(tb, url, quoteBody)
		if status != http.StatusOK || strings.TrimSpace(body) != quoteWant {
			tb.Fatalf("%s: got %d %s, want 200 %s", url, status, body, quoteWant)
		}
		if status, body := post(tb, url, quoteBad); status != http.StatusBadRequest {
			tb.Fatalf("%s: bad input got %d %s, want 400", url, status, body)
		}
	}
}

// benchKey is the API key the load sends, made by startPlatform.
var benchKey string

func post(tb testing.TB, url string, body []byte) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+benchKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func quoteTarget(url string) loadgen.Target {
	return loadgen.Target{
		URL:    url,
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + benchKey}},
		Body:   quoteBody,
	}
}

// sideResult is what one side measured.
type sideResult struct {
	name         string
	closed, open *loadgen.Result
	allocsPerReq float64       // heap allocations per request, whole process, closed loop
	cpuPerReq    time.Duration // CPU time of the whole process per request, closed loop; 0 if unknown
	otherCores   float64       // CPU used by other processes meanwhile, in cores; -1 if unknown
}

// measure puts the benchmark's load on url: a warm-up, a closed loop for
// throughput, an open loop for latency. Any failed request fails tb.
func measure(tb testing.TB, name, url string, d time.Duration) sideResult {
	tb.Helper()
	t := quoteTarget(url)
	r := sideResult{name: name}
	run := func(phase string, f func(ctx context.Context) (*loadgen.Result, error)) *loadgen.Result {
		var res *loadgen.Result
		var err error
		withSide("loadgen", func() { res, err = f(context.Background()) })
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			tb.Fatalf("%s %s: %v", name, phase, err)
		}
		return res
	}
	run("warm-up", func(ctx context.Context) (*loadgen.Result, error) {
		return loadgen.RunClosed(ctx, t, loadgen.Closed{Workers: overheadWorkers, Duration: overheadWarmUp})
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpu := startCPUWatch()
	r.closed = run("closed loop", func(ctx context.Context) (*loadgen.Result, error) {
		return loadgen.RunClosed(ctx, t, loadgen.Closed{Workers: overheadWorkers, Duration: d})
	})
	runtime.ReadMemStats(&after)
	r.allocsPerReq = float64(after.Mallocs-before.Mallocs) / float64(r.closed.Requests())
	r.cpuPerReq = cpu.selfSince() / time.Duration(r.closed.Requests())
	r.open = run("open loop", func(ctx context.Context) (*loadgen.Result, error) {
		return loadgen.RunOpen(ctx, t, loadgen.Open{Rate: overheadRate, Duration: d})
	})
	r.otherCores = cpu.otherCores()
	return r
}

// round is one measurement of each side, a then b.
type round struct{ a, b sideResult }

func (r round) ratio() float64 { return r.b.closed.Throughput() / r.a.closed.Throughput() }

// report is a verdict on the medians, then a table of the rounds, two
// lines each.
func report(rounds []round) string {
	var s strings.Builder
	fmt.Fprintf(&s, "median of %d rounds: b/a throughput %.2f (target ≥ 0.6); b p99 at %d req/s %.2fms (target < 3ms)",
		len(rounds), median(rounds, round.ratio), overheadRate, median(rounds, func(r round) float64 { return msOf(r.b.open.Latency.P99) }))
	if noisy := median(rounds, func(r round) float64 { return max(r.a.otherCores, r.b.otherCores) }); noisy > 0.25 {
		fmt.Fprintf(&s, "; WARNING: other processes used %.2f cores, figures not trustworthy", noisy)
	}
	fmt.Fprintf(&s, "\n%-13s %5s %10s %8s %8s %9s %8s %8s %9s %10s %8s %6s", "", "round",
		"closed rps", "p50", "p99", "open p50", "p90", "p99", "(service)", "allocs/req", "CPU/req", "other")
	for i, r := range rounds {
		for _, x := range []sideResult{r.a, r.b} {
			label := map[string]string{"a": "a (net/http)", "b": "b (platform)"}[x.name]
			other := "n/a"
			if x.otherCores >= 0 {
				other = fmt.Sprintf("%.2f", x.otherCores)
			}
			fmt.Fprintf(&s, "\n%-13s %5d %10.0f %8s %8s %9s %8s %8s %9s %10.0f %8s %6s", label, i+1,
				x.closed.Throughput(), ms(x.closed.Latency.P50), ms(x.closed.Latency.P99),
				ms(x.open.Latency.P50), ms(x.open.Latency.P90), ms(x.open.Latency.P99),
				"("+ms(x.open.Service.P99)+")", x.allocsPerReq, x.cpuPerReq.Round(100*time.Nanosecond), other)
		}
	}
	return s.String()
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", msOf(d)) }

// cpuWatch measures how much CPU the rest of the machine used while this
// process was being measured, from /proc (Linux); elsewhere it knows
// nothing.
type cpuWatch struct {
	start      time.Time
	busy, self uint64 // clock ticks
	ok         bool
}

func startCPUWatch() cpuWatch {
	busy, ok1 := machineBusyTicks()
	self, ok2 := selfTicks()
	return cpuWatch{start: time.Now(), busy: busy, self: self, ok: ok1 && ok2}
}

// otherCores is the CPU other processes used since the watch started, in
// cores, or -1 if unknown.
func (w cpuWatch) otherCores() float64 {
	busy, ok1 := machineBusyTicks()
	self, ok2 := selfTicks()
	if !w.ok || !ok1 || !ok2 {
		return -1
	}
	other := float64(busy-w.busy) - float64(self-w.self)
	return max(other, 0) / ticksPerSecond / time.Since(w.start).Seconds()
}

// selfSince is the CPU time this process used since the watch started, or
// 0 if unknown.
func (w cpuWatch) selfSince() time.Duration {
	self, ok := selfTicks()
	if !w.ok || !ok {
		return 0
	}
	return time.Duration(self-w.self) * time.Second / ticksPerSecond
}

const ticksPerSecond = 100 // USER_HZ, fixed at 100 on Linux

// machineBusyTicks is the non-idle CPU time of the whole machine.
func machineBusyTicks() (uint64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false
		}
		// user nice system idle iowait irq softirq steal guest guest_nice.
		// Guest time is already counted in user; interrupt time is left
		// out because it is mostly this process's own loopback traffic,
		// which the kernel does not charge to the process.
		switch i {
		case 3, 4, 5, 6, 8, 9:
		default:
			busy += n
		}
	}
	return busy, true
}

// selfTicks is the CPU time (user + system) of this process.
func selfTicks() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces; fields after
	// it start with the state (field 3); utime and stime are fields 14, 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}
