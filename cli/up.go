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
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/metrics"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/agent"
	"github.com/switchyard-dev/switchyard/runtime/roles"
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
	metrics      metricsFlag
	// writeContext names the nats context to write for this platform.
	writeContext string
	// cluster, when set, runs NATS as that many `yard server` processes
	// forming a cluster; replicas is their streams' replica count.
	cluster, replicas int
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
reuses the data directory.

--cluster 3 runs NATS as a three-node cluster on this machine instead: three
'yard server' processes (client ports 4222-4224, routes 6222-6224, data in
<data>/cluster/n1..n3), started again when one exits, with the platform's
streams replicated on all three. 'yard servers' lists them and what each
leads; kill one and the platform carries on (docs/cluster.md).

--write-context writes a nats CLI context (default name yard) with the
server, the admin's credential and inbox prefix and the CA, so that
'nats --context yard kv ls' and 'nats context select yard' work; without
it the banner shows the one command that writes it. yard up itself reads
no context.`,
		Example: `  yard up
  yard up --http 127.0.0.1:9090 --nats-port 4333
  yard up --sync always     # fsync every JetStream write
  yard up --write-context   # and: nats context select yard
  yard up --cluster 3       # three NATS nodes; then: yard servers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context()) },
	}
	o.sf.register(cmd)
	o.metrics.add(cmd.Flags(), metrics.DefaultAddr)
	cmd.Flags().StringVar(&o.http, "http", gateway.DefaultAddr, "HTTP gateway listen address")
	cmd.Flags().StringVar(&o.functions, "functions", "functions", "folder whose subfolders are functions to build and run")
	cmd.Flags().BoolVar(&o.noFuncs, "no-functions", false, "do not build or run any function")
	cmd.Flags().BoolVar(&o.allowPrivate, "allow-private-callbacks", false, "let async callbacks reach loopback and private addresses (local development)")
	cmd.Flags().StringVar(&o.writeContext, "write-context", "", "write a nats CLI context of this name for this platform, as the admin (--write-context alone: yard)")
	cmd.Flags().Lookup("write-context").NoOptDefVal = "yard"
	cmd.Flags().IntVar(&o.cluster, "cluster", 0, "run NATS as a cluster of this many yard server processes (3 to 9) on consecutive ports from --nats-port")
	cmd.Flags().IntVar(&o.replicas, "replicas", 0, "with --cluster: replicas of the platform's streams (default: 3, or the cluster's size if smaller)")
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
	// Flushed last, after the gateway and the instances stopped.
	defer startTracing("yard", log)()

	var natsURL string
	var leafURLs []string
	credsFile := func(role string) string { return platform.CredsFile(o.sf.data, role) }
	if o.replicas != 0 && o.cluster == 0 {
		return usageError("--replicas goes with --cluster: a single server keeps one copy")
	}
	if o.replicas < 0 || o.replicas > o.cluster {
		return usageError("--replicas %d: want 1 to the cluster's size (%d)", o.replicas, o.cluster)
	}
	if o.cluster != 0 {
		nodes, err := o.startCluster(ctx, o.cluster, con.logs(), log, errOut)
		if err != nil {
			return err
		}
		defer nodes.stop() // last: after the gateway and the agent
		natsURL = nodes.url
		if o.sf.leaf != "off" {
			leafURLs = server.DefaultLeafURLs(natsURL)
		}
		cfg.StoreDir = filepath.Join(o.sf.data, "cluster", "n*", "jetstream")
	} else {
		p, err := o.sf.start(ctx, cfg, true, log)
		if err != nil {
			return err
		}
		defer p.Close()
		natsURL = o.sf.clientURL(p)
		credsFile = p.CredsFile
		if u := server.LeafURL(p.NS); u != "" {
			leafURLs = []string{u}
		}
	}
	ca := o.sf.caFile()
	if ca != "" {
		// Instances run in folders of their own.
		if ca, err = filepath.Abs(ca); err != nil {
			return err
		}
	}
	// Each component connects with the credential of its role, as it
	// would from a process of its own.
	connect := func(role, inbox string) (*nats.Conn, error) {
		opts := append(liveness(), nats.Name("yard up "+role), nats.MaxReconnects(-1), nats.UserCredentials(credsFile(role)))
		if ca != "" {
			opts = append(opts, nats.RootCAs(ca))
		}
		if inbox != "" {
			opts = append(opts, nats.CustomInboxPrefix(inbox))
		}
		return nats.Connect(natsURL, opts...)
	}
	nc, err := connect(platform.RoleAdmin, roles.AdminInbox)
	if err != nil {
		return err
	}
	defer nc.Close()
	gwNC, err := connect(platform.RoleGateway, roles.GatewayInbox)
	if err != nil {
		return err
	}
	defer gwNC.Close()
	agentNC, err := connect(platform.RoleAgent, roles.AgentInbox)
	if err != nil {
		return err
	}
	defer agentNC.Close()

	// The gateway first, so a taken HTTP port fails fast, before any build.
	// Metrics on a listener of their own. The default address taken (a
	// second yard up, say) is only a warning; one asked for is an error.
	m, metricsAddr, err := o.metrics.start(ctx)
	if err != nil && o.metrics.addr == metrics.DefaultAddr {
		fmt.Fprintf(errOut, "no metrics: %v (choose another address with --metrics)\n", err)
	} else if err != nil {
		return err
	}
	gwCfg := gateway.Config{Addr: o.http, AllowPrivateCallbacks: o.allowPrivate, Metrics: m}
	if cert, key := o.sf.certFiles(); cert != "" {
		// With TLS for NATS the gateway serves HTTPS with the same
		// certificate: one CA for clients of both doors to trust.
		if gwCfg.TLS, err = gatewayTLS(cert, key); err != nil {
			return err
		}
	}
	gwCtx, stopGateway := context.WithCancel(context.Background())
	gwAddr := make(chan string, 1)
	gwErr := make(chan error, 1)
	go func() { gwErr <- runGateway(gwCtx, &lf, gwNC, gwCfg, func(a string) { gwAddr <- a }) }()
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
	agentCfg := agent.Config{Dir: filepath.Join(o.sf.data, "agent"), NATSURL: natsURL, CA: ca, Logger: log, Output: con.logs(), Metrics: m,
		LeafURLs: leafURLs}
	ag, err := agent.New(ctx, agentNC, agentCfg)
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
		pf.server = natsURL // deploys below talk to this server, as the admin
		pf.creds = credsFile(platform.RoleAdmin)
		pf.tlsCA = ca
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

	b := banner{natsURL: natsURL, httpAddr: addr, https: gwCfg.TLS != nil, storeDir: cfg.StoreDir, names: names, nodes: o.cluster,
		adminCreds: credsFile(platform.RoleAdmin), ca: o.sf.caFile(), metricsAddr: metricsAddr}
	if b.consoleKey, err = consoleKey(ctx, nc); err != nil {
		fmt.Fprintf(errOut, "no console sign-in link: %v\n", err)
	} else {
		defer func() {
			// The link's key ends with this yard up.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if js, err := jetstream.New(nc); err == nil {
				_, _ = apikeys.Revoke(rctx, js, consoleKeyName)
			}
		}()
	}
	if o.writeContext != "" {
		b.context = o.writeContext
		if b.contextPath, err = pf.saveNATSContext(o.writeContext, natsContextFile{Description: "Switchyard admin (yard up)",
			URL: natsURL, Creds: b.adminCreds, CA: ca, InboxPrefix: roles.AdminInbox}); err != nil {
			return fmt.Errorf("--write-context: %w", err)
		}
	}
	if name, _ := pf.contextChoice(); name != "" && name != b.context {
		b.selected = name
	}
	printBanner(&pf, b)
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
		counts := countInstances(nc, names, 100*time.Millisecond)
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

