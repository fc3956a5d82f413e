package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// The authentication chain. A request without Authorization is anonymous.
// "Authorization: Bearer <token>" is an API key when the token has a key's
// prefix (yk_), checked against the keys in memory (apikeys.Cache); any
// other token goes to the OIDC verifier when one is configured. Anything
// else, a key that does not parse, is unknown or revoked, a token no
// verifier accepts, another scheme, or two Authorization headers, is 401
// unauthenticated with WWW-Authenticate: a bad credential is never taken
// for no credential.

const (
	realm = `Bearer realm="switchyard"`
	// wwwInvalid is the challenge of a credential that was refused
	// (RFC 6750 section 3).
	wwwInvalid = realm + `, error="invalid_token"`
)

// parseKey splits an API key into id and secret; see internal/apikeys for
// the format.
func parseKey(s string) (id, secret string, err error) { return apikeys.Parse(s) }

func unauthenticated(challenge, format string, args ...any) *httpError {
	return &httpError{e: wire.Errorf(wire.CodeUnauthenticated, format, args...), wwwAuth: challenge, denied: string(wire.CodeUnauthenticated)}
}

// authenticate returns who r comes from.
func (g *Gateway) authenticate(r *http.Request) (*Principal, error) {
	addr := clientKey(r.RemoteAddr)
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return &Principal{Kind: PrincipalAnonymous, Addr: addr}, nil
	}
	anon := &Principal{Kind: PrincipalAnonymous, Addr: addr} // for the audit of a refusal
	if len(vals) > 1 {
		return anon, unauthenticated(wwwInvalid, "more than one Authorization header")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return anon, unauthenticated(realm, "Authorization must be: Bearer <API key or token>")
	}
	if strings.HasPrefix(token, apikeys.Prefix) {
		if _, _, err := parseKey(token); err != nil {
			return anon, unauthenticated(wwwInvalid, "malformed API key")
		}
		rec, err := g.keys.Verify(token)
		switch {
		case errors.Is(err, apikeys.ErrRevoked):
			return anon, unauthenticated(wwwInvalid, "the API key has been revoked")
		case err != nil:
			return anon, unauthenticated(wwwInvalid, "unknown API key")
		}
		return &Principal{Kind: PrincipalKey, ID: rec.ID, Name: rec.Name, Functions: rec.Functions,
			Rate: rec.Rate, Burst: rec.Burst, Operator: rec.Operator, Addr: addr}, nil
	}
	return g.authenticateToken(r, token, anon)
}

// tokenVerifier checks a bearer token that is not an API key (OIDC).
type tokenVerifier interface {
	Authenticate(ctx context.Context, raw string) (*Principal, error)
}

// authenticateToken checks a token that is not an API key. Without a
// verifier, tokens are refused, never ignored. The principal returned is
// always of kind token, with an id, so it can own results.
func (g *Gateway) authenticateToken(r *http.Request, token string, anon *Principal) (*Principal, error) {
	if g.tokens == nil {
		return anon, unauthenticated(wwwInvalid, "not an API key, and this gateway accepts no other bearer tokens")
	}
	p, err := g.tokens.Authenticate(r.Context(), token)
	if err != nil || p == nil || p.ID == "" {
		if errors.Is(err, ErrTokenKeysUnavailable) {
			g.log.Warn("bearer token not checked: the provider's keys are unavailable", logKeyErr, err)
			he := unauthenticated(wwwInvalid, "invalid bearer token")
			he.keysUnavailable = true // the provider's outage, not the caller's guess
			return anon, he
		}
		// A TokenError says why in a fixed phrase that never holds the
		// token or its claims, so the client may read it.
		var te *TokenError
		if errors.As(err, &te) {
			return anon, unauthenticated(wwwInvalid, "%s", te.Error())
		}
		return anon, unauthenticated(wwwInvalid, "invalid bearer token")
	}
	q := *p
	q.Kind, q.Addr = PrincipalToken, anon.Addr
	return &q, nil
}

// may reports whether p may call, and see, function spec over HTTP.
func may(p *Principal, spec *registry.Spec) bool {
	switch spec.AccessPolicy() {
	case registry.AccessPublic:
		return true
	case registry.AccessAuthenticated:
		return p.Grants(spec.Name)
	default: // internal, or a policy this gateway does not know
		return false
	}
}

