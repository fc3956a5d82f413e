// Package cli implements the yard command: one file per verb, each an
// options struct and a constructor taking the factory, so flag parsing can
// be tested apart from behaviour. Data goes to stdout, progress and status
// to stderr; every listing takes --json.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

// Exit codes of yard.
const (
	ExitOK       = 0
	ExitError    = 1 // the command failed (connection, I/O, platform)
	ExitUsage    = 2 // bad flags or arguments
	ExitFnError  = 3 // the function answered with an error
	ExitCanceled = 130
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// IOStreams are the command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// factory holds what every command may need, resolved lazily.
type factory struct {
	io       IOStreams
	server   string // --server
	getenv   func(string) string
	logLevel string
}

// natsURL resolves the server: --server, then NATS_URL, then the default.
func (f *factory) natsURL() string {
	if f.server != "" {
		return f.server
	}
	if u := f.getenv("NATS_URL"); u != "" {
		return u
	}
	return nats.DefaultURL
}

func (f *factory) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	url := f.natsURL()
	opts := append([]nats.Option{nats.Name("yard " + name)}, extra...)
	if creds := f.getenv("NATS_CREDS"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (is `yard up` running? set --server or NATS_URL)", url, err)
	}
	return nc, nil
}

func (f *factory) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(f.io.ErrOut, &slog.HandlerOptions{Level: lvl}))
}

// NewRootCmd builds the yard command tree.
func NewRootCmd(streams IOStreams, getenv func(string) string) *cobra.Command {
	f := &factory{io: streams, getenv: getenv}
	root := &cobra.Command{
		Use:   "yard",
		Short: "Switchyard: typed functions on NATS",
		Long: `yard runs and talks to Switchyard, a function platform on NATS.

Start everything locally with 'yard up', then call functions over HTTP
(curl localhost:8080/fn/greet), with 'yard invoke', or with the nats CLI
(nats req fn.greet '{"name":"Ada"}').

Commands that talk to NATS use --server, else $NATS_URL, else ` + nats.DefaultURL + `,
with the credentials file $NATS_CREDS when set.

Exit codes: 0 ok, 1 failed, 2 bad usage, 3 the function answered with an error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.PersistentFlags().StringVarP(&f.server, "server", "s", "", "NATS server URL (default $NATS_URL or "+nats.DefaultURL+")")
	root.PersistentFlags().StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
			return usageError("--log-level %q: want debug, info, warn or error", f.logLevel)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%v\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	root.AddCommand(
		newUpCmd(f),
		newServerCmd(f),
		newGatewayCmd(f),
		newInvokeCmd(f, nil),
		newLsCmd(f, nil),
		newInvocationsCmd(f),
		newDLQCmd(f),
		newDeployCmd(f),
		newAgentCmd(f),
		newDescribeCmd(f),
		newRollbackCmd(f),
		newRmCmd(f),
		newLogsCmd(f),
	)
	return root
}

// Main runs yard with the process's arguments and returns its exit code.
func Main() int {
	return Run(context.Background(), os.Args[1:], IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv)
}

// Run runs yard with args and returns the exit code.
func Run(ctx context.Context, args []string, streams IOStreams, getenv func(string) string) int {
	root := NewRootCmd(streams, getenv)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	code := ExitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "accepts ") ||
		strings.HasPrefix(err.Error(), "requires ") {
		code = ExitUsage
	}
	if ee == nil || ee.err.Error() != "" {
		fmt.Fprintln(streams.ErrOut, "yard:", err)
	}
	return code
}
