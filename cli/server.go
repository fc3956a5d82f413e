package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/devtls"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
)

// serverFlags are the embedded NATS server's flags, shared by `yard up`
// and `yard server`.
type serverFlags struct {
	data string
	host string
	port int
	sync string
	// TLS: a local CA and certificate (--tls), or files of one's own.
	tls             bool
	tlsCert, tlsKey string
	// monitor serves the NATS server's HTTP monitoring (--nats-monitor).
	monitor string
	// leaf is where agents' activators connect (--nats-leaf): "" for the
	// client port plus server.LeafPortOffset, "off" for nowhere.
	leaf string
	// A cluster node's (yard server only): its name, the cluster's, where
	// routes connect, the routes to the other nodes.
	name, clusterName, clusterListen string
	routes                           []string
	replicas                         int
	// trustDir holds the keys (default <data>/trust); credsDir the role
	// credentials (default <data>): yard up --cluster shares both.
	trustDir, credsDir string
	// parentPID: stop when that process (yard up --cluster) is gone.
	parentPID int
}

// registerCluster adds the flags of a cluster node (yard server).
func (s *serverFlags) registerCluster(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.name, "server-name", "", "this node's name, unique in the cluster (required with --cluster)")
	fl.StringVar(&s.clusterName, "cluster-name", server.DefaultClusterName, "the cluster's name, the same on every node")
	fl.StringVar(&s.clusterListen, "cluster", "", "join a cluster: listen for the other nodes' routes on this host:port (e.g. 0.0.0.0:6222)")
	fl.StringSliceVar(&s.routes, "routes", nil, "the nodes to connect to, as nats://host:port, comma-separated (this node's own may be listed)")
	fl.IntVar(&s.replicas, "replicas", 0, "replicas of the platform's streams on a cluster (default: 3 on three or more nodes, else the cluster's size); streams below are raised, never lowered")
	fl.StringVar(&s.trustDir, "trust", "", "folder of the trust keys (default <data>/trust); every node of a cluster has a copy of the same keys")
	fl.StringVar(&s.credsDir, "creds-dir", "", "folder for the admin, gateway and agent credentials (default <data>)")
	_ = fl.MarkHidden("creds-dir")
	fl.IntVar(&s.parentPID, "parent-pid", 0, "stop when the process with this id has gone (yard up --cluster's nodes)")
	_ = fl.MarkHidden("parent-pid")
}

// watchParent cancels ctx once the process parentPID is no longer this
// one's parent: it died, even by SIGKILL. Linux sends a signal for that
// (childproc.Attr); elsewhere this is all a node of yard up has.
func watchParent(ctx context.Context, parentPID int, cancel context.CancelFunc) {
	if parentPID <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != parentPID {
					cancel()
					return
				}
			}
		}
	}()
}

func (s *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.data, "data", ".yard", "data directory (JetStream streams, buckets, built functions)")
	cmd.Flags().StringVar(&s.host, "nats-host", server.DefaultHost, "NATS listen host")
	cmd.Flags().IntVar(&s.port, "nats-port", server.DefaultPort, "NATS listen port")
	cmd.Flags().BoolVar(&s.tls, "tls", false, "serve TLS (NATS; yard up's gateway too, as HTTPS) with a local CA made in <data>/tls (clients trust <data>/tls/ca.pem); for development")
	cmd.Flags().StringVar(&s.tlsCert, "tls-cert", "", "serve TLS (NATS; yard up's gateway too) with this certificate (PEM; with --tls-key)")
	cmd.Flags().StringVar(&s.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	cmd.Flags().StringVar(&s.leaf, "nats-leaf", "", "take the agents' activator connections (NATS leaf nodes) on this host:port, or 'off' (default: --nats-host and --nats-port + 3200, e.g. 7422); without it, plain NATS requests to a function at zero instances get no responders")
	cmd.Flags().StringVar(&s.monitor, "nats-monitor", "", "serve the NATS server's monitoring endpoints (/varz, /jsz, … for the standard exporters) on this host:port, e.g. 127.0.0.1:8222; unauthenticated, keep it on loopback")
	cmd.Flags().StringVar(&s.sync, "sync", "default",
		"JetStream fsync policy: 'default' (every 2m; survives a process crash, may lose the last writes on power loss), a duration such as 1s, or 'always' (fsync every write; survives power loss, slower)")
}

