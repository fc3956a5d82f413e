package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	fn "github.com/switchyard-dev/switchyard/runtime"
	"github.com/switchyard-dev/switchyard/runtime/agent"
)

// allowPrivateEnv is what tells function processes to allow private
// callback targets.
var allowPrivateEnv = fn.EnvAllowPrivateCallbacks + "=1"

func newAgentCmd(f *factory) *cobra.Command {
	var dir string
	var allowPrivate bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run deployed functions on this machine",
		Long: `Run deployed functions as processes on this machine. The agent watches
the registry on --server; for every deployed function it fetches the binary
from yard_artifacts, checks its sha256, and keeps its instances running
(restarting crashed ones), each in its own folder under --dir. A new version
is started before the old one drains, so a deploy loses no request.
Ctrl-C drains every instance and stops.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("agent", nats.MaxReconnects(-1))
			if err != nil {
				return err
			}
			defer nc.Close()
			cfg := agent.Config{Dir: dir, NATSURL: f.natsURL(), Creds: f.getenv("NATS_CREDS"), Logger: f.logger(), Output: f.io.ErrOut}
			if allowPrivate {
				cfg.Env = append(cfg.Env, allowPrivateEnv)
			}
			a, err := agent.New(ctx, nc, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.ErrOut, "agent running functions from %s in %s. Ctrl-C stops.\n", f.natsURL(), dir)
			return a.Run(ctx)
		},
	}
	def := filepath.Join(os.TempDir(), "yard-agent")
	if d, err := os.UserCacheDir(); err == nil {
		def = filepath.Join(d, "yard", "agent")
	}
	cmd.Flags().StringVar(&dir, "dir", def, "folder for fetched binaries and instance working folders")
	cmd.Flags().BoolVar(&allowPrivate, "allow-private-callbacks", false, "let async callbacks of the functions reach loopback and private addresses")
	return cmd
}
