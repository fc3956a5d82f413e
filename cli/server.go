package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/server"
)

// serverFlags are the embedded NATS server's flags, shared by `yard up`
// and `yard server`.
type serverFlags struct {
	data string
	host string
	port int
	sync string
}

func (s *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.data, "data", ".yard", "data directory (JetStream streams, buckets, built functions)")
	cmd.Flags().StringVar(&s.host, "nats-host", server.DefaultHost, "NATS listen host")
	cmd.Flags().IntVar(&s.port, "nats-port", server.DefaultPort, "NATS listen port")
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
	if err := errors.Join(errs...); err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	return cfg, nil
}

// start runs the embedded server, turning a taken port into advice.
func (s *serverFlags) start(cfg server.Config) (*natsserver.Server, error) {
	if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	ns, err := server.Start(cfg)
	var inUse *server.AddrInUseError
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("NATS port %s is already in use (another `yard up`?); pick another with --nats-port", strconv.Itoa(s.port))
	}
	return ns, err
}

func newServerCmd(f *factory) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run only the embedded NATS server with JetStream",
		Long: `Run only the embedded NATS server with JetStream, with its data in --data.
Gateways, agents and functions connect to it with --server or NATS_URL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := sf.config(f)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ns, err := sf.start(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.ErrOut, "NATS %s (JetStream in %s). Ctrl-C stops.\n", ns.ClientURL(), cfg.StoreDir)
			<-ctx.Done()
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil
		},
	}
	sf.register(cmd)
	return cmd
}

func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
