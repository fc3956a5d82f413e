package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/gateway"
)

func newGatewayCmd(f *factory) *cobra.Command {
	var addr string
	var allowPrivate bool
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run only the HTTP gateway against a NATS server",
		Long: `Run only the HTTP gateway: POST /fn/{name} becomes a NATS request on
fn.<name>, checked against the function's JSON Schema first. It connects to
--server (or NATS_URL) and reconnects for as long as it runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("gateway", nats.MaxReconnects(-1))
			if err != nil {
				return err
			}
			defer nc.Close()
			return runGateway(ctx, f, nc, gateway.Config{Addr: addr, AllowPrivateCallbacks: allowPrivate}, nil)
		},
	}
	cmd.Flags().StringVar(&addr, "http", gateway.DefaultAddr, "HTTP listen address")
	cmd.Flags().BoolVar(&allowPrivate, "allow-private-callbacks", false, "accept callback URLs on loopback and private addresses (local development)")
	return cmd
}

// runGateway serves HTTP until ctx ends. ready, when set, is called once
// the gateway listens.
func runGateway(ctx context.Context, f *factory, nc *nats.Conn, cfg gateway.Config, ready func(string)) error {
	addr := cfg.Addr
	cfg.Logger = f.logger()
	g, err := gateway.New(ctx, nc, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	ln, err := g.Listen()
	var inUse *gateway.AddrInUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("HTTP address %s is already in use; pick another with --http", addr)
	}
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr().String())
	} else {
		fmt.Fprintf(f.io.ErrOut, "gateway on http://%s, NATS %s. Ctrl-C stops.\n", ln.Addr(), nc.ConnectedUrlRedacted())
	}
	return g.Serve(ctx, ln)
}
