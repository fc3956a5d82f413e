package trust

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// AccountName is the name of the account that holds the platform.
const AccountName = "YARD"

// ResponseWindow is how long a role that answers requests may send its
// one reply.
const ResponseWindow = time.Hour

// Authority holds the keys and signs: the operator's accounts, and users of
// every role. It configures an embedded server to trust its operator and
// applies account changes (revocations, the anonymous rights) to it live.
type Authority struct {
	keys      *Keys
	resolver  *natsserver.MemAccResolver
	allowAnon bool

	mu      sync.Mutex
	srv     *natsserver.Server
	public  []string
	revoked map[string]int64
}

// NewAuthority returns an authority over keys. allowAnon lets connections
// without credentials in as anonymous callers of the public functions.
func NewAuthority(keys *Keys, allowAnon bool) *Authority {
	return &Authority{keys: keys, resolver: &natsserver.MemAccResolver{}, allowAnon: allowAnon, revoked: map[string]int64{}}
}

// AccountKey is the public key of the account YARD: JetStream keeps its
// data in a folder of that name.
func (a *Authority) AccountKey() string { return pub(a.keys.Account) }

// SignerKey is the public key that signs users with explicit rights.
func (a *Authority) SignerKey() string { return pub(a.keys.Signer) }

// Configure makes opts trust the authority's operator: a memory resolver
// preloaded with both accounts, the system account, and (when anonymous
// access is on) a default sentinel for connections without credentials.
func (a *Authority) Configure(opts *natsserver.Options) error {
	oc := jwt.NewOperatorClaims(pub(a.keys.Operator))
	oc.Name = "switchyard"
	oc.SystemAccount = pub(a.keys.System)
	if _, err := oc.Encode(a.keys.Operator); err != nil {
		return fmt.Errorf("trust: operator: %w", err)
	}
	sc := jwt.NewAccountClaims(pub(a.keys.System))
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(a.keys.Operator)
	if err != nil {
		return fmt.Errorf("trust: system account: %w", err)
	}
	a.mu.Lock()
	accJWT, err := a.accountJWT()
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if err := a.resolver.Store(pub(a.keys.System), sysJWT); err != nil {
		return err
	}
	if err := a.resolver.Store(a.AccountKey(), accJWT); err != nil {
		return err
	}
	opts.TrustedOperators = []*jwt.OperatorClaims{oc}
	opts.AccountResolver = a.resolver
	opts.SystemAccount = pub(a.keys.System)
	if a.allowAnon {
		sentinel, err := a.sentinel()
		if err != nil {
			return err
		}
		opts.DefaultSentinel = sentinel
	}
	return nil
}

// Attach lets the authority apply account changes to a running server.
func (a *Authority) Attach(s *natsserver.Server) {
	a.mu.Lock()
	a.srv = s
	a.mu.Unlock()
}

// accountJWT signs the account YARD as it stands: JetStream without
// limits, the user signer, the anonymous scope with the rights of the
// current public functions, and the revocations.
func (a *Authority) accountJWT() (string, error) {
	ac := jwt.NewAccountClaims(a.AccountKey())
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit}
	ac.SigningKeys.Add(pub(a.keys.Signer))
	scope := jwt.NewUserScope()
	scope.Key = pub(a.keys.Anon)
	scope.Role = "anonymous"
	scope.Description = "callers without credentials: the public functions"
	scope.Template.Permissions = Permissions(roles.Anonymous(a.public...))
	scope.Template.BearerToken = true
	ac.SigningKeys.AddScopedSigner(scope)
	for k, t := range a.revoked {
		ac.RevokeAt(k, time.Unix(t, 0))
	}
	s, err := ac.Encode(a.keys.Operator)
	if err != nil {
		return "", fmt.Errorf("trust: account: %w", err)
	}
	return s, nil
}

