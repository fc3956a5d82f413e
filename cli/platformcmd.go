package cli

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/trust"
)

// Running on a nats-server cluster of one's own (docs/cluster.md): its
// servers include the configuration `yard server-config` prints, and
// `yard platform` runs the platform's control plane against them.

// trustFlags locate the keys: --trust, else <data>/trust.
type trustFlags struct {
	data, trust string
}

func (tf *trustFlags) register(cmd *cobra.Command, dataHelp string) {
	cmd.Flags().StringVar(&tf.data, "data", ".yard", dataHelp)
	cmd.Flags().StringVar(&tf.trust, "trust", "", "folder of the trust keys (default <data>/trust; made on first use, mode 0700)")
}

func (tf *trustFlags) dir() (string, error) {
	if tf.trust != "" {
		return tf.trust, nil
	}
	if tf.data == "" {
		return "", usageError("--data must not be empty")
	}
	return filepath.Join(tf.data, "trust"), nil
}

func newServerConfigCmd(f *factory) *cobra.Command {
	var tf trustFlags
	var allowAnon bool
	var resolverDir string
	cmd := &cobra.Command{
		Use:   "server-config",
		Short: "Print the nats-server configuration that makes a NATS cluster trust Switchyard",
		Long: `Print a nats-server configuration include that makes servers trust the
keys in --trust (made when missing): Switchyard's operator, its system account,
a full account resolver in --resolver-dir that takes the account YARD and its
updates (revocations, the anonymous rights) from 'yard platform', and the
limits the platform needs (max_payload, max_control_line).
With --allow-anonymous, connections without credentials get in as callers of
the public functions (default_sentinel).

Include it in every server's configuration ('include switchyard.conf'), with
JetStream on, and restart them; then run 'yard platform' (docs/cluster.md).
The include holds no secret: no seed, only public keys and signed JWTs.`,
		Example: `  yard server-config --trust /var/lib/yard/trust --resolver-dir /var/lib/nats/jwt > /etc/nats/switchyard.conf`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := tf.dir()
			if err != nil {
				return err
			}
			if resolverDir == "" {
				return usageError("--resolver-dir must not be empty")
			}
			keys, err := trust.LoadKeys(dir)
			if err != nil {
				return err
			}
			conf, err := trust.NewAuthority(keys, allowAnon).ServerConfig(resolverDir)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(f.io.Out, conf)
			return err
		},
	}
	tf.register(cmd, "data directory whose trust folder holds the keys (see --trust)")
	cmd.Flags().BoolVar(&allowAnon, "allow-anonymous", false, "let connections without credentials call the public functions")
	cmd.Flags().StringVar(&resolverDir, "resolver-dir", "jwt", "where each server keeps the account JWTs (relative to the nats-server's working directory); one per server")
	return cmd
}

func newPlatformCmd(f *factory) *cobra.Command {
	var tf trustFlags
	var replicas int
	cmd := &cobra.Command{
		Use:   "platform",
		Short: "Run the platform's control plane against a NATS cluster you run",
		Long: `Run Switchyard's control plane against nats-servers that include the
configuration 'yard server-config' printed for the same --trust keys
(docs/cluster.md): it makes the platform's streams and buckets, writes the
credentials of the admin (<data>/admin.creds), a gateway and an agent
(<data>/creds/gateway.creds, agent.creds), answers the trust requests
(instance and caller credentials), pushes every change of the account
(revocations, the anonymous rights) to every server over the system account,
and keeps the streams' replicas. The servers are --server, else $NATS_URL,
else the nats context's (give every server's URL, comma-separated).

Several may run at once, on different machines with a copy of the keys: the
trust requests go to one of them, and each pushes the same account.`,
		Example: `  NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222 yard platform --trust /var/lib/yard/trust --data /var/lib/yard`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := tf.dir()
			if err != nil {
				return err
			}
			if tf.data == "" {
				return usageError("--data must not be empty")
			}
			if replicas < 0 || replicas > 5 {
				return usageError("--replicas %d: want 1-5 (or 0 to choose by the cluster's size)", replicas)
			}
			var opts []nats.Option
			if ca := f.caFile(); ca != "" {
				opts = append(opts, nats.RootCAs(ca))
			}
			if c := f.nctx; c != nil && c.Cert != "" && c.Key != "" {
				opts = append(opts, nats.ClientCert(c.Cert, c.Key))
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			url := f.natsURL()
			p, err := platform.StartRemote(ctx, platform.RemoteConfig{URL: url, Options: opts, TrustDir: dir, CredsDir: tf.data,
				Replicas: replicas, Logger: f.logger()})
			if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.ErrOut, "platform on NATS %s (admin credential %s). Ctrl-C stops.\n",
				url, p.CredsFile(platform.RoleAdmin))
			<-ctx.Done()
			p.Close()
			return nil
		},
	}
	tf.register(cmd, "data directory: the role credentials go here (and the keys, unless --trust)")
	cmd.Flags().IntVar(&replicas, "replicas", 0, "replicas of the platform's streams (default: 3 on three or more JetStream servers, else their number); streams below are raised, never lowered")
	return cmd
}