// authorize applies the access policy of function name for p: public is
// anyone's; authenticated needs a grant (401 anonymous, 403 otherwise);
// internal is answered exactly like an unknown function, for everyone.
func (g *Gateway) authorize(p *Principal, name string) (*function, error) {
	f, ok := g.cache.get(name)
	if !ok || f.spec.AccessPolicy() != registry.AccessPublic && f.spec.AccessPolicy() != registry.AccessAuthenticated {
		return nil, notFound(name)
	}
	if may(p, f.spec) {
		return f, nil
	}
	if p.Kind == PrincipalAnonymous {
		return nil, unauthenticated(realm, "function %q needs an API key or token: send Authorization: Bearer <key>", name)
	}
	return nil, &httpError{e: wire.Errorf(wire.CodePermissionDenied, "this %s is not granted function %q", p.Kind, name),
		denied: string(wire.CodePermissionDenied)}
}

// notFound is the one answer for a function that does not exist or is
// internal, so that the two cannot be told apart.
func notFound(name string) *httpError {
	return errorf(wire.CodeNotFound, "function %q not found", name)
}

// specView is a spec as served over HTTP: the names of its environment
// variables, never their values (which may hold what the function should
// have kept as a secret).
type specView struct {
	registry.Spec
	EnvNames []string `json:"env_names,omitempty"`
}

func viewOf(s *registry.Spec) specView {
	v := specView{Spec: *s}
	v.Env = nil
	v.EnvNames = slices.Sorted(maps.Keys(s.Env))
	return v
}

// visible lists the functions p may call, as served by GET /fn.
func (g *Gateway) visible(p *Principal) []specView {
	specs := g.cache.list()
	out := make([]specView, 0, len(specs))
	for _, s := range specs {
		if may(p, s) {
			out = append(out, viewOf(s))
		}
	}
	return out
}

// deniedEvent is what the gateway publishes on yard.audit.denied, in the
// audit log's event shape (time, who, action, target, outcome, detail).
type deniedEvent struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// AuditDeniedSubject is where the gateway reports refused requests (401,
// 403 and its own 429), with a core NATS publish: the stream YARD_AUDIT
// stores them when it exists, and a refusal never waits on JetStream.
const AuditDeniedSubject = wire.AuditPrefix + "denied"

// auditRate bounds the denied events one gateway publishes, so that a
// flood of refused requests cannot flood the audit log; the next event
// after a drop says how many were dropped.
const auditRate, auditBurst = 10, 20

func newAuditLimiter() *rate.Limiter { return rate.NewLimiter(auditRate, auditBurst) }

// auditDenied publishes one denied event, unless over auditRate.
func (g *Gateway) auditDenied(p *Principal, r *http.Request, outcome string) {
	if g.pub == nil {
		return
	}
	if !g.auditLim.Allow() {
		g.auditDropped.Add(1)
		return
	}
	action, target := describe(r)
	ev := deniedEvent{Time: time.Now().UTC(), Who: p.who(), Action: action, Target: target, Outcome: "denied: " + outcome}
	if p.Kind != PrincipalAnonymous {
		ev.Detail = "from " + p.Addr
	}
	if n := g.auditDropped.Swap(0); n > 0 {
		ev.Detail = strings.TrimPrefix(ev.Detail+"; ", "; ") + plural(n, "earlier denial") + " not reported (rate limit)"
	}
	data, _ := json.Marshal(ev)
	if err := g.pub(AuditDeniedSubject, data); err != nil {
		g.log.Warn("audit event not published", logKeyErr, err)
	}
}

func plural(n int64, what string) string {
	s := strconv.FormatInt(n, 10) + " " + what
	if n != 1 {
		s += "s"
	}
	return s
}

// describe says what a request tried, for audit records: invoke, describe
// or list functions, or read an invocation; the target is cut to 128
// bytes, since it comes from the client.
func describe(r *http.Request) (action, target string) {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/fn/") && r.Method == http.MethodPost:
		action, target = "invoke", strings.TrimPrefix(path, "/fn/")
	case strings.HasPrefix(path, "/fn/"):
		action, target = "describe", strings.TrimPrefix(path, "/fn/")
	case path == "/fn":
		action = "list functions"
	case strings.HasPrefix(path, "/invocations/"):
		action, target = "read invocation", strings.TrimPrefix(path, "/invocations/")
	default:
		action, target = r.Method, path
	}
	if len(target) > 128 {
		target = target[:128]
	}
	return action, target
}
