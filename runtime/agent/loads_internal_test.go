package agent

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestCollectLoads: each function's instances are asked on their own
// subject and summed by function; a service not asked about is not
// counted.
func TestCollectLoads(t *testing.T) {
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	add := func(name string, completed int64) {
		data, _ := json.Marshal(map[string]any{"completed": completed, "in_flight": 1})
		svc, err := micro.AddService(nc, micro.Config{Name: name, Version: "1.0.0",
			StatsHandler: func(*micro.Endpoint) any { return json.RawMessage(data) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.AddEndpoint("call", micro.HandlerFunc(func(micro.Request) {})); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
	}
	add("alpha", 3)
	for range 3 {
		add("beta", 5)
	}
	add("gamma", 7)
	names := []string{"alpha", "beta", "absent"}
	for i := range 200 { // more functions than are asked at once
		names = append(names, "f"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	loads := collectLoads(nc, names, 300*time.Millisecond)
	if a, b := loads["alpha"], loads["beta"]; a.instances != 1 || b.instances != 3 || a.count != 3 || b.count != 15 || b.inFlight != 3 {
		t.Fatalf("alpha %+v, beta %+v", a, b)
	}
	if l, ok := loads["absent"]; !ok || l.instances != 0 {
		t.Errorf("absent: %+v %v", l, ok)
	}
	if _, ok := loads["gamma"]; ok || len(loads) != len(names) {
		t.Errorf("%d loads for %d functions asked about; gamma in: %v", len(loads), len(names), ok)
	}
}

// BenchmarkScalePassStats measures the STATS part of a scale pass with 1
// to 1,000 functions deployed, one instance each:
//
//	go test ./runtime/agent -run '^$' -bench ScalePassStats -benchtime 3x
//
// A pass waits statsWait for replies once, whatever the number of
// functions, so ms/pass should stay flat.
func BenchmarkScalePassStats(b *testing.B) {
	s := natstest.Run(b)
	nc := natstest.Connect(b, s)
	svcNC := natstest.Connect(b, s)
	var names []string
	for _, n := range []int{1, 10, 100, 1000} {
		for i := len(names); i < n; i++ {
			name := fmt.Sprintf("fn%04d", i)
			svc, err := micro.AddService(svcNC, micro.Config{Name: name, Version: "1.0.0",
				StatsHandler: func(*micro.Endpoint) any { return json.RawMessage(`{"completed":1}`) }})
			if err != nil {
				b.Fatal(err)
			}
			if err := svc.AddEndpoint("call", micro.HandlerFunc(func(micro.Request) {})); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = svc.Stop() })
			names = append(names, name)
		}
		b.Run(fmt.Sprintf("functions=%d", n), func(b *testing.B) {
			var answered int
			for range b.N {
				loads := collectLoads(nc, names, statsWait)
				answered = 0
				for _, l := range loads {
					answered += l.instances
				}
			}
			if answered != n {
				b.Fatalf("%d of %d functions answered", answered, n)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
			b.ReportMetric(float64(statsWait.Milliseconds()), "wait_ms")
		})
		if n == 10 {
			// The baseline: one request per function in turn, as passes
			// asked before, waiting statsWait for each.
			b.Run("functions=10/one-at-a-time", func(b *testing.B) {
				for range b.N {
					for _, name := range names {
						if _, err := fleet.Stats(nc, name, statsWait); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/pass")
			})
		}
	}
}