// sentinel is the bearer JWT the server gives connections without
// credentials: a user of the anonymous scope, whose rights the scope sets.
func (a *Authority) sentinel() (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	uc := jwt.NewUserClaims(pub(kp))
	uc.Name = "anonymous"
	uc.IssuerAccount = a.AccountKey()
	// A scoped user carries no rights of its own; the scope's template
	// (bearer, so no nonce to sign) gives them at connect.
	uc.SetScoped(true)
	return uc.Encode(a.keys.Anon)
}

// apply re-signs the account and hands it to the running server, which
// closes the connections of revoked users and of anonymous ones (they
// reconnect with the new rights). Called with a.mu held.
func (a *Authority) apply() error {
	accJWT, err := a.accountJWT()
	if err != nil {
		return err
	}
	if err := a.resolver.Store(a.AccountKey(), accJWT); err != nil {
		return err
	}
	if a.srv == nil {
		return nil
	}
	acc, err := a.srv.LookupAccount(a.AccountKey())
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	ac, err := jwt.DecodeAccountClaims(accJWT)
	if err != nil {
		return err
	}
	a.srv.UpdateAccountClaims(acc, ac)
	return nil
}

// SetPublic sets the functions anonymous callers may call.
func (a *Authority) SetPublic(fns []string) error {
	fns = slices.Sorted(slices.Values(fns))
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Equal(fns, a.public) {
		return nil
	}
	a.public = fns
	return a.apply()
}

// Public returns the functions anonymous callers may call now.
func (a *Authority) Public() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.public)
}

// SetRevoked replaces the revocations: user public key → credentials
// issued at or before that time are refused, and live connections
// closed.
func (a *Authority) SetRevoked(revoked map[string]time.Time) error {
	m := make(map[string]int64, len(revoked))
	for k, t := range revoked {
		m[k] = t.Unix()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if equalRevoked(m, a.revoked) {
		return nil
	}
	a.revoked = m
	return a.apply()
}

func equalRevoked(x, y map[string]int64) bool {
	if len(x) != len(y) {
		return false
	}
	for k, v := range x {
		if w, ok := y[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Creds is a minted credential.
type Creds struct {
	// Text is the .creds file: the user JWT and its nkey seed.
	Text []byte
	// User is the user's public key (what a revocation names).
	User    string
	Expires time.Time // zero: does not expire
}

// Mint signs a user called name with rights r, valid for ttl (0: until
// revoked).
func (a *Authority) Mint(name string, r roles.Rights, ttl time.Duration) (Creds, error) {
	if name == "" {
		return Creds{}, errors.New("trust: a credential needs a name")
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Creds{}, err
	}
	uc := jwt.NewUserClaims(pub(kp))
	uc.Name = name
	uc.IssuerAccount = a.AccountKey()
	uc.Permissions = Permissions(r)
	var c Creds
	if ttl > 0 {
		c.Expires = time.Now().Add(ttl).Truncate(time.Second)
		uc.Expires = c.Expires.Unix()
	}
	token, err := uc.Encode(a.keys.Signer)
	if err != nil {
		return Creds{}, fmt.Errorf("trust: %w", err)
	}
	seed, _ := kp.Seed()
	c.Text, err = jwt.FormatUserConfig(token, seed)
	if err != nil {
		return Creds{}, err
	}
	c.User = pub(kp)
	return c, nil
}

// Permissions turns rights into a JWT's permissions.
func Permissions(r roles.Rights) jwt.Permissions {
	var p jwt.Permissions
	p.Sub.Deny.Add(r.DenySubscribe...)
	if r.All {
		return p
	}
	p.Pub.Allow.Add(r.Publish...)
	p.Pub.Deny.Add(r.DenyPublish...)
	p.Sub.Allow.Add(r.Subscribe...)
	if len(r.Publish) == 0 && !r.Responses {
		// An empty allow list means "everything": say "nothing" instead.
		p.Pub.Deny.Add(">")
	}
	if len(r.Subscribe) == 0 {
		p.Sub.Deny.Add(">")
	}
	if r.Responses {
		// One reply per request, for as long as the longest function
		// timeout (the server's default is 2 minutes).
		p.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: ResponseWindow}
	}
	return p
}
