// Package server starts the embedded NATS server with JetStream that
// `yard up`, `yard server` and the tests run on. It owns the few choices
// that make the embedded server safe to hand to users: loopback by default,
// file storage in a directory of the user's choosing, a documented fsync
// policy, and a clear error when the port is taken.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/switchyard-dev/switchyard/internal/fdlimit"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Defaults for the embedded server.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 4222
)

// Config is the embedded server's identity and storage. Zero values give a
// loopback server on DefaultPort with JetStream in ./.yard/jetstream.
type Config struct {
	Host string // default 127.0.0.1
	Port int    // default 4222; -1 picks a free port
	// StoreDir is where JetStream keeps streams, key-value buckets and
	// object stores. Required.
	StoreDir string
	// SyncInterval is how often JetStream fsyncs its files; zero keeps the
	// server's default (2 minutes). Writes between syncs survive a process
	// crash (they are in the OS page cache) but not a power loss.
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before acknowledging it: survives power
	// loss at a measured throughput cost (see docs/operations.md).
	SyncAlways bool
	// Name of the server; defaults to one derived by nats-server.
	Name   string
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients.
	ReadyTimeout time.Duration
	// Users, when set, are the only identities the server accepts, each
	// with its own permissions.
	Users []*natsserver.User
	// Configure, when set, adjusts the server's options last: the trust
	// setup (operator, accounts, resolver) goes in here.
	Configure func(*natsserver.Options) error
	// TLSCert and TLSKey, when set, make clients connect with TLS.
	TLSCert, TLSKey string
	// Monitor, when set (host:port), serves the NATS server's own HTTP
	// monitoring endpoints (/varz, /connz, /jsz, …) there, for the
	// standard exporters. It is unauthenticated: keep it on loopback.
	Monitor string
	// Account, when set, is the account that owns JetStream data: data an
	// earlier server without accounts kept for the global account moves to
	// it on first start, so upgrading keeps every stream.
	Account string
	// Cluster, when set, joins the server to a NATS cluster: its JetStream
	// then replicates across the nodes. Name is required with it.
	Cluster *Cluster
	// Leaf, when set (host:port; port -1 picks a free one), takes leaf
	// node connections there: the agents' activators connect through it
	// (see LeafURL). It uses the clients' TLS and authentication.
	Leaf string
}

// Cluster is how a server takes part in a NATS cluster.
type Cluster struct {
	// Name of the cluster; every node gives the same. Default "yard".
	Name string
	// Listen is the host:port other nodes connect their routes to.
	Listen string
	// Routes are the nodes to connect to, as nats://host:port (this
	// node's own address may be among them: it is skipped).
	Routes []string
	// User and Password authenticate routes both ways: a node that does
	// not know them cannot join the cluster or see its traffic.
	User, Password string
}

// DefaultClusterName is the cluster name when none is given.
const DefaultClusterName = "yard"

// RouteURLs parses route addresses (nats://host:port, or host:port) and
// gives each the cluster's route credentials.
func (c *Cluster) RouteURLs() ([]*url.URL, error) {
	var urls []*url.URL
	for _, r := range c.Routes {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !strings.Contains(r, "://") {
			r = "nats://" + r
		}
		u, err := url.Parse(r)
		if err != nil || u.Hostname() == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("route %q: want nats://host:port", r)
		}
		if u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls" {
			return nil, fmt.Errorf("route %q: want nats://host:port", r)
		}
		if c.User != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// AddrInUseError reports that the server's port is taken.
type AddrInUseError struct {
	Addr string
	Err  error
}

func (e *AddrInUseError) Error() string {
	return fmt.Sprintf("address %s is already in use", e.Addr)
}

func (e *AddrInUseError) Unwrap() error { return e.Err }

