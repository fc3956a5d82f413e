// Package metrics holds Switchyard's Prometheus metrics: their names are a
// stable contract (docs/operations.md lists them), and every component
// that records them takes a *Metrics that may be nil (no metrics).
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where yard up serves /metrics: loopback, apart from the
// public gateway port.
const DefaultAddr = "127.0.0.1:9464"

// Latency buckets, in seconds: from a fast in-process reply to a timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics is one process's metrics and the registry that serves them.
type Metrics struct {
	reg *prometheus.Registry

	// The gateway: one request is counted once it is answered.
	GatewayRequests *prometheus.CounterVec   // yard_gateway_requests_total{function,code,mode}
	GatewayDuration *prometheus.HistogramVec // yard_gateway_request_duration_seconds{function,mode}
	GatewayInFlight *prometheus.GaugeVec     // yard_gateway_requests_in_flight{function}

	// The agent.
	Instances         *prometheus.GaugeVec     // yard_instances{function,version}
	ColdStarts        *prometheus.CounterVec   // yard_cold_starts_total{function}
	ColdStartDuration *prometheus.HistogramVec // yard_cold_start_duration_seconds{function}
	AsyncBacklog      *prometheus.GaugeVec     // yard_async_backlog{function}
	InstanceRestarts  *prometheus.CounterVec   // yard_instance_restarts_total{function}
	// ActivatorRequests counts plain NATS requests the activator took for
	// a function with no instance, by what became of them.
	ActivatorRequests *prometheus.CounterVec // yard_activator_requests_total{function,outcome}

	fns functionStats
}

// New registers every metric, and the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.GatewayRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yard_gateway_requests_total",
		Help: "HTTP requests to functions answered by the gateway, by function, HTTP status code and mode (sync or async).",
	}, []string{"function", "code", "mode"})
	m.GatewayDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "yard_gateway_request_duration_seconds",
		Help:    "Time from a function request's arrival at the gateway to its answer, by function and mode.",
		Buckets: latencyBuckets,
	}, []string{"function", "mode"})
	m.GatewayInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "yard_gateway_requests_in_flight",
		Help: "Function requests the gateway is handling now, by function.",
	}, []string{"function"})
	m.Instances = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "yard_instances",
		Help: "Instances this agent runs, by function and version (ready or starting).",
	}, []string{"function", "version"})
	m.ColdStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yard_cold_starts_total",
		Help: "Activations of a function that had no instance, by function.",
	}, []string{"function"})
	m.ColdStartDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "yard_cold_start_duration_seconds",
		Help:    "Time from an activation of a function with no instance to its first ready instance.",
		Buckets: latencyBuckets,
	}, []string{"function"})
	m.AsyncBacklog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "yard_async_backlog",
		Help: "Async invocations queued and not yet taken, by function (as seen by the agent that scales it).",
	}, []string{"function"})
	m.InstanceRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yard_instance_restarts_total",
		Help: "Instance processes that exited and were restarted by this agent, by function.",
	}, []string{"function"})
	m.ActivatorRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "yard_activator_requests_total",
		Help: "Requests to a function with no instance that this agent's activator handled, by function and outcome: held (kept until an instance serves), forwarded, buffer_full, expired (its deadline passed first), failed.",
	}, []string{"function", "outcome"})
	m.reg.MustRegister(m.GatewayRequests, m.GatewayDuration, m.GatewayInFlight,
		m.Instances, m.ColdStarts, m.ColdStartDuration, m.AsyncBacklog, m.InstanceRestarts, m.ActivatorRequests, &m.fns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Serve serves /metrics on addr until ctx ends. It returns once the
// listener is open (an address in use is an error at once) and serves in
// the background; the returned address is the one listened on.
func (m *Metrics) Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}

// FunctionStats is what a function's live instances report together (the
// sum over instances; counters restart when an instance does, which
// Prometheus's rate() takes as a reset).
type FunctionStats struct {
	Handled, Errors        uint64
	HandlerSeconds         float64
	InFlight               int
	Retries, DeadLetters   int64
	TicksRun, TicksSkipped int64
	Breakers               map[string]string // by target: closed, open, half-open
}

