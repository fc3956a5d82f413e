package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/runtime/agent"
)

func newAgentCmd(f *factory) *cobra.Command {
	var dir, id string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run deployed functions on this machine",
		Long: `Run deployed functions as processes on this machine. The agent watches
the registry on --server; for every deployed function it fetches the binary
from yard_artifacts, checks its sha256, and keeps its instances running
(restarting crashed ones), each in its own folder under --dir. It also
provisions what functions declare (consumers, event streams, buckets,
schedules) and registers functions run without a deploy (go run). A new version
is started before the old one drains, so a deploy loses no request.
Ctrl-C drains every instance and stops.

Run several agents on one NATS system and they share the work: each runs its
share of every function's instances, and when one stops announcing itself
(it crashed) the others start its share within --presence-ttl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return usageError("--presence-ttl must be positive")
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("agent", nats.MaxReconnects(-1))
			if err != nil {
				return err
			}
			defer nc.Close()
			cfg := agent.Config{Dir: dir, NATSURL: f.natsURL(), Creds: f.getenv("NATS_CREDS"), Logger: f.logger(), Output: f.io.ErrOut,
				ID: id, PresenceTTL: ttl}
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
	cmd.Flags().StringVar(&id, "id", "", "this agent's name among the agents (default: host name and a random suffix)")
	cmd.Flags().DurationVar(&ttl, "presence-ttl", 0, "how long a silent agent still counts as alive before others take over its instances (default 6s)")
	return cmd
}
