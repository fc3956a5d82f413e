// Package platform starts what the process that owns a Switchyard NATS
// server runs: the embedded server with authentication on (package trust),
// the platform's streams and buckets, made once with the admin's rights so
// that no other role needs the right to create them, and the trust service.
// `yard up`, `yard server` and the tests start it the same way.
package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// Roles whose credential files Start keeps in the data directory.
const (
	RoleAdmin   = "admin"
	RoleGateway = "gateway"
	RoleAgent   = "agent"
)

// Config of a platform server.
type Config struct {
	Server server.Config
	// Dir is the data directory: the keys go to Dir/trust, the admin's
	// credential to Dir/admin.creds, the gateway's and the agent's to
	// Dir/creds/<role>.creds (all mode 0600).
	Dir string
	// AllowAnonymous lets connections without credentials in as callers
	// of the public functions.
	AllowAnonymous bool
	// InstanceTTL is the lifetime of function instance credentials.
	InstanceTTL time.Duration
	Logger      *slog.Logger
	// TrustDir holds the keys (default Dir/trust). The nodes of a cluster
	// share one: a copy of the first node's.
	TrustDir string
	// CredsDir is where the role credential files go (default Dir).
	CredsDir string
	// Replicas is the replica count of the platform's streams on a
	// cluster; 0 chooses: MaxAutoReplicas on that many nodes or more, else
	// the cluster's size. Streams below it are raised, never lowered.
	Replicas int
}

// Platform is a running server with its trust service, or (StartRemote)
// the control plane of a nats-server cluster run by others.
type Platform struct {
	// NS is the embedded server; nil on a remote cluster.
	NS   *natsserver.Server
	Auth *trust.Authority
	dir  string
	// url and connOpts reach a remote cluster.
	url      string
	connOpts []nats.Option

	cancel context.CancelFunc
	done   chan error
	keeper chan struct{} // closed when keepReplicas returned
	conns  []*nats.Conn

	closeOnce sync.Once
}