// SetFunctionStats records the latest report of function name's
// instances; nil forgets the function (no longer deployed).
func (m *Metrics) SetFunctionStats(name string, st *FunctionStats) {
	if m == nil {
		return
	}
	m.fns.set(name, st)
}

// ForgetFunction drops what this process reports of function name's
// instances (their stats and the async backlog): another agent reports
// them now, and two reports would be summed twice.
func (m *Metrics) ForgetFunction(name string) {
	if m == nil {
		return
	}
	m.fns.set(name, nil)
	m.AsyncBacklog.DeletePartialMatch(prometheus.Labels{"function": name})
}

// ForgetRemoved drops every series of function name, which is no longer
// deployed, so that removed functions do not stay in scrapes for ever.
func (m *Metrics) ForgetRemoved(name string) {
	if m == nil {
		return
	}
	m.ForgetFunction(name)
	l := prometheus.Labels{"function": name}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.GatewayRequests, m.GatewayDuration, m.GatewayInFlight, m.Instances, m.ColdStarts, m.ColdStartDuration, m.InstanceRestarts,
		m.ActivatorRequests} {
		v.DeletePartialMatch(l)
	}
}

// functionStats exports the latest reports at scrape time.
type functionStats struct {
	mu sync.Mutex
	by map[string]FunctionStats
}

var (
	descHandled = prometheus.NewDesc("yard_function_requests_total",
		"Requests and async invocations handled by a function's live instances (sum over instances).", []string{"function"}, nil)
	descErrors = prometheus.NewDesc("yard_function_errors_total",
		"Of those, the ones answered with an error.", []string{"function"}, nil)
	descHandlerSeconds = prometheus.NewDesc("yard_function_handler_seconds_total",
		"Time a function's live instances spent handling requests, in seconds; divide its rate by yard_function_requests_total's for the mean handler duration.", []string{"function"}, nil)
	descInFlight = prometheus.NewDesc("yard_function_in_flight",
		"Requests a function's instances are handling now.", []string{"function"}, nil)
	descRetries = prometheus.NewDesc("yard_async_retries_total",
		"Async invocation attempts that failed and were scheduled again.", []string{"function"}, nil)
	descDeadLetters = prometheus.NewDesc("yard_async_dead_letters_total",
		"Async invocations given up on and moved to YARD_DLQ.", []string{"function"}, nil)
	descTicks = prometheus.NewDesc("yard_schedule_ticks_total",
		"Schedule ticks, by outcome: run, or skipped (a later tick had fired).", []string{"function", "outcome"}, nil)
	descBreaker = prometheus.NewDesc("yard_breaker_state",
		"Circuit breakers of a function's calls to another: 1 for the state each caller-target pair is in.", []string{"caller", "target", "state"}, nil)
)

func (f *functionStats) set(name string, st *FunctionStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string]FunctionStats{}
	}
	if st == nil {
		delete(f.by, name)
		return
	}
	f.by[name] = *st
}

func (f *functionStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHandled, descErrors, descHandlerSeconds, descInFlight, descRetries, descDeadLetters, descTicks, descBreaker} {
		ch <- d
	}
}

func (f *functionStats) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, st := range f.by {
		ch <- prometheus.MustNewConstMetric(descHandled, prometheus.CounterValue, float64(st.Handled), name)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(st.Errors), name)
		ch <- prometheus.MustNewConstMetric(descHandlerSeconds, prometheus.CounterValue, st.HandlerSeconds, name)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), name)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(st.Retries), name)
		ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.CounterValue, float64(st.DeadLetters), name)
		ch <- prometheus.MustNewConstMetric(descTicks, prometheus.CounterValue, float64(st.TicksRun), name, "run")
		ch <- prometheus.MustNewConstMetric(descTicks, prometheus.CounterValue, float64(st.TicksSkipped), name, "skipped")
		for target, state := range st.Breakers {
			for _, s := range []string{"closed", "open", "half-open"} {
				v := 0.0
				if s == state {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, v, name, target, s)
			}
		}
	}
}