// Start runs an embedded NATS server with JetStream and waits until it
// accepts clients. The caller owns the server: Shutdown and WaitForShutdown.
func Start(cfg Config) (*natsserver.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("server: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.Port > 0 {
		// nats-server treats a failed listen as fatal and, without a logger
		// that exits, just never becomes ready. Probe first so the user gets
		// a precise error instead of a timeout.
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, &AddrInUseError{Addr: addr, Err: err}
		}
		ln.Close()
	}
	opts := &natsserver.Options{
		ServerName:   cfg.Name,
		Host:         cfg.Host,
		Port:         cfg.Port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		NoSigs:       true,
		MaxPayload:   wire.MaxPayload,
		// A CONNECT carries the user's JWT, and the platform's roles list
		// their subjects one by one: well past the default 4 KiB.
		MaxControlLine: 32 << 10,
		Users:          cfg.Users,
		MaxConn:        maxConn(fdlimit.Open()),
	}
	if cfg.Monitor != "" {
		host, p, err := listenAddr(cfg.Monitor, "monitor")
		if err != nil {
			return nil, err
		}
		opts.HTTPHost, opts.HTTPPort = host, p
	}
	if c := cfg.Cluster; c != nil {
		if err := configureCluster(opts, c); err != nil {
			return nil, err
		}
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("server: TLS: %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tc, 2
	}
	if cfg.Leaf != "" {
		host, p, err := listenAddr(cfg.Leaf, "leaf node")
		if err != nil {
			return nil, err
		}
		opts.LeafNode.Host, opts.LeafNode.Port = host, p
		if opts.TLSConfig != nil {
			opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = opts.TLSConfig.Clone(), 2
		}
	}
	if cfg.Configure != nil {
		if err := cfg.Configure(opts); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if cfg.Account != "" {
		if err := adoptGlobalData(cfg.StoreDir, cfg.Account); err != nil {
			return nil, err
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{l: cfg.Logger.With("component", "nats")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("server: not ready for connections after %s", cfg.ReadyTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, errors.New("server: JetStream did not start (check that the data directory is writable)")
	}
	return ns, nil
}

// listenAddr parses host:port for a listener of kind, checking that the
// port is free; -1 (or 0) picks a free one.
func listenAddr(addr, kind string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < -1 || p > 65535 {
		return "", 0, fmt.Errorf("server: %s address %q: want host:port", kind, addr)
	}
	if p <= 0 {
		return host, natsserver.RANDOM_PORT, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", 0, &AddrInUseError{Addr: addr, Err: err}
	}
	ln.Close()
	return host, p, nil
}

// LeafPortOffset puts a server's leaf node port this far above its client
// port by default (4222 -> 7422, NATS's usual leaf node port).
const LeafPortOffset = 3200

// DefaultLeafURLs are the leaf node URLs of the servers at clientURLs (a
// comma-separated NATS URL list) when they use the default leaf port.
func DefaultLeafURLs(clientURLs string) []string {
	var out []string
	for _, s := range strings.Split(clientURLs, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Hostname() == "" {
			continue
		}
		port := DefaultPort
		if p, err := strconv.Atoi(u.Port()); err == nil {
			port = p
		}
		scheme := "nats-leaf"
		if u.Scheme == "tls" {
			scheme = "tls"
		}
		out = append(out, scheme+"://"+net.JoinHostPort(u.Hostname(), strconv.Itoa(port+LeafPortOffset)))
	}
	return out
}

// LeafURL is where ns takes leaf node connections ("" when it does not):
// nats-leaf://host:port, or tls:// when its clients use TLS.
func LeafURL(ns *natsserver.Server) string {
	v, err := ns.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	host := v.LeafNode.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "nats-leaf"
	if v.LeafNode.TLSRequired {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(v.LeafNode.Port))
}

// configureCluster sets opts for cluster c, checking first that the route
// port is free.
func configureCluster(opts *natsserver.Options, c *Cluster) error {
	if opts.ServerName == "" {
		return errors.New("server: a cluster node needs a name (--server-name), unique in the cluster")
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(c.Listen, "nats://"), "nats-route://"))
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < -1 || p > 65535 {
		return fmt.Errorf("server: cluster address %q: want host:port", c.Listen)
	}
	if p > 0 {
		addr := net.JoinHostPort(host, port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return &AddrInUseError{Addr: addr, Err: err}
		}
		ln.Close()
	} else {
		p = natsserver.RANDOM_PORT // 0 or -1: any free port
	}
	routes, err := c.RouteURLs()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	name := c.Name
	if name == "" {
		name = DefaultClusterName
	}
	// Explicit routes are retried until they connect: a node may start
	// well before the others.
	// Routes ping every second: a node that stops answering (SIGSTOP, a
	// partition) is dropped in three to four, and with it the interest of
	// its clients, so requests stop going to instances that cannot answer
	// (the default is two minutes).
	opts.Cluster = natsserver.ClusterOpts{Name: name, Host: host, Port: p, Username: c.User, Password: c.Password,
		PingInterval: time.Second, MaxPingsOut: 3}
	opts.Routes = routes
	return nil
}

// adoptGlobalData moves the JetStream data of the global account ($G, a
// server without accounts) to account, unless account has data already.
func adoptGlobalData(storeDir, account string) error {
	from := filepath.Join(storeDir, "jetstream", natsserver.DEFAULT_GLOBAL_ACCOUNT)
	to := filepath.Join(storeDir, "jetstream", account)
	if _, err := os.Stat(from); err != nil {
		return nil
	}
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("server: move the data of %s to account %s: %w", from, account, err)
	}
	return nil
}

// slogAdapter routes nats-server's log lines to slog. Notices are debug
// level: `yard up` prints its own summary and the server's banner is noise.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

// maxConn caps NATS client connections at half the open-file limit (the
// server's default when that is unknown or higher), so that a flood of
// idle connections leaves JetStream the descriptors its files need: past
// the cap the server refuses a connection at once.
func maxConn(limit int) int {
	if limit <= 0 {
		return natsserver.DEFAULT_MAX_CONNECTIONS
	}
	return min(natsserver.DEFAULT_MAX_CONNECTIONS, max(limit/2, 64))
}
