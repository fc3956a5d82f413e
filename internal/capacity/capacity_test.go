// Package capacity measures one machine with many functions deployed:
// the real platform as `yard up` runs it (NATS with JetStream and
// authentication, the trust service, an agent, gateways on loopback,
// function processes), one function binary (testdata/manyfn) deployed
// under 1 to 1,000 names, all but one at zero instances:
//
//	go test ./internal/capacity -run '^$' -bench ManyFunctions -benchtime 3x -timeout 30m
//
// (about 40 s on 2 cores). Each size gets a fresh platform. -short runs
// 1, 10 and 100 functions with fewer requests (a smoke, under 10 s once
// built); -capacity.sizes picks other sizes. Each size reports its
// medians; the last prints the table of all. Nothing is asserted on the
// figures: only errors fail.
package capacity

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

var sizesFlag = flag.String("capacity.sizes", "",
	"comma-separated function counts for BenchmarkManyFunctions (default 1,10,100,1000; with -short 1,10,100)")

// Per round, and in -short.
const (
	routes, shortRoutes = 2000, 300 // sequential requests to the warm function
	activations         = 5         // functions woken from zero, when there are that many
	loads               = 3         // new gateways started
)

// figures are one size's medians over its rounds.
type figures struct {
	fns                        int
	routeP50, routeP99         time.Duration
	heap, base, heapUsed       int64 // a gateway's live heap, with no function; its heap in use
	heapPerFn                  int64 // (heap-base)/fns
	load, ls, stats, backlog   time.Duration
	activation                 time.Duration // 0: no function at zero to wake
	deployPerFn, provisionedIn time.Duration
	answered                   int // instances that answered a pass's STATS
}

// TestMain runs the gateway process loadGateway starts, or the benchmarks.
func TestMain(m *testing.M) {
	if os.Getenv(gatewayProcessEnv) != "" {
		os.Exit(gatewayProcess())
	}
	os.Exit(m.Run())
}

// BenchmarkManyFunctions: see the package comment. One iteration is one
// round of every measurement; run it with -benchtime Nx.
func BenchmarkManyFunctions(b *testing.B) {
	sizes, err := parseSizes(*sizesFlag, testing.Short())
	if err != nil {
		b.Fatal(err)
	}
	bin, manifest := build(b)
	var all []figures
	for i, n := range sizes {
		b.Run(fmt.Sprintf("fns=%d", n), func(b *testing.B) {
			all = append(all, manyFunctions(b, n, bin, manifest))
			if i == len(sizes)-1 {
				// A parent benchmark's log is not printed: the last size's is.
				b.Log("all sizes:\n" + table(all))
			}
		})
	}
}