// banner is what yard up says once everything runs.
type banner struct {
	natsURL, httpAddr, storeDir string
	https                       bool // the gateway serves HTTPS
	adminCreds, ca              string
	names                       []string
	metricsAddr                 string // where /metrics is served; "" none
	nodes                       int    // NATS cluster nodes (--cluster); 0 one server
	consoleKey                  string // the API key the console link signs in with
	context, contextPath        string // the nats context written (--write-context)
	selected                    string // a nats context selected other than that one
}

// extraLines are the banner's console and metrics lines, when there are.
func (b banner) extraLines(base string) string {
	var s string
	if b.nodes > 0 {
		s += fmt.Sprintf("  Cluster    %d NATS nodes, restarted when one exits   (yard servers: each one, and what it leads)\n", b.nodes)
	}
	if b.consoleKey != "" {
		s += fmt.Sprintf("  Console    %s/console/#key=%s   (an operator key: every function, logs, dead letters; until Ctrl-C)\n", base, b.consoleKey)
	}
	if b.metricsAddr != "" {
		s += fmt.Sprintf("  Metrics    http://%s/metrics\n", b.metricsAddr)
	}
	return s
}

// consoleKeyName names the API key yard up makes for its console link.
const consoleKeyName = "yard-up-console"

// consoleKey makes a fresh operator API key (every function, and the
// /ops routes) for the console link, revoking the one an earlier yard up made (and run revokes
// it when it stops): a key lives as long as the yard up that printed it.
func consoleKey(ctx context.Context, nc *nats.Conn) (string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	_, _ = apikeys.Revoke(ctx, js, consoleKeyName) // none yet is fine
	key, _, err := apikeys.Create(ctx, js, consoleKeyName, []string{"*"}, "", apikeys.AsOperator())
	return key, err
}

