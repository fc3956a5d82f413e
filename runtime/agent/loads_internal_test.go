package agent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

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
