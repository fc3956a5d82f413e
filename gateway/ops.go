package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/logtail"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// OpsPrefix is where the routes of operator keys live: how the platform
// runs (instances, logs, dead letters), for the console and for scripts.
const OpsPrefix = "/ops/"

// pingWait is how long the /ops routes wait for instances to answer a
// micro PING or STATS: long enough for a loaded instance on loopback,
// short enough to poll every two seconds.
const pingWait = 300 * time.Millisecond

// OpsFunction is one row of GET /ops/functions.
type OpsFunction struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Version     int      `json:"version"`
	Access      string   `json:"access"`
	Instances   int      `json:"instances"`
	State       string   `json:"state"` // running, scaled to zero, down
	NextRun     string   `json:"next_run,omitempty"`
	Schedules   []string `json:"schedules,omitempty"`
}

// OpsInstance is one instance in GET /ops/functions/{name}/instances:
// its micro counters summed over its endpoints, and the counters the
// instance reports of itself. They only grow while the instance lives: a
// reader's rate is the change between two reads.
type OpsInstance struct {
	ID               string    `json:"id"`
	Version          string    `json:"version"`
	Started          time.Time `json:"started"`
	Requests         int       `json:"requests"`
	ProcessingTimeNs int64     `json:"processing_time_ns"`
	wire.InstanceStats
}

// ops serves the routes under /ops/ to operator keys; everyone else gets
// 401 (no key) or 403, before anything about the route is told.
func (g *Gateway) ops(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if p.Kind == PrincipalAnonymous {
		return unauthenticated(realm, "the /ops routes need an operator API key: yard keys create NAME --operator")
	}
	if !p.Operator {
		return &httpError{e: wire.Errorf(wire.CodePermissionDenied, "the /ops routes need an operator API key; this %s is not one", p.Kind),
			denied: string(wire.CodePermissionDenied)}
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), OpsPrefix)
	parts := strings.Split(rest, "/")
	for i, s := range parts {
		u, err := url.PathUnescape(s)
		if err != nil {
			return errorf(wire.CodeNotFound, "no route for %s", r.URL.Path)
		}
		parts[i] = u
	}
	get := func(serve func() error) error {
		if err := onlyMethods(r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		return serve()
	}
	switch {
	case len(parts) == 1 && parts[0] == "functions":
		return get(func() error { return g.opsFunctions(w, r) })
	case len(parts) == 3 && parts[0] == "functions" && parts[2] == "instances":
		return get(func() error { return g.opsInstances(w, parts[1]) })
	case len(parts) == 3 && parts[0] == "functions" && parts[2] == "logs":
		return get(func() error { return g.opsLogs(w, r, parts[1]) })
	case len(parts) == 3 && parts[0] == "functions" && parts[2] == "invocations":
		return get(func() error { return g.opsInvocations(w, r, parts[1]) })
	case len(parts) == 3 && parts[0] == "functions" && parts[2] == "versions":
		return get(func() error { return g.opsVersions(w, r, parts[1]) })
	case len(parts) == 1 && parts[0] == "dlq":
		return get(func() error { return g.opsDeadLetters(w, r) })
	case len(parts) == 3 && parts[0] == "dlq" && parts[2] == "replay":
		if r.Method != http.MethodPost {
			return &httpError{e: wire.Errorf(wire.CodeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path), allow: "POST"}
		}
		return g.opsReplay(w, r, p, parts[1])
	}
	return errorf(wire.CodeNotFound, "no route for %s; the /ops routes are functions, functions/{name}/instances, functions/{name}/logs, functions/{name}/invocations, functions/{name}/versions, dlq and dlq/{id}/replay", r.URL.Path)
}

