package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/trust"
)

// ResyncInterval is how often StartRemote's platform pushes the account
// to the servers again, so that a server that missed an update (down at
// the time, or new) catches up without waiting for the servers' own
// resolver sync. A server that holds it already changes nothing.
const ResyncInterval = 30 * time.Second

// RemoteConfig is the control plane of a nats-server cluster that others
// run, configured with trust.Authority.ServerConfig (`yard server-config`).
type RemoteConfig struct {
	// URL is the servers' client URLs, comma-separated. Required.
	URL string
	// Options are more connect options (TLS: nats.RootCAs, …).
	Options []nats.Option
	// TrustDir holds the keys the servers' configuration was written
	// with. Required.
	TrustDir string
	// CredsDir is where the role credential files go. Required.
	CredsDir string
	// InstanceTTL is the lifetime of function instance credentials.
	InstanceTTL time.Duration
	// Replicas is the replica count of the platform's streams; 0 chooses:
	// MaxAutoReplicas on that many JetStream servers or more, else their
	// number. Streams below it are raised, never lowered.
	Replicas int
	Logger   *slog.Logger
}

// StartRemote runs the platform's control plane against a cluster of
// plain nats-servers that trust the keys in cfg.TrustDir: it connects as
// the admin (a fresh credential), makes the platform's stores, keeps the
// role credential files, runs the trust service, which pushes account
// changes (revocations, the anonymous rights) to every server over the
// system account, and keeps the streams' replicas. It returns once the
// servers hold the current rights. Several may run at once against one
// cluster: requests go to one of them (queue groups), and each pushes the
// same account.
func StartRemote(ctx context.Context, cfg RemoteConfig) (*Platform, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.URL == "":
		return nil, errors.New("platform: the servers' URL is required")
	case cfg.TrustDir == "":
		return nil, errors.New("platform: TrustDir is required")
	case cfg.CredsDir == "":
		return nil, errors.New("platform: CredsDir is required")
	}
	keys, err := trust.LoadKeys(cfg.TrustDir)
	if err != nil {
		return nil, err
	}
	auth := trust.NewAuthority(keys, false)
	p := &Platform{Auth: auth, dir: cfg.CredsDir, url: cfg.URL, connOpts: cfg.Options, done: make(chan error, 1)}
	sc, err := auth.MintSystem("yard platform (system)")
	if err != nil {
		return nil, err
	}
	reconnected := make(chan struct{}, 1)
	sys, err := p.dial("yard platform (system)", sc, nats.ReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}))
	if errors.Is(err, nats.ErrAuthorization) {
		p.Close()
		return nil, fmt.Errorf("%w: do the servers include the configuration `yard server-config --trust %s` prints?", err, cfg.TrustDir)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	if _, err := trust.ClusterServers(sys); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: the servers do not let the keys in %s in as their system account; do they include what `yard server-config` prints for them?", err, cfg.TrustDir)
	}
	auth.AttachRemote(sys)
	// The servers' configuration does not hold the account: on a cluster
	// that never had it, push it now (as it stands for an empty platform)
	// so that the admin can connect; one they hold is left for the trust
	// service, which pushes the revocations and public functions it finds.
	held, err := auth.AccountHeld(sys)
	if err == nil && !held {
		err = auth.Push()
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	pc := Config{Dir: cfg.CredsDir, CredsDir: cfg.CredsDir, TrustDir: cfg.TrustDir, InstanceTTL: cfg.InstanceTTL,
		Replicas: cfg.Replicas, Logger: cfg.Logger}
	err = p.run(ctx, pc, func() bool { return true }, func(ctx context.Context, js jetstream.JetStream) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			resync(ctx, auth, reconnected, cfg.Logger)
		}()
		keepReplicas(ctx, func(ctx context.Context) (int, bool) {
			n := cfg.Replicas
			if n == 0 {
				n = remoteReplicas(sys, cfg.Logger)
			}
			return n, n > 1
		}, js, cfg.Logger)
		wg.Wait()
	})
	if err != nil {
		return nil, err
	}
	// The trust service pushes what changes; the servers may hold an
	// account older than the registry (no platform ran while it changed).
	if err := auth.Push(); err != nil {
		cfg.Logger.Warn("platform: not every server took the account yet; trying again", "err", err)
	}
	return p, nil
}

// resync pushes the account again every ResyncInterval, after the system
// connection reconnected (its server may have restarted), and soon after
// a push that not every server took.
func resync(ctx context.Context, auth *trust.Authority, reconnected <-chan struct{}, log *slog.Logger) {
	wait := ResyncInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-reconnected:
		case <-time.After(wait):
		}
		if err := auth.Push(); err != nil {
			log.Warn("platform: not every server took the account; trying again", "err", err)
			wait = 2 * time.Second
			continue
		}
		wait = ResyncInterval
	}
}

// remoteReplicas is the replica count the cluster calls for: the size of
// its JetStream meta group as the server the system connection is on
// sees it, at most MaxAutoReplicas; 1 when that server does not say.
func remoteReplicas(sys *nats.Conn, log *slog.Logger) int {
	m, err := sys.Request("$SYS.REQ.SERVER."+sys.ConnectedServerId()+".JSZ", nil, 5*time.Second)
	if err != nil {
		log.Debug("replicas: ask the server about JetStream", "err", err)
		return 1
	}
	var r struct {
		Data *struct {
			Meta *struct {
				Size int `json:"cluster_size"`
			} `json:"meta_cluster"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Data == nil || r.Data.Meta == nil {
		return 1
	}
	return max(1, min(MaxAutoReplicas, r.Data.Meta.Size))
}
