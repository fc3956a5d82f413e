package gateway

import (
	"net/http"
	"strconv"
	"time"
)

func noObserve(error) {}

// observeInvoke starts counting one POST /fn/{name} and returns what ends
// it with the request's outcome. Only functions in the registry are
// counted, so that requests for made-up names cannot grow the label set.
func (g *Gateway) observeInvoke(r *http.Request, name string) func(error) {
	m := g.cfg.Metrics
	if m == nil {
		return noObserve
	}
	if _, known := g.cache.get(name); !known {
		return noObserve
	}
	mode, ok := "sync", http.StatusOK
	if wantsAsync(r) {
		mode, ok = "async", http.StatusAccepted
	}
	start := time.Now()
	inFlight := m.GatewayInFlight.WithLabelValues(name)
	inFlight.Inc()
	return func(err error) {
		inFlight.Dec()
		if _, known := g.cache.get(name); !known {
			// Removed while the request ran: its series are gone, and
			// recording now would bring them back for good.
			m.ForgetRemoved(name)
			return
		}
		code := ok
		if err != nil {
			code = errorStatus(err)
		}
		m.GatewayRequests.WithLabelValues(name, strconv.Itoa(code), mode).Inc()
		m.GatewayDuration.WithLabelValues(name, mode).Observe(time.Since(start).Seconds())
	}
}

// errorStatus is the HTTP status writeError answers err with.
func errorStatus(err error) int {
	if he, ok := err.(*httpError); ok {
		return he.e.Code.HTTPStatus()
	}
	return http.StatusInternalServerError
}