func (s *serverFlags) config(f *factory) (server.Config, error) {
	cfg := server.Config{
		Host:     s.host,
		Port:     s.port,
		StoreDir: filepath.Join(s.data, "jetstream"),
		Logger:   f.logger(),
	}
	var errs []error
	switch s.sync {
	case "default", "":
	case "always":
		cfg.SyncAlways = true
	default:
		d, err := time.ParseDuration(s.sync)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("--sync %q: want 'default', 'always' or a positive duration like 1s", s.sync))
		}
		cfg.SyncInterval = d
	}
	if s.port < 1 || s.port > 65535 {
		errs = append(errs, fmt.Errorf("--nats-port %d: want 1-65535", s.port))
	}
	if s.data == "" {
		errs = append(errs, errors.New("--data must not be empty"))
	}
	cfg.Name = s.name
	if s.name != "" {
		if err := validServerName(s.name); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case s.clusterListen != "":
		if s.name == "" {
			errs = append(errs, errors.New("--cluster needs --server-name: every node of a cluster has a name of its own"))
		}
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(s.clusterListen, "nats://")); err != nil {
			errs = append(errs, fmt.Errorf("--cluster %q: want host:port to listen on for routes, such as 0.0.0.0:6222", s.clusterListen))
		}
		c := &server.Cluster{Name: s.clusterName, Listen: s.clusterListen, Routes: s.routes}
		if _, err := c.RouteURLs(); err != nil {
			errs = append(errs, fmt.Errorf("--routes: %w", err))
		}
		if s.clusterName == "" {
			errs = append(errs, errors.New("--cluster-name must not be empty"))
		}
		cfg.Cluster = c
	case len(s.routes) > 0:
		errs = append(errs, errors.New("--routes needs --cluster (the address this node listens on for routes)"))
	}
	if s.replicas < 0 || s.replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1-5 (or 0 to choose by the cluster's size)", s.replicas))
	}
	switch {
	case s.tls && (s.tlsCert != "" || s.tlsKey != ""):
		errs = append(errs, errors.New("--tls makes a local certificate; --tls-cert and --tls-key bring one: choose one"))
	case (s.tlsCert == "") != (s.tlsKey == ""):
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	cfg.TLSCert, cfg.TLSKey = s.tlsCert, s.tlsKey
	if s.monitor != "" {
		if _, _, err := net.SplitHostPort(s.monitor); err != nil {
			errs = append(errs, fmt.Errorf("--nats-monitor %q: want host:port, such as 127.0.0.1:8222", s.monitor))
		}
		cfg.Monitor = s.monitor
	}
	switch s.leaf {
	case "off":
	case "":
		if p := s.port + server.LeafPortOffset; p <= 65535 {
			cfg.Leaf = net.JoinHostPort(s.host, strconv.Itoa(p))
		} else {
			errs = append(errs, fmt.Errorf("--nats-port %d: the leaf node port would be %d, past 65535; give --nats-leaf host:port (or off)", s.port, p))
		}
	default:
		if _, _, err := net.SplitHostPort(s.leaf); err != nil {
			errs = append(errs, fmt.Errorf("--nats-leaf %q: want host:port, such as 127.0.0.1:7422, or 'off'", s.leaf))
		}
		cfg.Leaf = s.leaf
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	return cfg, nil
}

// start runs the embedded server with authentication on and the trust
// service, turning a taken port into advice.
func (s *serverFlags) start(ctx context.Context, cfg server.Config, allowAnon bool, log *slog.Logger) (*platform.Platform, error) {
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if s.tls {
		hosts := devtls.DefaultHosts
		if s.host != server.DefaultHost {
			hosts = append(slices.Clone(hosts), s.host)
		}
		paths, err := devtls.Ensure(s.tlsDir(), hosts)
		if err != nil {
			return nil, err
		}
		cfg.TLSCert, cfg.TLSKey = paths.Cert, paths.Key
	}
	p, err := platform.Start(ctx, platform.Config{Server: cfg, Dir: s.data, AllowAnonymous: allowAnon, Logger: log,
		TrustDir: s.trustDir, CredsDir: s.credsDir, Replicas: s.replicas})
	var inUse *server.AddrInUseError
	if errors.As(err, &inUse) && inUse.Addr == cfg.Monitor {
		return nil, fmt.Errorf("--nats-monitor %s is already in use; pick another address", cfg.Monitor)
	}
	if errors.As(err, &inUse) && inUse.Addr == cfg.Leaf {
		return nil, fmt.Errorf("leaf node address %s is already in use; pick another with --nats-leaf (or --nats-leaf off)", cfg.Leaf)
	}
	if errors.As(err, &inUse) && cfg.Cluster != nil && inUse.Addr != net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)) {
		return nil, fmt.Errorf("cluster address %s is already in use; pick another with --cluster", inUse.Addr)
	}
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("NATS port %s is already in use (another `yard up`?); pick another with --nats-port", strconv.Itoa(s.port))
	}
	return p, err
}

