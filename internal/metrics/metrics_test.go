package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// names are the yard_ metrics New registers.
func names(t *testing.T) []string {
	t.Helper()
	m := New()
	// Give the collector one function so its series show in Gather.
	m.SetFunctionStats("f", &FunctionStats{Breakers: map[string]string{"g": "open"}})
	m.GatewayRequests.WithLabelValues("f", "200", "sync")
	m.GatewayDuration.WithLabelValues("f", "sync")
	m.GatewayInFlight.WithLabelValues("f")
	m.Instances.WithLabelValues("f", "1")
	m.ColdStarts.WithLabelValues("f")
	m.ColdStartDuration.WithLabelValues("f")
	m.AsyncBacklog.WithLabelValues("f")
	m.InstanceRestarts.WithLabelValues("f")
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "yard_") {
			out = append(out, f.GetName())
		}
	}
	return out
}

var metricRef = regexp.MustCompile(`yard_[a-z_]+`)

// TestDocsListEveryMetric: docs/operations.md lists every yard_ metric
// (the stable contract), and the Grafana dashboard uses only real ones.
func TestDocsListEveryMetric(t *testing.T) {
	have := names(t)
	if len(have) < 15 {
		t.Fatalf("only %d yard_ metrics registered: %v", len(have), have)
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range have {
		if !strings.Contains(string(ops), "| `"+n+"` |") {
			t.Errorf("docs/operations.md does not list %s", n)
		}
	}
	dash, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range metricRef.FindAllString(string(dash), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(ref, "_bucket"), "_sum"), "_count")
		if !slices.Contains(have, base) {
			t.Errorf("the dashboard uses %s, which is not a metric", ref)
		}
	}
}

// TestNames: Prometheus naming: counters end in _total, histograms of
// time are in seconds, everything starts with yard_.
func TestNames(t *testing.T) {
	m := New()
	m.SetFunctionStats("f", &FunctionStats{})
	m.GatewayRequests.WithLabelValues("f", "200", "sync")
	m.ColdStarts.WithLabelValues("f")
	m.InstanceRestarts.WithLabelValues("f")
	m.GatewayDuration.WithLabelValues("f", "sync")
	m.ColdStartDuration.WithLabelValues("f")
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		n := f.GetName()
		if !strings.HasPrefix(n, "yard_") {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(n, "_total") {
				t.Errorf("counter %s does not end in _total", n)
			}
		case dto.MetricType_HISTOGRAM:
			if !strings.HasSuffix(n, "_seconds") {
				t.Errorf("histogram %s is not in seconds", n)
			}
		}
	}
}
