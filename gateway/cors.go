package gateway

import (
	"net/http"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// CORS: browsers on the origins in Config.CORSOrigins may call the
// gateway; no other origin gets a CORS header, and with no allowlist the
// gateway sends none at all. Origins match exactly (scheme, host and
// port), case aside; there is no wildcard.

// corsAllowHeaders are the request headers the gateway reads.
var corsAllowHeaders = strings.Join([]string{
	"Authorization", "Content-Type", wire.HeaderRequestID, "Idempotency-Key", wire.HeaderTraceparent,
	wire.HeaderTracestate, "Prefer", wire.HeaderCallbackURL, "X-Callback-Url",
}, ", ")

// corsExposeHeaders are the response headers a page may read.
const corsExposeHeaders = "Yard-Request-Id, Location, Retry-After, WWW-Authenticate"

// corsMaxAge is how long, in seconds, a browser may cache a preflight.
const corsMaxAge = "600"

func (g *Gateway) corsAllowed(origin string) bool {
	if origin == "" {
		return false
	}
	origin = strings.TrimSuffix(origin, "/")
	for _, o := range g.cfg.CORSOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// cors adds the CORS headers for an allowed origin and answers preflight
// requests. It reports whether it answered r (a preflight), and returns the
// error to answer instead for a preflight from an origin not allowed.
func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) (answered bool, err error) {
	if len(g.cfg.CORSOrigins) == 0 {
		return false, nil
	}
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	h := w.Header()
	h.Add("Vary", "Origin")
	if !g.corsAllowed(origin) {
		if preflight {
			return false, errorf(wire.CodePermissionDenied, "origin %q is not allowed to call this gateway", origin)
		}
		return false, nil
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if !preflight {
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		return false, nil
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", "POST, GET")
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true, nil
}