func (g *Gateway) opsFunctions(w http.ResponseWriter, r *http.Request) error {
	specs := g.cache.list()
	counts := map[string]int{}
	if g.conn != nil {
		names := make([]string, 0, len(specs))
		for _, s := range specs {
			names = append(names, s.Name)
		}
		counts = fleet.PingEach(g.conn, names, pingWait)
	}
	out := make([]OpsFunction, 0, len(specs))
	for _, s := range specs {
		f := OpsFunction{Name: s.Name, Description: s.Description, Version: s.Version, Access: string(s.AccessPolicy()),
			Instances: counts[s.Name], State: s.RunState(counts[s.Name])}
		// Read-only: a listing never creates or changes a stream.
		if active, err := invocation.ListSchedules(r.Context(), g.js, s.Name); err == nil {
			for _, a := range active {
				f.Schedules = append(f.Schedules, a.Pattern)
				if !a.Next.IsZero() && (f.NextRun == "" || a.Next.Format(time.RFC3339) < f.NextRun) {
					f.NextRun = a.Next.UTC().Format(time.RFC3339)
				}
			}
		}
		out = append(out, f)
	}
	writeJSON(w, http.StatusOK, map[string]any{"functions": out})
	return nil
}

// known answers a name that is not a registered function's.
func (g *Gateway) known(name string) error {
	if err := wire.ValidateName(name); err != nil {
		return invalid("", err.Error(), "invalid function name")
	}
	if _, ok := g.cache.get(name); !ok {
		return errorf(wire.CodeNotFound, "function %q not found", name)
	}
	return nil
}

func (g *Gateway) opsInstances(w http.ResponseWriter, name string) error {
	if err := g.known(name); err != nil {
		return err
	}
	var stats []micro.Stats
	if g.conn != nil {
		stats = fleet.StatsEach(g.conn, []string{name}, pingWait)[name]
	}
	out := make([]OpsInstance, 0, len(stats))
	for _, st := range stats {
		in := OpsInstance{ID: st.ID, Version: st.Version, Started: st.Started.UTC()}
		for _, e := range st.Endpoints {
			if e == nil {
				continue
			}
			in.Requests += e.NumRequests
			in.ProcessingTimeNs += int64(e.ProcessingTime)
			if len(e.Data) > 0 {
				// Every endpoint carries the instance's own counters.
				_ = json.Unmarshal(e.Data, &in.InstanceStats)
			}
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b OpsInstance) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"function": name, "at": time.Now().UTC(), "instances": out})
	return nil
}

func (g *Gateway) opsLogs(w http.ResponseWriter, r *http.Request, name string) error {
	if err := g.known(name); err != nil {
		return err
	}
	q := r.URL.Query()
	after, err := queryUint(q, "after")
	if err != nil {
		return err
	}
	limit, err := queryUint(q, "limit")
	if err != nil {
		return err
	}
	if limit > logtail.MaxLimit {
		return invalid("", "limit is at most "+strconv.Itoa(logtail.MaxLimit), "invalid limit")
	}
	lines, next, err := logtail.Read(r.Context(), g.js, name, after, int(limit))
	if errors.Is(err, logtail.ErrNoLogs) {
		lines, next, err = []logtail.Line{}, after, nil
	}
	if err != nil {
		return errorf(wire.CodeUnavailable, "the logs cannot be read now: %v", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"function": name, "lines": lines, "next": next})
	return nil
}

// MaxRecent is the most records GET /ops/functions/{name}/invocations
// answers.
const MaxRecent = 200

func (g *Gateway) opsInvocations(w http.ResponseWriter, r *http.Request, name string) error {
	if err := g.known(name); err != nil {
		return err
	}
	limit, err := queryUint(r.URL.Query(), "limit")
	if err != nil {
		return err
	}
	if limit > MaxRecent {
		return invalid("", "limit is at most "+strconv.Itoa(MaxRecent), "invalid limit")
	}
	if limit == 0 {
		limit = 20
	}
	recs, err := invocation.Recent(r.Context(), g.js, name, int(limit))
	if err != nil {
		return errorf(wire.CodeUnavailable, "the records cannot be read now: %v", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"function": name, "invocations": recs})
	return nil
}

