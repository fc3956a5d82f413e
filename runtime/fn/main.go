package fn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Main runs a function as a program: it connects to NATS_URL (default
// nats://127.0.0.1:4222, with the credentials file NATS_CREDS if set), serves until SIGINT or SIGTERM, then drains
// in-flight requests and exits. With wire.ManifestFlag it prints the manifest
// instead. Main is the only part of the SDK that reads the environment or
// exits the process; call it from func main.
func Main(cfg Config, h *Handler) {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, cfg, h))
}

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
	url := getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Replies come to an inbox of the function's own, which its
	// credential may read (and no other function's may).
	opts := []nats.Option{nats.Name("yard fn " + cfg.Name), nats.MaxReconnects(-1), nats.CustomInboxPrefix(wire.InboxPrefix(cfg.Name))}
	if creds := getenv("NATS_CREDS"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "fn %s: connect to %s: %v\n", cfg.Name, url, err)
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
