package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/metrics"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// scrape reads /metrics as Prometheus would and returns the value of the
// series name{labels}, or -1 when there is none.
func scrape(t *testing.T, url, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	fam, ok := families[name]
	if !ok {
		return -1
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAfterTraffic: after real HTTP traffic to a function at zero,
// /metrics counts the requests by code and mode, the cold start, the
// instance, and what the instances report (requests handled, handler
// time).
func TestMetricsAfterTraffic(t *testing.T) {
	m := metrics.New()
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute, Metrics: m})
	e.deploy("Hi", 0, func(s *registry.Spec) { s.Access = registry.AccessPublic })
	gw := e.gatewayURL(gateway.Config{Metrics: m})
	ms := httptest.NewServer(m.Handler())
	defer ms.Close()
	url := ms.URL + "/metrics"

	const ok = 5
	for i := range ok {
		resp, err := http.Post(gw+"/fn/echo", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"n%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	for range 2 {
		resp, err := http.Post(gw+"/fn/echo", "application/json", strings.NewReader(`{"name":5}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	sync := map[string]string{"function": "echo", "mode": "sync"}
	if v := scrape(t, url, "yard_gateway_requests_total", map[string]string{"function": "echo", "code": "200", "mode": "sync"}); v != ok {
		t.Errorf("requests 200: %v, want %d", v, ok)
	}
	if v := scrape(t, url, "yard_gateway_requests_total", map[string]string{"function": "echo", "code": "400", "mode": "sync"}); v != 2 {
		t.Errorf("requests 400: %v, want 2", v)
	}
	if v := scrape(t, url, "yard_gateway_request_duration_seconds", sync); v != ok+2 {
		t.Errorf("latency observations: %v, want %d", v, ok+2)
	}
	if v := scrape(t, url, "yard_gateway_requests_in_flight", map[string]string{"function": "echo"}); v != 0 {
		t.Errorf("in flight after the calls: %v", v)
	}
	if v := scrape(t, url, "yard_cold_starts_total", map[string]string{"function": "echo"}); v != 1 {
		t.Errorf("cold starts: %v, want 1", v)
	}
	if v := scrape(t, url, "yard_cold_start_duration_seconds", map[string]string{"function": "echo"}); v != 1 {
		t.Errorf("cold start observations: %v, want 1", v)
	}
	var inst, handled, secs float64
	e.waitFor("yard_instances and the instances' own counts", func() bool {
		inst = scrape(t, url, "yard_instances", map[string]string{"function": "echo", "version": "1"})
		handled = scrape(t, url, "yard_function_requests_total", map[string]string{"function": "echo"})
		secs = scrape(t, url, "yard_function_handler_seconds_total", map[string]string{"function": "echo"})
		if inst == 1 && handled == ok && secs > 0 {
			return true
		}
		t.Logf("instances %v, handled %v, handler seconds %v", inst, handled, secs)
		return false
	})
	if v := scrape(t, url, "yard_async_backlog", map[string]string{"function": "echo"}); v != 0 {
		t.Errorf("async backlog: %v, want 0", v)
	}

	// A removed function leaves the scrapes: no series names it any more.
	if err := e.reg.Remove(context.Background(), "echo"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("echo's series to go", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `function="echo"`) {
			return true
		}
		var left []string
		for _, line := range strings.Split(string(body), "\n") {
			if strings.Contains(line, `function="echo"`) {
				left = append(left, line)
			}
		}
		t.Logf("still scraped: %s", strings.Join(left, "; "))
		return false
	})
}