// OpsVersion is one deployed version in GET /ops/functions/{name}/versions.
type OpsVersion struct {
	Version     int                `json:"version"`
	DeployedAt  time.Time          `json:"deployed_at,omitzero"`
	SchemaHash  string             `json:"schema_hash"`
	Description string             `json:"description,omitempty"`
	Artifact    *registry.Artifact `json:"artifact,omitempty"`
	Current     bool               `json:"current"`
}

func (g *Gateway) opsVersions(w http.ResponseWriter, r *http.Request, name string) error {
	if err := g.known(name); err != nil {
		return err
	}
	specs, err := g.reg.Versions(r.Context(), name)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return errorf(wire.CodeUnavailable, "the versions cannot be read now: %v", err)
	}
	cur, _ := g.cache.get(name)
	out := make([]OpsVersion, 0, len(specs))
	for i := len(specs) - 1; i >= 0; i-- { // newest first
		s := specs[i]
		out = append(out, OpsVersion{Version: s.Version, DeployedAt: s.DeployedAt.UTC(), SchemaHash: s.SchemaHash,
			Description: s.Description, Artifact: s.Artifact, Current: cur != nil && cur.spec.Version == s.Version})
	}
	writeJSON(w, http.StatusOK, map[string]any{"function": name, "versions": out})
	return nil
}

func (g *Gateway) opsDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name := q.Get("function")
	if name != "" {
		if err := wire.ValidateName(name); err != nil {
			return invalid("", err.Error(), "invalid function name")
		}
	}
	limit, err := queryUint(q, "limit")
	if err != nil {
		return err
	}
	if limit > 1000 {
		return invalid("", "limit is at most 1000", "invalid limit")
	}
	if limit == 0 {
		limit = 100
	}
	letters, err := g.invocations.DeadLetters(r.Context(), name, int(limit))
	if err != nil {
		return errorf(wire.CodeUnavailable, "the dead letters cannot be read now: %v", err)
	}
	if letters == nil {
		letters = []invocation.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": letters})
	return nil
}

func (g *Gateway) opsReplay(w http.ResponseWriter, r *http.Request, p *Principal, id string) error {
	if invocation.ValidateID(id) != nil {
		return invalid("", "an invocation id is 1 to 64 characters of A-Z a-z 0-9 - _", "invalid invocation id")
	}
	seq, err := queryUint(r.URL.Query(), "seq")
	if err != nil {
		return err
	}
	rec, err := g.invocations.Requeue(r.Context(), id, seq, func(fn string) bool {
		_, ok := g.cache.get(fn) // deployed, or registered by a running instance
		return ok
	})
	if errors.Is(err, invocation.ErrNotFound) {
		return errorf(wire.CodeNotFound, "no dead letter for invocation %q (give ?seq= from GET /ops/dlq for one older than its record)", id)
	}
	if errors.Is(err, invocation.ErrGone) {
		return errorf(wire.CodeConflict, "%v", err)
	}
	if err != nil {
		return errorf(wire.CodeUnavailable, "could not replay %s: %v", id, err)
	}
	g.auditOps(p, "replay dead letter", rec.Function+"/"+id)
	loc := "/invocations/" + url.PathEscape(id)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "function": rec.Function, "status": invocation.Queued, "status_url": loc})
	return nil
}

// queryUint reads an optional non-negative integer query parameter.
func queryUint(q url.Values, key string) (uint64, error) {
	v := q.Get(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, invalid("", key+" must be a non-negative integer", "invalid "+key)
	}
	return n, nil
}

// auditOps records what an operator key did, as the gateway records
// denials: a core NATS publish that YARD_AUDIT stores.
func (g *Gateway) auditOps(p *Principal, action, target string) {
	if g.pub == nil {
		return
	}
	data, _ := json.Marshal(deniedEvent{Time: time.Now().UTC(), Who: p.who(), Action: action, Target: target,
		Outcome: "ok", Detail: "from " + p.Addr})
	if err := g.pub(roles.AuditOps, data); err != nil {
		g.log.Warn("audit event not published", logKeyErr, err)
	}
}
