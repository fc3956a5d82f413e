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
}

func (s *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.data, "data", ".yard", "data directory (JetStream streams, buckets, built functions)")
	cmd.Flags().StringVar(&s.host, "nats-host", server.DefaultHost, "NATS listen host")
	cmd.Flags().IntVar(&s.port, "nats-port", server.DefaultPort, "NATS listen port")
	cmd.Flags().BoolVar(&s.tls, "tls", false, "serve TLS (NATS; yard up's gateway too, as HTTPS) with a local CA made in <data>/tls (clients trust <data>/tls/ca.pem); for development")
	cmd.Flags().StringVar(&s.tlsCert, "tls-cert", "", "serve TLS (NATS; yard up's gateway too) with this certificate (PEM; with --tls-key)")
	cmd.Flags().StringVar(&s.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
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
	p, err := platform.Start(ctx, platform.Config{Server: cfg, Dir: s.data, AllowAnonymous: allowAnon, Logger: log})
	var inUse *server.AddrInUseError
	if errors.As(err, &inUse) && inUse.Addr == cfg.Monitor {
		return nil, fmt.Errorf("--nats-monitor %s is already in use; pick another address", cfg.Monitor)
	}
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("NATS port %s is already in use (another `yard up`?); pick another with --nats-port", strconv.Itoa(s.port))
	}
	return p, err
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
lets them call the public functions (as 'yard up' does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.config(f)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p, err := sf.start(ctx, cfg, allowAnon, f.logger())
			if err != nil {
				return err
			}
			ca := ""
			if c := sf.caFile(); c != "" {
				ca = "; clients trust " + c
			}
			fmt.Fprintf(f.io.ErrOut, "NATS %s (JetStream in %s; admin credential %s%s). Ctrl-C stops.\n",
				sf.clientURL(p), cfg.StoreDir, p.CredsFile(platform.RoleAdmin), ca)
			<-ctx.Done()
			p.Close()
			return nil
		},
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&allowAnon, "allow-anonymous", false, "let connections without credentials call the public functions")
	return cmd
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
