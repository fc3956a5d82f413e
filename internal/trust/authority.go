package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// AccountName is the name of the account that holds the platform.
const AccountName = "YARD"

// ResponseWindow is how long a role that answers requests may send its
// one reply.
const ResponseWindow = time.Hour

// Authority holds the keys and signs: the operator's accounts, and users of
// every role. It configures an embedded server to trust its operator, or
// writes the configuration that makes other nats-servers trust it
// (ServerConfig), and applies account changes (revocations, the anonymous
// rights) live: to the embedded server (Attach), or pushed to the servers
// of a cluster over the system account (AttachRemote).
type Authority struct {
	keys      *Keys
	resolver  *natsserver.MemAccResolver
	allowAnon bool

	mu      sync.Mutex
	srv     *natsserver.Server
	sys     *nats.Conn // a system account user's connection to remote servers
	last    string     // the account JWT last signed
	public  []string
	revoked map[string]int64
	// anonSince is when the anonymous rights last changed: anonymous
	// connections made before it have the rights of before.
	anonSince time.Time
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
	oc, _, err := a.operator()
	if err != nil {
		return err
	}
	sysJWT, err := a.systemJWT()
	if err != nil {
		return err
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

// operator is the operator's claims and JWT: it names the system account.
func (a *Authority) operator() (*jwt.OperatorClaims, string, error) {
	oc := jwt.NewOperatorClaims(pub(a.keys.Operator))
	oc.Name = "switchyard"
	oc.SystemAccount = pub(a.keys.System)
	s, err := oc.Encode(a.keys.Operator)
	if err != nil {
		return nil, "", fmt.Errorf("trust: operator: %w", err)
	}
	return oc, s, nil
}

// systemJWT signs the system account SYS.
func (a *Authority) systemJWT() (string, error) {
	sc := jwt.NewAccountClaims(pub(a.keys.System))
	sc.Name = "SYS"
	s, err := sc.Encode(a.keys.Operator)
	if err != nil {
		return "", fmt.Errorf("trust: system account: %w", err)
	}
	return s, nil
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
	scope.Template.AllowedConnectionTypes = ConnectionTypes(roles.Rights{})
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

// apply re-signs the account and hands it to the running server, or pushes
// it to the remote ones; a server closes the connections of revoked users
// and of anonymous ones (they reconnect with the new rights). Called with
// a.mu held. anonChanged says the anonymous rights changed.
func (a *Authority) apply(anonChanged bool) error {
	accJWT, err := a.accountJWT()
	if err != nil {
		return err
	}
	if err := a.resolver.Store(a.AccountKey(), accJWT); err != nil {
		return err
	}
	a.last = accJWT
	if a.srv == nil {
		if a.sys != nil {
			return pushAccount(a.sys, accJWT)
		}
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
	if anonChanged {
		a.anonSince = time.Now()
	}
	// A connection can sit between authenticating and joining the account
	// for as long as the scheduler keeps it there; look again a few times.
	for _, d := range []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second} {
		time.AfterFunc(d, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.sweep()
		})
	}
	a.sweep()
	return nil
}

// sweep closes the connections an update missed. The server checks the
// account's connections once it has applied new claims, so one that
// authenticated under the old claims but joined the account after that
// check would keep its old rights: an anonymous caller of a function no
// longer public, or a revoked user. Any anonymous connection older than
// the last change of the anonymous rights and any connection of a revoked
// credential is closed; the clients reconnect under the new claims.
// Called with a.mu held.
func (a *Authority) sweep() {
	anon := pub(a.keys.Anon)
	var stale []uint64
	for offset := 0; ; {
		cz, err := a.srv.Connz(&natsserver.ConnzOptions{Account: a.AccountKey(), Username: true,
			State: natsserver.ConnOpen, Offset: offset, Limit: 1024})
		if err != nil || len(cz.Conns) == 0 {
			break
		}
		for _, ci := range cz.Conns {
			old := ci.IssuerKey == anon && ci.Start.Before(a.anonSince)
			if at, ok := a.revoked[ci.AuthorizedUser]; ok && ci.JWT != "" {
				uc, err := jwt.DecodeUserClaims(ci.JWT)
				old = old || err != nil || uc.IssuedAt <= at
			}
			if old {
				stale = append(stale, ci.Cid)
			}
		}
		offset += len(cz.Conns)
	}
	for _, cid := range stale {
		_ = a.srv.DisconnectClientByID(cid)
	}
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
	return a.apply(true)
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
	return a.apply(false)
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
	uc.AllowedConnectionTypes = ConnectionTypes(r)
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

// ConnectionTypes are how an identity of rights r may connect: a leaf
// identity as a leaf node only, every other as a client only. The server
// reads a leaf node's rights in terms of its own (what it may send the
// leaf, what it takes from it); no role but the activator's was written
// for that.
func ConnectionTypes(r roles.Rights) jwt.StringList {
	if r.Leaf {
		return jwt.StringList{jwt.ConnectionTypeLeafnode}
	}
	return jwt.StringList{jwt.ConnectionTypeStandard, jwt.ConnectionTypeWebsocket, jwt.ConnectionTypeInProcess}
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

// Remote servers: a nats-server cluster that is not `yard server` trusts
// the operator through the configuration ServerConfig writes, and takes
// account updates pushed over the system account.

const (
	// SubjectClaimsUpdate is where servers with a full resolver take an
	// account JWT (nats-server: accClaimsReqSubj); each answers with a
	// natsserver.ServerAPIClaimUpdateResponse.
	SubjectClaimsUpdate = "$SYS.REQ.CLAIMS.UPDATE"
	// PushTimeout bounds the wait for every server's answer to an update.
	PushTimeout = 5 * time.Second
	// MaxControlLine is the servers' max_control_line, as internal/server
	// sets it: a CONNECT carries the user's JWT, and the platform's roles
	// list their subjects one by one.
	MaxControlLine = 32 << 10
)

// ServerConfig is a nats-server configuration include that makes a server
// trust the authority's operator: the operator, the system account
// (preloaded), a full resolver in resolverDir (on that server) that takes
// the account updates pushed over the system account and never deletes an
// account, the default sentinel when anonymous callers are allowed, and
// the limits the platform needs.
//
// The account YARD is not preloaded: `yard platform` pushes it (a server
// that lacks it asks the others). A preload replaces a server's copy when
// it was signed later, so an include written again would bring back, on
// each server restarted with it, an account without the revocations.
func (a *Authority) ServerConfig(resolverDir string) (string, error) {
	if resolverDir == "" {
		return "", errors.New("trust: the resolver needs a folder")
	}
	_, opJWT, err := a.operator()
	if err != nil {
		return "", err
	}
	sysJWT, err := a.systemJWT()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# Switchyard: trust its operator (written by `yard server-config`).\n")
	fmt.Fprintf(&b, "# Include it in the configuration of every server of the cluster.\n")
	fmt.Fprintf(&b, "operator: %s\n", q(opJWT))
	fmt.Fprintf(&b, "system_account: %s\n", pub(a.keys.System))
	fmt.Fprintf(&b, "# The account %s (%s) and its updates (revocations, the anonymous\n", AccountName, a.AccountKey())
	fmt.Fprintf(&b, "# rights) are pushed to %s by `yard platform`.\n", SubjectClaimsUpdate)
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %s\n  allow_delete: false\n}\n", q(resolverDir))
	fmt.Fprintf(&b, "resolver_preload: {\n  # SYS\n  %s: %s\n}\n", pub(a.keys.System), q(sysJWT))
	if a.allowAnon {
		sentinel, err := a.sentinel()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "# Connections without credentials: callers of the public functions.\n")
		fmt.Fprintf(&b, "default_sentinel: %s\n", q(sentinel))
	}
	fmt.Fprintf(&b, "max_payload: %d\n", wire.MaxPayload)
	fmt.Fprintf(&b, "max_control_line: %d\n", MaxControlLine)
	return b.String(), nil
}

// AccountHeld reports whether any server of the cluster nc's server is
// in holds the account YARD (nc is a system account user's). It waits for
// every server's answer, or PushTimeout.
func (a *Authority) AccountHeld(nc *nats.Conn) (bool, error) {
	want, err := ClusterServers(nc)
	if err != nil {
		return false, err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SYS.REQ.ACCOUNT."+a.AccountKey()+".CLAIMS.LOOKUP", inbox, nil); err != nil {
		return false, err
	}
	deadline := time.Now().Add(PushTimeout)
	for range len(want) {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		if len(m.Data) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// MintSystem signs a user of the system account, with every right there:
// it pushes account updates and asks the servers about themselves. It
// signs with the system account's own key.
func (a *Authority) MintSystem(name string) (Creds, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Creds{}, err
	}
	uc := jwt.NewUserClaims(pub(kp))
	uc.Name = name
	token, err := uc.Encode(a.keys.System)
	if err != nil {
		return Creds{}, fmt.Errorf("trust: %w", err)
	}
	seed, _ := kp.Seed()
	text, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return Creds{}, err
	}
	return Creds{Text: text, User: pub(kp)}, nil
}

// AttachRemote lets the authority apply account changes to remote
// servers: pushed over nc, a connection as a system account user
// (MintSystem), to every server of the cluster.
func (a *Authority) AttachRemote(nc *nats.Conn) {
	a.mu.Lock()
	a.sys = nc
	a.mu.Unlock()
}

// Push sends the account as it stands to the remote servers again, and
// checks that each took it: a server that missed an update (it was
// down, or joined since) catches up; one that holds it already changes
// nothing.
func (a *Authority) Push() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sys == nil {
		return errors.New("trust: no remote servers attached")
	}
	if a.last == "" {
		accJWT, err := a.accountJWT()
		if err != nil {
			return err
		}
		a.last = accJWT
	}
	return pushAccount(a.sys, a.last)
}

// pushAccount publishes an account JWT to SubjectClaimsUpdate and waits
// until every server of the cluster said it took it (each with a full
// resolver answers): the one nc is connected to and those it has routes
// to. An error names the servers that refused it or did not answer.
func pushAccount(nc *nats.Conn, accJWT string) error {
	want, err := ClusterServers(nc)
	if err != nil {
		return err
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("trust: push the account: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(SubjectClaimsUpdate, inbox, []byte(accJWT)); err != nil {
		return fmt.Errorf("trust: push the account: %w", err)
	}
	took := map[string]bool{}
	var errs []error
	deadline := time.Now().Add(PushTimeout)
	for missing := len(want); missing > 0; {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var r natsserver.ServerAPIClaimUpdateResponse
		if err := json.Unmarshal(m.Data, &r); err != nil {
			errs = append(errs, fmt.Errorf("an answer that is not a claims update response: %q", m.Data))
			continue
		}
		name := "?"
		if r.Server != nil {
			name = r.Server.Name
		}
		switch {
		case r.Error != nil:
			errs = append(errs, fmt.Errorf("server %s: %s", name, r.Error.Description))
		case r.Data == nil:
			errs = append(errs, fmt.Errorf("server %s: an empty answer", name))
		default:
			took[name] = true
		}
		if want[name] {
			want[name] = false
			missing--
		}
	}
	var silent []string
	for name, waiting := range want {
		if waiting {
			silent = append(silent, name)
		}
	}
	if len(silent) > 0 {
		slices.Sort(silent)
		errs = append(errs, fmt.Errorf("no answer within %s from %s (a server without a full resolver does not take updates)",
			PushTimeout, strings.Join(silent, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trust: push the account (%d servers took it): %w", len(took), err)
	}
	return nil
}

// ClusterServers names the servers of the cluster nc's server is in: it
// and those it has routes to (nc is a system account user's).
func ClusterServers(nc *nats.Conn) (map[string]bool, error) {
	m, err := nc.Request("$SYS.REQ.SERVER."+nc.ConnectedServerId()+".STATSZ", nil, PushTimeout)
	if err != nil {
		return nil, fmt.Errorf("trust: ask the server about its routes: %w", err)
	}
	var st natsserver.ServerStatsMsg
	if err := json.Unmarshal(m.Data, &st); err != nil || st.Server.Name == "" {
		return nil, fmt.Errorf("trust: ask the server about its routes: %q", m.Data)
	}
	names := map[string]bool{st.Server.Name: true}
	for _, r := range st.Stats.Routes {
		if r != nil && r.Name != "" {
			names[r.Name] = true
		}
	}
	return names, nil
}
