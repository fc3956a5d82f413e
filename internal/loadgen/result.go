package loadgen

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured.
type Result struct {
	// Mode is "closed" or "open".
	Mode string
	// Workers is the number of closed-loop workers, or the open loop's
	// MaxInFlight.
	Workers int
	// Rate is the open loop's target rate per second; zero when closed.
	Rate float64
	// OK, Non2xx and Errors count the answers: 2xx, any other status, and
	// transport failures (refused, reset, timed out, …).
	OK, Non2xx, Errors int
	// FirstFailure describes one failed request ("" when none failed).
	FirstFailure string
	// Elapsed runs from the first request due to the last answer.
	Elapsed time.Duration
	// Latency runs from when each request was due to its answer. In a
	// closed loop a request is due when it is sent; in an open loop it is
	// due on its schedule, so time spent waiting to be sent counts, and so
	// does the lateness of the generator's own timer (up to about a
	// millisecond on an idle Linux machine, where the Go runtime sleeps in
	// whole milliseconds).
	Latency Percentiles
	// Service runs from when each request was actually sent to its answer.
	// It equals Latency in a closed loop; in an open loop, Latency well
	// above Service means the generator fell behind its schedule.
	Service Percentiles
}

// Requests is the number of requests answered or failed.
func (r *Result) Requests() int { return r.OK + r.Non2xx + r.Errors }

// Failed is the number of requests that got no 2xx answer.
func (r *Result) Failed() int { return r.Non2xx + r.Errors }

// Throughput is requests completed (answered or failed) per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests()) / r.Elapsed.Seconds()
}

// Err describes the failed requests of the run, nil when every request got
// a 2xx answer.
func (r *Result) Err() error {
	if r.Failed() == 0 {
		return nil
	}
	return fmt.Errorf("loadgen: %d of %d requests failed (%d non-2xx, %d errors); first: %s",
		r.Failed(), r.Requests(), r.Non2xx, r.Errors, r.FirstFailure)
}

// String is a one-line summary, e.g.
//
//	closed 16 workers: 41822 req in 3s = 13940 req/s; latency p50 1.02ms p90 1.85ms p99 3.61ms max 9.8ms; ok
func (r *Result) String() string {
	var b strings.Builder
	switch r.Mode {
	case "open":
		fmt.Fprintf(&b, "open %g req/s", r.Rate)
	default:
		fmt.Fprintf(&b, "%s %d workers", r.Mode, r.Workers)
	}
	fmt.Fprintf(&b, ": %d req in %s = %.0f req/s; latency %s", r.Requests(), r.Elapsed.Round(time.Millisecond), r.Throughput(), r.Latency)
	if r.Mode == "open" {
		fmt.Fprintf(&b, "; service %s", r.Service)
	}
	if r.Failed() == 0 {
		b.WriteString("; ok")
	} else {
		fmt.Fprintf(&b, "; FAILED %d (%d non-2xx, %d errors): %s", r.Failed(), r.Non2xx, r.Errors, r.FirstFailure)
	}
	return b.String()
}

// Percentiles summarize a set of latencies by nearest rank.
type Percentiles struct {
	N                   int
	P50, P90, P99, P999 time.Duration
	Max, Mean           time.Duration
}

func (p Percentiles) String() string {
	if p.N == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max))
}

// ms formats d in milliseconds with three significant digits or more.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
}

// Summarize computes the percentiles of ds, sorting it in place.
func Summarize(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Percentiles{
		N:    len(ds),
		P50:  rank(ds, 0.50),
		P90:  rank(ds, 0.90),
		P99:  rank(ds, 0.99),
		P999: rank(ds, 0.999),
		Max:  ds[len(ds)-1],
		Mean: sum / time.Duration(len(ds)),
	}
}

// rank is the nearest-rank percentile q of sorted ds: the smallest value
// that at least q of the values are at or below.
func rank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func merge(ts []tally, elapsed time.Duration) *Result {
	r := &Result{Elapsed: elapsed}
	var latency, service []time.Duration
	for _, t := range ts {
		r.OK += t.ok
		r.Non2xx += t.non2xx
		r.Errors += t.errors
		if r.FirstFailure == "" {
			r.FirstFailure = t.firstFailure
		}
		latency = append(latency, t.latency...)
		service = append(service, t.service...)
	}
	r.Latency = Summarize(latency)
	r.Service = Summarize(service)
	return r
}