func parseSizes(s string, short bool) ([]int, error) {
	if s == "" {
		s = "1,10,100,1000"
		if short {
			s = "1,10,100"
		}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-capacity.sizes %q: want counts ≥ 1 such as 1,10,100", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// manyFunctions deploys n functions on a fresh platform and measures it.
// fn0000 runs one instance from the start (min 1): it fetches the binary
// once, and is the warm function requests are routed to. The others are
// at zero until woken.
func manyFunctions(b *testing.B, n int, bin string, manifest []byte) figures {
	e := newEnv(b, bin, manifest)
	e.startAgent()
	// A gateway's live heap with no function, to take off each figure.
	var baseHeap []int64
	for range loads {
		baseHeap = append(baseHeap, e.loadGateway().Live)
	}

	names := make([]string, n)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Second+time.Minute)
	defer cancel()
	for i := range names {
		names[i] = fmt.Sprintf("fn%04d", i)
		minInstances := 0
		if i == 0 {
			minInstances = 1
		}
		if err := e.deploy(ctx, names[i], minInstances); err != nil {
			b.Fatalf("deploy %s: %v", names[i], err)
		}
	}
	f := figures{fns: n, deployPerFn: time.Since(start) / time.Duration(n)}
	e.waitProvisioned(names, time.Duration(n)*100*time.Millisecond+time.Minute)
	f.provisionedIn = time.Since(start)

	c := &caller{base: e.serveGateway(), key: e.apiKey(), client: &http.Client{Timeout: time.Minute}}
	ready := time.Now().Add(time.Minute)
	for err := c.call(names[0]); err != nil; err = c.call(names[0]) {
		if time.Now().After(ready) {
			b.Fatalf("the warm function does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	agentNC := e.connect(platform.RoleAgent, roles.AgentInbox)
	agentJS, err := jetstream.New(agentNC)
	if err != nil {
		b.Fatal(err)
	}

	perRound := routes
	if testing.Short() {
		perRound = shortRoutes
	}
	var route, wake, load, lsT, statsT, backlogT []time.Duration
	var heap, heapUsed []int64
	cold := names[1:] // not woken yet
	for b.Loop() {
		for range 50 { // warm up the connection and the path
			if err := c.call(names[0]); err != nil {
				b.Fatal(err)
			}
		}
		for range perRound {
			t := time.Now()
			if err := c.call(names[0]); err != nil {
				b.Fatal(err)
			}
			route = append(route, time.Since(t))
		}
		for k := 0; k < activations && len(cold) > 0; k++ {
			t := time.Now()
			if err := c.call(cold[0]); err != nil {
				b.Fatalf("first request to a function at zero: %v", err)
			}
			wake = append(wake, time.Since(t))
			cold = cold[1:]
		}
		for range loads {
			l := e.loadGateway()
			load = append(load, l.Load)
			heap = append(heap, l.Live)
			heapUsed = append(heapUsed, l.HeapUsed)
		}
		lsT = append(lsT, e.ls(n))
		s, bl, answered := scalePass(agentNC, agentJS, names)
		statsT, backlogT = append(statsT, s), append(backlogT, bl)
		f.answered = answered
	}

	f.routeP50, f.routeP99 = percentile(route, 0.5), percentile(route, 0.99)
	f.activation = percentile(wake, 0.5)
	f.load, f.ls = percentile(load, 0.5), percentile(lsT, 0.5)
	f.stats, f.backlog = percentile(statsT, 0.5), percentile(backlogT, 0.5)
	f.heap, f.base, f.heapUsed = medianInt(heap), medianInt(baseHeap), medianInt(heapUsed)
	f.heapPerFn = (f.heap - f.base) / int64(n)

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(0, "ns/op") // one op is a whole round
	b.ReportMetric(float64(f.routeP50.Nanoseconds()), "ns/route")
	b.ReportMetric(float64(f.routeP99.Nanoseconds()), "p99_ns/route")
	b.ReportMetric(float64(f.heapPerFn), "bytes/fn")
	b.ReportMetric(float64(f.heap), "gw_live_bytes")
	b.ReportMetric(ms(f.load), "ms/load")
	b.ReportMetric(ms(f.ls), "ms/ls")
	b.ReportMetric(ms(f.stats+f.backlog), "ms/pass")
	b.ReportMetric(ms(f.stats), "ms/pass_stats")
	if len(wake) > 0 {
		b.ReportMetric(ms(f.activation), "ms/activation")
	}
	b.ReportMetric(ms(f.deployPerFn), "ms/deploy")
	b.Logf("%d functions: route p50 %s p99 %s; gateway live heap %d B (%d B/fn; with no function %v B; heap in use %d B); load %s; ls %s; pass %s (stats %s, backlog %s, %d instances answered); activation p50 %s max %s of %d; deploy %s/fn, all provisioned in %s",
		n, f.routeP50, f.routeP99, f.heap, f.heapPerFn, baseHeap, f.heapUsed, f.load, f.ls, f.stats+f.backlog, f.stats, f.backlog, f.answered,
		f.activation, percentile(wake, 1), len(wake), f.deployPerFn, f.provisionedIn.Round(time.Millisecond))
	return f
}

// table prints the sizes side by side, with ratios to the first size (to
// 10 for activation, which 1 lacks). heap/fn is a gateway's heap over one
// with no function, per function; added/fn the growth from the row above,
// per function added (the first function's one-time costs left out).
func table(all []figures) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fns\troute p50\tp99\tgateway heap\theap/fn\tadded/fn\tload\tyard ls\tpass (stats+backlog)\tactivation\tdeploy/fn\t")
	ref := all[0]
	for _, f := range all {
		if f.fns == 10 {
			ref = f
		}
	}
	ratio := func(a, b time.Duration) string {
		if b == 0 || a == 0 {
			return ""
		}
		return fmt.Sprintf(" (×%.2f)", float64(a)/float64(b))
	}
	kb := func(v int64) string { return fmt.Sprintf("%.1f KB", float64(v)/1024) }
	for i, f := range all {
		act, added := "-", "-"
		if f.activation > 0 {
			act = f.activation.Round(100*time.Microsecond).String() + ratio(f.activation, ref.activation)
		}
		if i > 0 && f.fns > all[i-1].fns {
			added = kb((f.heap - all[i-1].heap) / int64(f.fns-all[i-1].fns))
		}
		fmt.Fprintf(tw, "%d\t%s%s\t%s\t%.2f MB\t%s\t%s\t%s\t%s\t%s (%s+%s)\t%s\t%s\t\n", f.fns,
			f.routeP50.Round(time.Microsecond), ratio(f.routeP50, all[0].routeP50), f.routeP99.Round(time.Microsecond),
			float64(f.heap)/(1<<20), kb(f.heapPerFn), added,
			f.load.Round(100*time.Microsecond), f.ls.Round(time.Millisecond),
			(f.stats + f.backlog).Round(time.Millisecond), f.stats.Round(time.Millisecond), f.backlog.Round(time.Millisecond),
			act, f.deployPerFn.Round(100*time.Microsecond))
	}
	tw.Flush()
	return sb.String()
}
