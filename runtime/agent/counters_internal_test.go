package agent

import (
	"testing"

	"github.com/switchyard-dev/switchyard/internal/metrics"
)

// TestCountersOnlyGrow: the exported function counters add each
// instance's increase; an instance that misses a pass, or leaves, never
// makes them drop, and a new instance's count is added whole.
func TestCountersOnlyGrow(t *testing.T) {
	f := &function{}
	pass := func(reports map[string]uint64) uint64 {
		l := load{byInstance: map[string]metrics.FunctionStats{}}
		for id, n := range reports {
			l.byInstance[id] = metrics.FunctionStats{Handled: n, HandlerSeconds: float64(n) / 10}
		}
		return f.counters(l).Handled
	}
	for i, tt := range []struct {
		reports map[string]uint64
		want    uint64
	}{
		{map[string]uint64{"a": 5}, 5},
		{map[string]uint64{"a": 8, "b": 2}, 10},
		{map[string]uint64{"b": 3}, 11},         // a slow to answer: no drop
		{map[string]uint64{"a": 8, "b": 3}, 11}, // a back, nothing new
		{map[string]uint64{"c": 4}, 15},         // a and b gone, c new
	} {
		if got := pass(tt.reports); got != tt.want {
			t.Fatalf("pass %d: %d handled, want %d", i, got, tt.want)
		}
	}
	if s := f.totals.HandlerSeconds; s < 1.49 || s > 1.51 {
		t.Errorf("handler seconds %v, want 1.5", s)
	}
}
