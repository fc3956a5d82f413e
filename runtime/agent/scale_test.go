package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func activate(nc *nats.Conn, name string) error {
	m, err := nc.Request(wire.ActivatePrefix+name, nil, 30*time.Second)
	if err != nil {
		return err
	}
	if e := wire.ReplyError(m.Header, m.Data); e != nil {
		return e
	}
	return nil
}

func TestScaleToZeroAndActivate(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	e.deploy("Hi", 0)
	// min 0: nothing runs until asked.
	if _, err := e.call(); err == nil {
		t.Fatal("a function at zero answered without activation")
	}
	if err := activate(e.nc, "echo"); err != nil {
		t.Fatal(err)
	}
	if o, err := e.call(); err != nil || o.Greeting != "Hi, Ada" {
		t.Fatalf("after activation: %+v %v", o, err)
	}
	// Idle for longer than the idle timeout: back to zero.
	e.waitFor("scale to zero", func() bool { return len(e.ag.Instances()["echo"]) == 0 })
	if err := activate(e.nc, "nosuch"); err == nil {
		t.Fatal("activated an unknown function")
	}
}

func TestQueuedWorkWakesAFunctionAtZero(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute})
	e.deploy("Hi", 0)
	js, _ := jetstream.New(e.nc)
	// The gateway creates the work queue; here nobody has yet.
	if _, err := invocation.Open(context.Background(), js, invocation.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "yard.async.echo", []byte(`{"name":"queued"}`)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the backlog to start an instance", func() bool { return len(e.ag.Instances()["echo"]) == 1 })
	kv, _ := js.KeyValue(context.Background(), wire.BucketResults)
	e.waitFor("the queued invocation to run", func() bool {
		keys, err := kv.ListKeys(context.Background())
		if err != nil {
			return false
		}
		var all []string
		for k := range keys.Keys() {
			all = append(all, k)
		}
		return len(all) == 1
	})
}

// BenchmarkColdStart measures, in one run:
//
//	go test ./runtime/agent -run '^$' -bench ColdStart -benchtime 1x
//
// zero -> first reply for a plain NATS caller (held by the activator, then
// forwarded) and for an HTTP caller through the gateway (no responders,
// activation, request again), alternating in one environment; deploy ->
// first reply of the new version; and as the baseline a request to an
// instance that already runs.
func BenchmarkColdStart(b *testing.B) {
	for range b.N {
		e := newEnvWith(b, agent.Config{ScaleInterval: 20 * time.Millisecond, IdleTimeout: 400 * time.Millisecond, LeafURLs: leafHere})
		e.deploy("Hi", 0, func(s *registry.Spec) { s.Access = registry.AccessPublic })
		e.waitStandby("echo")
		gw := e.gatewayURL(gateway.Config{})
		post := func() error {
			resp, err := http.Post(gw+"/fn/echo", "application/json", strings.NewReader(`{"name":"Ada"}`))
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "Hi, Ada") {
				return fmt.Errorf("%d %s", resp.StatusCode, body)
			}
			return nil
		}
		// Untimed: the agent fetches the binary from the object store once.
		if _, err := e.call(); err != nil {
			b.Fatal(err)
		}
		const rounds = 15
		var viaNATS, viaGateway, warm []time.Duration
		for range rounds {
			for _, door := range []string{"nats", "gateway"} {
				e.waitFor("zero instances", func() bool { return len(e.ag.Instances()["echo"]) == 0 })
				start := time.Now()
				if door == "nats" {
					if _, err := e.call(); err != nil {
						b.Fatal(err)
					}
					viaNATS = append(viaNATS, time.Since(start))
				} else {
					if err := post(); err != nil {
						b.Fatal(err)
					}
					viaGateway = append(viaGateway, time.Since(start))
				}
				start = time.Now()
				if _, err := e.call(); err != nil {
					b.Fatal(err)
				}
				warm = append(warm, time.Since(start))
			}
		}
		var deploys []time.Duration
		for k := range 7 {
			greeting := "v" + string(rune('a'+k))
			start := time.Now()
			e.deploy(greeting, 1)
			e.waitFor("the new version to answer", func() bool {
				o, err := e.call()
				return err == nil && o.Greeting == greeting+", Ada"
			})
			deploys = append(deploys, time.Since(start))
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		p50 := func(s []time.Duration) time.Duration { slices.Sort(s); return s[len(s)/2] }
		top := func(s []time.Duration) time.Duration { slices.Sort(s); return s[len(s)-1] }
		b.ReportMetric(ms(p50(viaNATS)), "zero_nats_p50_ms")
		b.ReportMetric(ms(top(viaNATS)), "zero_nats_max_ms")
		b.ReportMetric(ms(p50(viaGateway)), "zero_gateway_p50_ms")
		b.ReportMetric(ms(top(viaGateway)), "zero_gateway_max_ms")
		b.ReportMetric(float64(p50(viaNATS))/float64(p50(viaGateway)), "nats/gateway")
		b.ReportMetric(ms(p50(deploys)), "deploy_p50_ms")
		b.ReportMetric(ms(top(deploys)), "deploy_max_ms")
		b.ReportMetric(ms(p50(warm)), "warm_p50_ms")
		b.Logf("zero -> first reply: plain NATS p50 %s (max %s), gateway p50 %s (max %s) over %d rounds each; deploy -> first reply: p50 %s, max %s over %d deploys; warm request p50 %s",
			p50(viaNATS).Round(100*time.Microsecond), top(viaNATS).Round(100*time.Microsecond),
			p50(viaGateway).Round(100*time.Microsecond), top(viaGateway).Round(100*time.Microsecond), rounds,
			p50(deploys).Round(time.Millisecond), top(deploys).Round(time.Millisecond), len(deploys), p50(warm).Round(10*time.Microsecond))
	}
}

// TestGatewayWakesAFunctionAtZero: an HTTP request to a function scaled to
// zero activates it and is answered within its deadline. The function is
// public so an anonymous HTTP caller may invoke it.
func TestGatewayWakesAFunctionAtZero(t *testing.T) {
	e := newEnvWith(t, agent.Config{ScaleInterval: 50 * time.Millisecond, IdleTimeout: time.Minute})
	e.deploy("Hi", 0, func(s *registry.Spec) { s.Access = registry.AccessPublic })
	gw := e.gatewayURL(gateway.Config{})
	resp, err := http.Post(gw+"/fn/echo", "application/json", strings.NewReader(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hi, Ada") {
		t.Fatalf("at zero: %d %s", resp.StatusCode, body)
	}
}

// gatewayURL runs a gateway for this environment, over real HTTP on
// loopback, until the test ends, and returns its URL once it knows echo.
func (e *env) gatewayURL(cfg gateway.Config) string {
	e.t.Helper()
	cfg.Addr = "127.0.0.1:0"
	g, err := gateway.New(context.Background(), e.nc, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	e.t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	e.waitFor("the gateway to know echo", func() bool {
		resp, err := http.Get(srv.URL + "/fn/echo")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return srv.URL
}