// Start runs the server, makes the platform's stores and starts the trust
// service; it returns once connections are told the current rights.
func Start(ctx context.Context, cfg Config) (*Platform, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dir == "" {
		return nil, errors.New("platform: Dir is required")
	}
	if cfg.TrustDir == "" {
		cfg.TrustDir = filepath.Join(cfg.Dir, "trust")
	}
	if cfg.CredsDir == "" {
		cfg.CredsDir = cfg.Dir
	}
	keys, err := trust.LoadKeys(cfg.TrustDir)
	if err != nil {
		return nil, err
	}
	if c := cfg.Server.Cluster; c != nil {
		cl := *c
		cl.User = trust.RouteUser
		if cl.Password, err = keys.RoutePassword(); err != nil {
			return nil, err
		}
		cfg.Server.Cluster = &cl
	}
	auth := trust.NewAuthority(keys, cfg.AllowAnonymous)
	cfg.Server.Configure = auth.Configure
	cfg.Server.Account = auth.AccountKey()
	ns, err := server.Start(cfg.Server)
	if err != nil {
		return nil, err
	}
	auth.Attach(ns)
	p := &Platform{NS: ns, Auth: auth, dir: cfg.CredsDir, done: make(chan error, 1)}
	// Alone, a store that cannot be made is final; a cluster that is
	// still forming may not place one yet.
	err = p.run(ctx, cfg, ns.JetStreamIsClustered, func(ctx context.Context, js jetstream.JetStream) {
		keepReplicas(ctx, func(context.Context) (int, bool) {
			if !ns.JetStreamIsClustered() || !ns.JetStreamIsLeader() {
				return 0, false
			}
			return replicasFor(ns, cfg.Replicas), true
		}, js, cfg.Logger)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// run is what Start and StartRemote share once the platform can connect:
// as admin, wait for JetStream and make the platform's stores (trying
// again while retry says so), answer yard.servers (embedded only), keep
// the role credential files, run keep (the replicas) and the trust
// service; it returns once the service has told the servers the current
// rights. On an error the platform is closed.
func (p *Platform) run(ctx context.Context, cfg Config, retry func() bool, keep func(context.Context, jetstream.JetStream)) error {
	fail := func(err error) error {
		p.Close()
		return err
	}
	admin, err := p.connect("yard platform", roles.Admin(), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		return fail(err)
	}
	ajs, err := jetstream.New(admin)
	if err != nil {
		return fail(err)
	}
	if err := waitJetStream(ctx, ajs, cfg.Logger); err != nil {
		return fail(err)
	}
	for {
		err := p.prepare(ctx, admin, ajs, retry())
		if err == nil {
			break
		}
		// On a cluster that is still forming, a store may not be placed
		// yet (too few nodes have reported in): try again.
		if !retry() || ctx.Err() != nil {
			return fail(err)
		}
		cfg.Logger.Warn("platform: streams not ready yet; trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if p.NS != nil {
		if err := p.serveServers(admin, p.Auth.AccountKey()); err != nil {
			return fail(err)
		}
	}
	tc, err := p.connect("yard trust", roles.Trust(), nats.CustomInboxPrefix(roles.TrustInbox))
	if err != nil {
		return fail(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.keeper = make(chan struct{})
	go func() {
		defer close(p.keeper)
		keep(sctx, ajs)
	}()
	ready := make(chan struct{})
	svc := &trust.Service{A: p.Auth, InstanceTTL: cfg.InstanceTTL, Log: cfg.Logger}
	go func() {
		// Once it has served, a trust service that stops (a watch the
		// server closed, say) is started again: without it no instance
		// gets a credential and no revocation is applied.
		signal := ready
		for {
			err := svc.Run(sctx, tc, signal)
			served := false
			select {
			case <-ready:
				served = true
			default:
			}
			if sctx.Err() != nil || !served || tc.IsClosed() {
				p.done <- err
				return
			}
			if cfg.Logger != nil {
				cfg.Logger.Warn("trust service stopped; starting it again", "err", err)
			}
			signal = nil
			select {
			case <-sctx.Done():
				p.done <- sctx.Err()
				return
			case <-time.After(time.Second):
			}
		}
	}()
	select {
	case <-ready:
	case err := <-p.done:
		p.done <- err
		return fail(fmt.Errorf("platform: trust service: %w", err))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return nil
}

// prepare makes the platform's stores and keeps the role credential
// files, all of which may be done again. On a cluster (short) each try
// has a short deadline of its own: a node that just joined drops some
// JetStream requests for a few seconds, and on a cluster that is forming
// a request can go to a meta leader that is stepping down; neither is
// ever answered. What a try made stays made, so tries converge. Alone,
// one try has as long as it needs (a slow disk, --sync always).
func (p *Platform) prepare(ctx context.Context, admin *nats.Conn, ajs jetstream.JetStream, short bool) error {
	if short {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
	}
	if err := Bootstrap(ctx, admin); err != nil {
		return err
	}
	credsKV, err := trust.OpenCreds(ctx, ajs)
	if err != nil {
		return err
	}
	for _, role := range []string{RoleAdmin, RoleGateway, RoleAgent} {
		if err := p.ensureCreds(ctx, credsKV, role); err != nil {
			return err
		}
	}
	return nil
}

// connect opens a connection with a fresh credential: in-process to the
// embedded server, else to the remote servers' URLs.
func (p *Platform) connect(name string, r roles.Rights, opts ...nats.Option) (*nats.Conn, error) {
	c, err := p.Auth.Mint(name, r, 0)
	if err != nil {
		return nil, err
	}
	return p.dial(name, c, opts...)
}

// dial connects with credential c, keeping the connection for Close.
func (p *Platform) dial(name string, c trust.Creds, opts ...nats.Option) (*nats.Conn, error) {
	token, err := jwt.ParseDecoratedJWT(c.Text)
	if err != nil {
		return nil, err
	}
	kp, err := jwt.ParseDecoratedNKey(c.Text)
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	base := []nats.Option{nats.Name(name), nats.UserJWTAndSeed(token, string(seed)), nats.MaxReconnects(-1)}
	url := p.url
	if p.NS != nil {
		base, url = append(base, nats.InProcessServer(p.NS)), ""
	}
	opts = append(append(base, p.connOpts...), opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("platform: connect as %s: %w", name, err)
	}
	p.conns = append(p.conns, nc)
	return nc, nil
}

// CredsFile is where the credential of role is kept.
func (p *Platform) CredsFile(role string) string { return CredsFile(p.dir, role) }

// CredsFile is where the credential of role is kept in data directory dir.
func CredsFile(dir, role string) string {
	if role == RoleAdmin {
		return filepath.Join(dir, "admin.creds")
	}
	return filepath.Join(dir, "creds", role+".creds")
}

// rightsOf are the rights of the roles whose credentials are files.
func rightsOf(role string) roles.Rights {
	switch role {
	case RoleGateway:
		return roles.Gateway()
	case RoleAgent:
		return roles.Agent()
	default:
		return roles.Admin()
	}
}

// ensureCreds keeps the credential file of role: one this authority signed
// and nobody revoked is reused (it may be in use by processes started with
// it), anything else is replaced. Each is recorded in yard_creds, so that
// `yard creds ls` shows it and `yard creds revoke <role>` can end it.
func (p *Platform) ensureCreds(ctx context.Context, kv jetstream.KeyValue, role string) error {
	path := p.CredsFile(role)
	if b, err := os.ReadFile(path); err == nil {
		if user, ok := p.signedByUs(b, rightsOf(role)); ok {
			e, err := kv.Get(ctx, user)
			var rec trust.Record
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				return p.record(ctx, kv, trust.Record{User: user, Name: role, Role: role, Created: time.Now().UTC()})
			case err != nil:
				return err
			case json.Unmarshal(e.Value(), &rec) == nil && rec.Revoked.IsZero():
				return nil
			}
		}
	}
	user, err := writeCreds(p.Auth, path, role)
	if err != nil {
		return err
	}
	return p.record(ctx, kv, trust.Record{User: user, Name: role, Role: role, Created: time.Now().UTC()})
}

// writeCreds mints a credential of role and writes it to path.
func writeCreds(auth *trust.Authority, path, role string) (user string, err error) {
	c, err := auth.Mint(role, rightsOf(role), 0)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, c.Text, 0o600); err != nil {
		return "", fmt.Errorf("platform: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return c.User, nil
}

// WriteCredsFiles writes the admin's, gateway's and agent's credential
// files to dir, keeping those the keys in trustDir signed with today's
// rights. The nodes of a cluster that share dir then reuse them (and
// record them when they start) instead of racing to write their own.
func WriteCredsFiles(dir, trustDir string) error {
	keys, err := trust.LoadKeys(trustDir)
	if err != nil {
		return err
	}
	p := &Platform{Auth: trust.NewAuthority(keys, false), dir: dir}
	for _, role := range []string{RoleAdmin, RoleGateway, RoleAgent} {
		path := p.CredsFile(role)
		if b, err := os.ReadFile(path); err == nil {
			if _, ok := p.signedByUs(b, rightsOf(role)); ok {
				continue
			}
		}
		if _, err := writeCreds(p.Auth, path, role); err != nil {
			return err
		}
	}
	return nil
}

func (p *Platform) record(ctx context.Context, kv jetstream.KeyValue, rec trust.Record) error {
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, rec.User, b); err != nil {
		return fmt.Errorf("platform: record the %s credential: %w", rec.Role, err)
	}
	return nil
}

// signedByUs reports whether a .creds file holds a user of this
// authority's account with today's rights r (and connection types), and
// which. A credential of an older release with other rights is replaced.
func (p *Platform) signedByUs(b []byte, r roles.Rights) (user string, ok bool) {
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return "", false
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return "", false
	}
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	have, _ := json.Marshal(struct {
		P jwt.Permissions
		C jwt.StringList
	}{uc.Permissions, uc.AllowedConnectionTypes})
	want, _ := json.Marshal(struct {
		P jwt.Permissions
		C jwt.StringList
	}{trust.Permissions(r), trust.ConnectionTypes(r)})
	return uc.Subject, !vr.IsBlocking(true) && uc.IssuerAccount == p.Auth.AccountKey() && uc.Issuer == p.Auth.SignerKey() &&
		string(have) == string(want)
}

// Close stops the trust service and the server; calls after the first do
// nothing.
func (p *Platform) Close() { p.closeOnce.Do(p.close) }

func (p *Platform) close() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		<-p.keeper
	}
	for _, nc := range p.conns {
		nc.Close()
	}
	if p.NS != nil {
		p.NS.Shutdown()
		p.NS.WaitForShutdown()
	}
}

// Bootstrap creates every platform stream, bucket and object store that is
// missing, on a connection with the rights to.
func Bootstrap(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return err
	}
	var errs []error
	errs = append(errs, reg.EnsureStores(ctx))
	_, err = invocation.Open(ctx, js, invocation.Config{})
	errs = append(errs, err)
	errs = append(errs, agent.EnsureStores(ctx, js))
	errs = append(errs, secrets.Ensure(ctx, js))
	errs = append(errs, audit.Ensure(ctx, js))
	errs = append(errs, apikeys.Ensure(ctx, js))
	errs = append(errs, gateway.EnsureProbe(ctx, js))
	_, err = trust.OpenCreds(ctx, js)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("platform: create the platform's streams: %w", err)
	}
	return nil
}
