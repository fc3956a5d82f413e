package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/runtime/agent"
)

type upOptions struct {
	f         *factory
	sf        serverFlags
	http      string
	functions string
	noFuncs   bool
	// allowPrivate lets async callbacks target loopback and private
	// addresses, in the gateway and in the functions.
	allowPrivate bool
}

func newUpCmd(f *factory) *cobra.Command {
	o := &upOptions{f: f}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole platform locally: NATS, the gateway and the example functions",
		Long: `Run Switchyard on this machine in one process tree:

  - an embedded NATS server with JetStream (data in --data, default ./.yard),
    listening on 127.0.0.1:4222 so the nats CLI connects without flags;
  - the HTTP gateway on 127.0.0.1:8080;
  - every function under ./functions, built with 'go build' and run as its
    own process (restarted if it crashes).

Ctrl-C drains the functions and stops everything. Running 'yard up' again
reuses the data directory.`,
		Example: `  yard up
  yard up --http 127.0.0.1:9090 --nats-port 4333
  yard up --sync always     # fsync every JetStream write`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	o.sf.register(cmd)
	cmd.Flags().StringVar(&o.http, "http", gateway.DefaultAddr, "HTTP gateway listen address")
	cmd.Flags().StringVar(&o.functions, "functions", "functions", "folder whose subfolders are functions to build and run")
	cmd.Flags().BoolVar(&o.noFuncs, "no-functions", false, "do not build or run any function")
	cmd.Flags().BoolVar(&o.allowPrivate, "allow-private-callbacks", false, "let async callbacks reach loopback and private addresses (local development)")
	return cmd
}

func (o *upOptions) run(ctx context.Context) error {
	// Everything goes to stderr through one console: the progress of the
	// start first, whole lines; the log lines (functions, agent, gateway,
	// NATS) after it. pf prints progress, lf logs.
	con := newConsole(o.f.io.ErrOut)
	defer con.close()
	pf, lf := *o.f, *o.f
	pf.io.ErrOut, lf.io.ErrOut = con.progress(), con.logs()
	cfg, err := o.sf.config(&lf)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	errOut := pf.io.ErrOut
	log := lf.logger()

	ns, err := o.sf.start(cfg)
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	natsURL := ns.ClientURL()
	nc, err := nats.Connect(natsURL, nats.Name("yard up"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()

	// The gateway first, so a taken HTTP port fails fast, before any build.
	gwCtx, stopGateway := context.WithCancel(context.Background())
	gwAddr := make(chan string, 1)
	gwErr := make(chan error, 1)
	gwCfg := gateway.Config{Addr: o.http, AllowPrivateCallbacks: o.allowPrivate}
	go func() { gwErr <- runGateway(gwCtx, &lf, nc, gwCfg, func(a string) { gwAddr <- a }) }()
	var addr string
	select {
	case addr = <-gwAddr:
	case err := <-gwErr:
		stopGateway()
		return err
	}
	defer func() {
		stopGateway()
		<-gwErr
	}()

	// Functions run the way they run in production: an agent runs what is
	// deployed, and the bundled functions are deployed as a user would.
	// The agent starts each function line with its instance (greet/v3-…: ).
	agentCfg := agent.Config{Dir: filepath.Join(o.sf.data, "agent"), NATSURL: natsURL, Logger: log, Output: con.logs()}
	ag, err := agent.New(ctx, nc, agentCfg)
	if err != nil {
		return err
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(agentCtx) }()
	defer func() {
		stopAgent()
		<-agentDone
	}()

	var names []string
	if !o.noFuncs {
		pf.server = natsURL // deploys below talk to this server
		names, err = discoverFunctions(o.functions)
		switch {
		case os.IsNotExist(err):
			fmt.Fprintf(errOut, "no %s folder here, so no example functions (run yard up from the repository root to get them)\n", o.functions)
		case err != nil:
			return err
		}
		for _, n := range names {
			d := &deployOptions{f: &pf, dir: filepath.Join(o.functions, n)}
			if err := d.run(ctx); err != nil {
				return fmt.Errorf("deploy %s: %w", n, err)
			}
		}
	}
	// The deploys' progress is out: the log lines kept back follow, and
	// from now on every log line as it comes.
	con.release()
	if len(names) > 0 {
		if missing := waitForInstances(ctx, nc, names, time.Minute); len(missing) > 0 {
			fmt.Fprintf(errOut, "still waiting for %s to start (see the logs above)\n", strings.Join(missing, ", "))
		}
	}

	printBanner(&pf, natsURL, addr, cfg.StoreDir, names)
	<-ctx.Done()
	stop() // a second Ctrl-C now ends the process at once
	fmt.Fprintln(errOut, "\nstopping: draining functions (Ctrl-C again to quit at once) …")
	return nil
}

// waitForInstances polls micro PING until every named function answers or
// the timeout passes, and returns those that did not.
func waitForInstances(ctx context.Context, nc *nats.Conn, names []string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		counts, _ := countInstances(nc, 100*time.Millisecond)
		var missing []string
		for _, n := range names {
			if counts[n] == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing
		}
	}
}

func printBanner(f *factory, natsURL, httpAddr, storeDir string, names []string) {
	fns := "none"
	if len(names) > 0 {
		fns = strings.Join(names, ", ")
	}
	// Off the default port, the suggested commands must say where NATS is.
	serverFlag := ""
	if natsURL != nats.DefaultURL {
		serverFlag = " -s " + natsURL
	}
	example := "greet"
	if len(names) > 0 && !slices.Contains(names, "greet") {
		example = names[0]
	}
	fmt.Fprintf(f.io.ErrOut, `
Switchyard is up.
  NATS       %s   (JetStream data in %s)
  Gateway    http://%s
  Functions  %s

Try:
  curl -s -d '{"name":"Ada"}' http://%s/fn/%s
  go run ./cli/yard invoke %s%s -d '{"name":"Ada"}'
  nats%s req fn.%s '{"name":"Ada"}'
  nats%s sub 'yard.results.>'   # then: curl -s -d '{"name":"Ada"}' 'http://%s/fn/%s?async=1'
%s
Ctrl-C stops.
`, natsURL, storeDir, httpAddr, fns, httpAddr, example, example, serverFlag, serverFlag, example, serverFlag, httpAddr, example,
		shopHint(names, httpAddr, serverFlag))
}

// shopHint shows how to place an order when the example shop runs.
func shopHint(names []string, httpAddr, serverFlag string) string {
	if !slices.Contains(names, "orders") {
		return ""
	}
	return fmt.Sprintf(`
The shop (docs/shop.md):
  nats%s sub orders.placed
  curl -s -d '{"items":[{"sku":"TEA-0001","quantity":2}],"card":"4242424242424242","email":"ada@example.com"}' http://%s/fn/orders
`, serverFlag, httpAddr)
}
