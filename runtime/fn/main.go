package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Main runs a function as a program: it connects to NATS_URL (default
// nats://127.0.0.1:4222) with the credentials file NATS_CREDS (the agent
// sets it; run by hand, ./.yard/admin.creds of a `yard up` in the same
// folder is used when present), serves until SIGINT or SIGTERM, then drains
// in-flight requests and exits. With wire.ManifestFlag it prints the manifest
// instead. Main is the only part of the SDK that reads the environment or
// exits the process; call it from func main.
func Main(cfg Config, h *Handler) {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, cfg, h))
}

// devCreds is where `yard up` keeps the admin's credential, relative to
// the folder it runs in.
const devCreds = ".yard/admin.creds"

func run(args []string, getenv func(string) string, stdout, stderr io.Writer, cfg Config, h *Handler) int {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if err := validateConfig(cfg, h); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	for _, a := range args {
		switch a {
		case wire.ManifestFlag:
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(specOf(cfg, h)); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			return 0
		case "-h", "--help", "-help":
			fmt.Fprintf(stdout, "%s: a Switchyard function.\n\nIt serves fn.%s on the NATS server at $NATS_URL (default %s)\nuntil SIGINT or SIGTERM, then drains.\n\n  %s  print name, schemas and defaults as JSON\n",
				cfg.Name, cfg.Name, nats.DefaultURL, wire.ManifestFlag)
			return 0
		default:
			fmt.Fprintf(stderr, "unknown argument %q (try --help)\n", a)
			return 2
		}
	}
	if cfg.Instance == "" {
		cfg.Instance = getenv(wire.EnvInstance)
	}
	// Handle returned h for this binary; deploy settings tune a copy.
	hc := *h
	h = &hc
	if err := applyDeployEnv(getenv, &cfg, h); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := validateConfig(cfg, h); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Traces go where OTEL_EXPORTER_OTLP_ENDPOINT says (the agent passes
	// its OTEL_* variables on); without it nothing is set up.
	attrs := []attribute.KeyValue{attribute.String("service.version", serviceVersion(cfg))}
	if cfg.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.Instance))
	}
	shutdownTracing, err := otelx.Setup(context.Background(), cfg.Name, attrs...)
	if err != nil {
		cfg.Logger.Warn("tracing is off", logKeyErr, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			cfg.Logger.Warn("flush traces", logKeyErr, err)
		}
	}()
	url := getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Replies come to an inbox of the function's own, which its
	// credential may read (and no other function's may).
	// Pings every second: a frozen NATS node is left in seconds.
	opts := []nats.Option{nats.Name("yard fn " + cfg.Name), nats.MaxReconnects(-1), nats.CustomInboxPrefix(wire.InboxPrefix(cfg.Name)),
		nats.PingInterval(wire.PingInterval), nats.MaxPingsOutstanding(wire.MaxPingsOut)}
	creds := getenv(wire.EnvNATSCreds)
	if creds == "" {
		if _, err := os.Stat(devCreds); err == nil {
			creds = devCreds
		}
	}
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if ca := getenv(wire.EnvNATSCA); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		hint := ""
		if errors.Is(err, nats.ErrAuthorization) {
			hint = " (set NATS_CREDS to a credential that may run it, such as the .yard/admin.creds that yard up writes)"
		}
		fmt.Fprintf(stderr, "fn %s: connect to %s: %v%s\n", cfg.Name, url, err, hint)
		return 1
	}
	defer nc.Close()
	// A signal during the start still ends in a drain, as in Serve.
	sctx, cancelStart := context.WithTimeout(context.WithoutCancel(ctx), DefaultDrainTimeout)
	inst, err := Start(sctx, nc, cfg, h)
	cancelStart()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if f := getenv(wire.EnvReadyFile); f != "" {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			cfg.Logger.Warn("write ready file", logKeyErr, err)
		}
	}
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
	defer cancel()
	if err := inst.Stop(dctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := nc.Drain(); err != nil {
		cfg.Logger.Warn("drain connection", logKeyErr, err)
	}
	return 0
}

// serviceVersion is the version Start will serve as (see Config.Version).
func serviceVersion(cfg Config) string {
	switch {
	case cfg.Version != "":
		return cfg.Version
	case cfg.DeployedVersion > 0:
		return strconv.Itoa(cfg.DeployedVersion) + ".0.0"
	}
	return "1.0.0"
}