// validServerName accepts names NATS shows and routes by: letters,
// digits, '-', '_' and '.', at most 64.
func validServerName(n string) error {
	if len(n) > 64 {
		return fmt.Errorf("--server-name %q: at most 64 characters", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("--server-name %q: letters, digits, '-', '_' and '.' only", n)
		}
	}
	return nil
}

// tlsDir holds the local CA of --tls.
func (s *serverFlags) tlsDir() string { return filepath.Join(s.data, "tls") }

// clientURL is how clients reach the server: tls:// when it serves TLS.
func (s *serverFlags) clientURL(p *platform.Platform) string {
	// The server says tls:// itself when it has a TLS configuration;
	// older servers said nats:// regardless.
	u := p.NS.ClientURL()
	if rest, ok := strings.CutPrefix(u, "nats://"); ok && (s.tls || s.tlsCert != "") {
		u = "tls://" + rest
	}
	return u
}

// certFiles are the certificate and key the server serves TLS with: the
// local ones of --tls (made by start), or --tls-cert and --tls-key; ""
// without TLS. yard up's gateway serves HTTPS with them too.
func (s *serverFlags) certFiles() (cert, key string) {
	if s.tls {
		return filepath.Join(s.tlsDir(), devtls.CertFile), filepath.Join(s.tlsDir(), devtls.KeyFile)
	}
	return s.tlsCert, s.tlsKey
}

// caFile is the CA clients trust: the local one of --tls; "" otherwise
// (a certificate of one's own is signed by a CA the system trusts, or the
// clients are told with --tls-ca).
func (s *serverFlags) caFile() string {
	if s.tls {
		return filepath.Join(s.tlsDir(), devtls.CAFile)
	}
	return ""
}

func newServerCmd(f *factory) *cobra.Command {
	var sf serverFlags
	var allowAnon bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run only the embedded NATS server with JetStream",
		Long: `Run only the embedded NATS server with JetStream, with its data in --data,
and authentication always on (docs/security.md). It keeps its keys in
<data>/trust and writes credentials for the admin (<data>/admin.creds), a
gateway and an agent (<data>/creds/gateway.creds, agent.creds), all mode 0600:

  yard gateway --creds <data>/creds/gateway.creds --server nats://host:4222
  yard agent   --creds <data>/creds/agent.creds   --server nats://host:4222

Connections without credentials are refused unless --allow-anonymous, which
lets them call the public functions (as 'yard up' does).

A cluster (docs/cluster.md): give each node a name, the address it listens
on for routes and the routes to the others; copy <data>/trust of the first
node to the others before they start (routes authenticate with a secret
derived from those keys, so a node without them cannot join). Platform
streams get 3 replicas on three or more nodes (--replicas to choose).`,
		Example: `  yard server --data /var/lib/yard
  # three machines, a b c; on a (then the same on b and c, with their names):
  yard server --data /var/lib/yard --nats-host 0.0.0.0 --server-name a \
    --cluster 0.0.0.0:6222 --routes nats://a:6222,nats://b:6222,nats://c:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.config(f)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, orphaned := context.WithCancel(ctx)
			defer orphaned()
			watchParent(ctx, sf.parentPID, orphaned)
			p, err := sf.start(ctx, cfg, allowAnon, f.logger())
			if err != nil {
				return err
			}
			ca := ""
			if c := sf.caFile(); c != "" {
				ca = "; clients trust " + c
			}
			node := ""
			if cfg.Cluster != nil {
				node = fmt.Sprintf("node %s of cluster %s (routes on %s); ", p.NS.Name(), p.NS.ClusterName(), p.NS.ClusterAddr())
			}
			fmt.Fprintf(f.io.ErrOut, "NATS %s (%sJetStream in %s; admin credential %s%s). Ctrl-C stops.\n",
				sf.clientURL(p), node, cfg.StoreDir, p.CredsFile(platform.RoleAdmin), ca)
			<-ctx.Done()
			p.Close()
			return nil
		},
	}
	sf.register(cmd)
	sf.registerCluster(cmd)
	cmd.Flags().BoolVar(&allowAnon, "allow-anonymous", false, "let connections without credentials call the public functions")
	return cmd
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
