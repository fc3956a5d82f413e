package gateway

import "slices"

// Kinds of principal.
const (
	PrincipalAnonymous = "anonymous" // no credentials presented
	PrincipalKey       = "key"       // an API key from yard_keys
	PrincipalToken     = "token"     // an OIDC / JWT bearer token
)

// Principal is who an HTTP request comes from, once its credentials (if
// any) are checked. It is the gateway's side of the one access policy:
// public functions are open to every principal, authenticated ones to
// principals granted them, internal ones to none.
type Principal struct {
	Kind string
	// ID identifies the principal in audit records and as the owner of
	// async results: the key id, or the token's issuer and subject.
	ID string
	// Name is what people called it (the key's name, the token's subject).
	Name string
	// Functions are the functions granted; "*" grants every function that
	// is not internal.
	Functions []string
	// Rate and Burst bound the principal's requests per second; zero
	// takes the gateway's default for its kind.
	Rate  float64
	Burst int
	// Operator: the principal may use the /ops routes (an operator API
	// key; tokens never are).
	Operator bool
	// Addr is the client's address as the gateway counts it (its IP, or
	// the /64 of an IPv6 one): the identity of anonymous callers for rate
	// limits and audit records. The gateway sets it.
	Addr string
}

// Owner is what async invocations are owned by: kind:id, so that a key
// and a token can never be the same owner; "" for anonymous principals.
func (p *Principal) Owner() string {
	if p == nil || p.Kind == PrincipalAnonymous || p.ID == "" {
		return ""
	}
	return p.Kind + ":" + p.ID
}

// who names p in audit records: its owner, or ip:<addr> for anonymous.
func (p *Principal) who() string {
	if o := p.Owner(); o != "" {
		return o
	}
	return "ip:" + p.Addr
}

// Grants reports whether p may invoke a function whose policy is
// authenticated.
func (p *Principal) Grants(fn string) bool {
	if p == nil || p.Kind == PrincipalAnonymous {
		return false
	}
	return slices.Contains(p.Functions, "*") || slices.Contains(p.Functions, fn)
}