// gatewayURL is the gateway's base URL, and curl's flags to reach it.
func (b banner) gatewayURL() (base, curlFlags string) {
	if !b.https {
		return "http://" + b.httpAddr, ""
	}
	if b.ca != "" {
		curlFlags = " --cacert " + b.ca
	}
	return "https://" + b.httpAddr, curlFlags
}

func printBanner(f *factory, b banner) {
	fns := "none"
	if len(b.names) > 0 {
		fns = strings.Join(b.names, ", ")
	}
	// Off the defaults, the suggested commands must say where NATS is,
	// which CA to trust and where the admin's credential is.
	natsFlags, yardFlags := "", ""
	if b.natsURL != nats.DefaultURL {
		natsFlags += " -s " + b.natsURL
		yardFlags += " -s " + b.natsURL
	}
	if b.ca != "" {
		natsFlags += " --tlsca " + b.ca
	}
	if b.adminCreds != defaultCreds {
		yardFlags += " --creds " + b.adminCreds
	}
	base, curl := b.gatewayURL()
	example := "greet"
	if len(b.names) > 0 && !slices.Contains(b.names, "greet") {
		example = b.names[0]
	}
	fmt.Fprintf(f.io.ErrOut, `
Switchyard is up.
  NATS       %s   (JetStream data in %s)
  Admin      %s   (yard commands use it; keep it private)
  Gateway    %s
  Functions  %s
%s
Try:
  curl%s -s -d '{"name":"Ada"}' %s/fn/%s
  go run ./cli/yard invoke %s%s -d '{"name":"Ada"}'
  nats%s req fn.%s '{"name":"Ada"}'
  nats%s --creds %s sub 'yard.results.>'   # then: curl%s -s -d '{"name":"Ada"}' '%s/fn/%s?async=1'
%s%s
Ctrl-C stops.
`, b.natsURL, b.storeDir, b.adminCreds, base, fns, b.extraLines(base), curl, base, example, example, yardFlags, natsFlags, example,
		natsFlags, b.adminCreds, curl, base, example, shopHint(b, natsFlags, yardFlags), contextHint(b, yardFlags))
}

// contextHint tells of the nats context for this platform: where it was
// written, or the one command that writes it; and warns when another
// context is selected, since nats and yard commands then go there.
func contextHint(b banner, yardFlags string) string {
	var s string
	if b.context != "" {
		s = fmt.Sprintf(`
nats context %s written to %s (the admin, for nats and yard):
  nats --context %s kv ls     # or select it: nats context select %s
`, b.context, b.contextPath, b.context, b.context)
	} else {
		if b.ca != "" && b.ca != defaultCA {
			yardFlags += " --tls-ca " + b.ca
		}
		s = fmt.Sprintf(`
One configuration for nats and yard, as the admin (a nats context):
  go run ./cli/yard context write%s && nats context select yard
`, yardFlags)
	}
	if b.selected != "" {
		s += fmt.Sprintf("  (nats context %s is selected now: nats and yard commands without flags go there, not here)\n", b.selected)
	}
	return s
}

// shopHint shows how to place an order when the example shop runs: orders
// is not public, so with an API key.
func shopHint(b banner, natsFlags, yardFlags string) string {
	if !slices.Contains(b.names, "orders") {
		return ""
	}
	base, curl := b.gatewayURL()
	return fmt.Sprintf(`
The shop (docs/shop.md; orders, cart and sales need an API key):
  nats%s --creds %s sub orders.placed
  KEY=$(go run ./cli/yard keys create shop --functions orders,cart,sales%s)
  curl%s -s -H "Authorization: Bearer $KEY" -d '{"items":[{"sku":"TEA-0001","quantity":2}],"card":"4242424242424242","email":"ada@example.com"}' %s/fn/orders
`, natsFlags, b.adminCreds, yardFlags, curl, base)
}
