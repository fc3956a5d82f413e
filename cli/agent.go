package cli

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

func newAgentCmd(f *factory) *cobra.Command {
	var dir, id string
	var leafURLs []string
	var ttl time.Duration
	var mf metricsFlag
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
(it crashed) the others start its share within --presence-ttl.

On a Switchyard NATS server (yard server) connect with the agent's
credential (--creds <data>/creds/agent.creds); each instance then gets a
credential of its own, with its function's rights only, renewed by starting
a replacement before it expires.

The agent's activator answers plain NATS requests (nats req fn.<name>) to a
function with no instance: it connects to the server as a NATS leaf node
(--leaf-url; by default each --server URL's host on its port + 3200, where
yard server listens), holds such requests, starts an instance and forwards
them. With --leaf-url off they get no responders.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 {
				return usageError("--presence-ttl must be positive")
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("agent", append(liveness(), nats.MaxReconnects(-1), nats.CustomInboxPrefix(roles.AgentInbox))...)
			if err != nil {
				return err
			}
			defer nc.Close()
			m, err := mf.serve(ctx, f.io.ErrOut)
			if err != nil {
				return err
			}
			// Instances run in folders of their own: a relative CA path
			// (the default ./.yard/tls/ca.pem) must not change meaning.
			ca := f.caFile()
			if ca != "" {
				if abs, err := filepath.Abs(ca); err == nil {
					ca = abs
				}
			}
			switch {
			case len(leafURLs) == 0:
				leafURLs = server.DefaultLeafURLs(f.natsURL())
			case len(leafURLs) == 1 && leafURLs[0] == "off":
				leafURLs = nil
			}
			for _, u := range leafURLs {
				if p, err := url.Parse(u); err != nil || p.Host == "" {
					return usageError("--leaf-url %q: want nats-leaf://host:port or tls://host:port", u)
				}
			}
			cfg := agent.Config{Dir: dir, NATSURL: f.natsURL(), Creds: f.credsFile(), CA: ca, Logger: f.logger(), Output: f.io.ErrOut,
				ID: id, PresenceTTL: ttl, Metrics: m, LeafURLs: leafURLs}
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
	cmd.Flags().StringSliceVar(&leafURLs, "leaf-url", nil, "where the activator connects as a leaf node: nats-leaf://host:port (tls:// for TLS), comma-separated, or 'off' (default: each --server host on its port + 3200)")
	cmd.Flags().StringVar(&id, "id", "", "this agent's name among the agents (default: host name and a random suffix)")
	mf.add(cmd.Flags(), "")
	cmd.Flags().DurationVar(&ttl, "presence-ttl", 0, "how long a silent agent still counts as alive before others take over its instances (default 6s)")
	return cmd
}
