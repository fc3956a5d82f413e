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

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
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
	io        IOStreams
	server    string // --server
	creds     string // --creds
	tlsCA     string // --tls-ca
	ctxName   string // --context
	noContext bool   // --no-context
	nctx      *natsContext
	getenv    func(string) string
	logLevel  string
}

// Where a command that talks to NATS connects, and as whom, follows the
// nats CLI (v0.5.0): a flag first, else its environment variable (nats
// binds NATS_URL, NATS_CREDS and NATS_CA to its flags, and flags override
// the context), else the nats context in use (f.nctx), else the defaults.
// yard's local defaults (./.yard/admin.creds, ./.yard/tls/ca.pem) stand in
// for a context only when there is none: a context says all there is.

// natsURL resolves the server: --server, then NATS_URL, then the context,
// then the default.
func (f *factory) natsURL() string {
	if f.server != "" {
		return f.server
	}
	if u := f.getenv("NATS_URL"); u != "" {
		return u
	}
	if f.nctx != nil && f.nctx.URL != "" {
		return f.nctx.URL
	}
	return nats.DefaultURL
}

// defaultCreds is where `yard up` (and `yard server`) started in the same
// folder keep the admin's credential.
const defaultCreds = ".yard/admin.creds"

// credsOverride is the credential of --creds or NATS_CREDS, which beats
// every way a context authenticates.
func (f *factory) credsOverride() string {
	if f.creds != "" {
		return f.creds
	}
	return f.getenv("NATS_CREDS")
}

// credsFile resolves the credential: --creds, then NATS_CREDS, then the
// context's, else (no context) ./.yard/admin.creds when it exists; ""
// connects without one (anonymous, or as the context's user or token).
func (f *factory) credsFile() string {
	if c := f.credsOverride(); c != "" {
		return c
	}
	if f.nctx != nil {
		return f.nctx.Creds
	}
	if _, err := os.Stat(defaultCreds); err == nil {
		return defaultCreds
	}
	return ""
}

// defaultCA is where `yard up --tls` keeps its local CA.
const defaultCA = ".yard/tls/ca.pem"

// caFile resolves the CA that signed the server's TLS certificate:
// --tls-ca, then NATS_CA, then the context's, else (no context)
// ./.yard/tls/ca.pem for a tls:// URL.
func (f *factory) caFile() string {
	if f.tlsCA != "" {
		return f.tlsCA
	}
	if c := f.getenv("NATS_CA"); c != "" {
		return c
	}
	if f.nctx != nil {
		return f.nctx.CA
	}
	if strings.HasPrefix(f.natsURL(), "tls://") {
		if _, err := os.Stat(defaultCA); err == nil {
			return defaultCA
		}
	}
	return ""
}

// inboxPrefix is the context's inbox_prefix while its own way of signing
// in is used, else the one the credential must use (inboxOf).
func (f *factory) inboxPrefix() string {
	if f.nctx != nil && f.nctx.InboxPrefix != "" && f.credsOverride() == "" {
		return f.nctx.InboxPrefix
	}
	if creds := f.credsFile(); creds != "" {
		return inboxOf(creds)
	}
	return ""
}

// authOptions sign in as the nats CLI does: a context's user and password
// before its credential, before its nkey, and its token besides; --creds
// or NATS_CREDS replace them all.
func (f *factory) authOptions() ([]nats.Option, error) {
	c := f.nctx
	if c == nil || f.credsOverride() != "" {
		c = nil
	}
	var opts []nats.Option
	switch creds := f.credsFile(); {
	case c != nil && c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case creds != "":
		opts = append(opts, nats.UserCredentials(creds))
	case c != nil && c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("nats context %q: nkey: %w", c.Name, err)
		}
		opts = append(opts, o)
	}
	if c != nil && c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if prefix := f.inboxPrefix(); prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	if f.nctx != nil {
		if f.nctx.Cert != "" && f.nctx.Key != "" {
			opts = append(opts, nats.ClientCert(f.nctx.Cert, f.nctx.Key))
		}
		if f.nctx.TLSFirst {
			opts = append(opts, nats.TLSHandshakeFirst())
		}
	}
	return opts, nil
}

func (f *factory) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	url := f.natsURL()
	opts := []nats.Option{nats.Name("yard " + name)}
	auth, err := f.authOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	opts = append(opts, extra...) // a component's own inbox comes last, and wins
	if ca := f.caFile(); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	where := url
	if f.nctx != nil {
		where += fmt.Sprintf(" (nats context %s, %s)", f.nctx.Name, f.nctx.Source)
	}
	nc, err := nats.Connect(url, opts...)
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		return nil, fmt.Errorf("connect to NATS at %s: %w (pass --creds or NATS_CREDS; `yard up` writes the admin's to <data>/admin.creds)", where, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (is `yard up` running? set --server or NATS_URL)", where, err)
	}
	return nc, nil
}

// usesNATSContext tells the commands that connect as a client, and so
// read the nats context, from those that do not (up and server run their
// own; context writes and lists them; help and completion).
func usesNATSContext(cmd *cobra.Command) bool {
	for c := cmd; c.HasParent(); c = c.Parent() {
		if !c.Parent().HasParent() {
			switch c.Name() {
			case "up", "server", "context", "help", "completion", "__complete", "__completeNoDesc":
				return false
			}
		}
	}
	return true
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

Commands that talk to NATS find the server, credential and CA as the nats
CLI does, first match wins:

  1. the flags --server, --creds, --tls-ca;
  2. the variables $NATS_URL, $NATS_CREDS, $NATS_CA (nats binds them to
     the same flags, so they too beat a context);
  3. the nats context named by --context, else $NATS_CONTEXT, else the one
     selected with 'nats context select': its url, creds, ca, inbox_prefix,
     user/password, token, nkey and cert/key ('yard context ls' lists them;
     --no-context ignores them);
  4. without a context: ` + nats.DefaultURL + `, and ./.yard/admin.creds and
     ./.yard/tls/ca.pem (written by 'yard up') when present; without a
     credential they connect as an anonymous caller.

'yard context write' makes a context named yard for the local platform, so
that 'nats --context yard ...' and yard reach it as the admin.

Exit codes: 0 ok, 1 failed, 2 bad usage, 3 the function answered with an error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.PersistentFlags().StringVarP(&f.server, "server", "s", "", "NATS server URL (default $NATS_URL, else the nats context's, else "+nats.DefaultURL+")")
	root.PersistentFlags().StringVar(&f.creds, "creds", "", "NATS credentials file (default $NATS_CREDS, else the nats context's, else ./.yard/admin.creds when present)")
	root.PersistentFlags().StringVar(&f.tlsCA, "tls-ca", "", "CA file that signed the NATS server's certificate (default $NATS_CA, else the nats context's, else ./.yard/tls/ca.pem for a tls:// server)")
	root.PersistentFlags().StringVar(&f.ctxName, "context", "", "nats CLI context to use (default $NATS_CONTEXT, else the selected one; flags and $NATS_URL, $NATS_CREDS, $NATS_CA override it)")
	root.PersistentFlags().BoolVar(&f.noContext, "no-context", false, "ignore nats contexts, the selected one included")
	root.PersistentFlags().StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
			return usageError("--log-level %q: want debug, info, warn or error", f.logLevel)
		}
		if f.noContext && f.ctxName != "" {
			return usageError("--context and --no-context: choose one")
		}
		if usesNATSContext(cmd) {
			c, err := f.loadContext()
			if err != nil {
				return err
			}
			f.nctx = c
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError("%v\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	root.AddCommand(
		newUpCmd(f),
		newServerCmd(f), newServerConfigCmd(f), newPlatformCmd(f),
		newServersCmd(f),
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
		newCredsCmd(f),
		newKeysCmd(f),
		newSecretsCmd(f),
		newAuditCmd(f),
		newContextCmd(f),
		newEventsCmd(f),
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

// inboxOf is the inbox prefix a credential must use: the admin's when the
// default _INBOX is denied to it (anonymous callers read that one), or the
// private prefix its subscribe rights name (a caller's _INBOX_c.<name>);
// "" for the default. A file that cannot be read is left to the connect to
// report.
func inboxOf(credsFile string) string {
	b, err := os.ReadFile(credsFile)
	if err != nil {
		return ""
	}
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return ""
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return ""
	}
	if uc.Sub.Deny.Contains("_INBOX.>") {
		return roles.AdminInbox
	}
	for _, s := range uc.Sub.Allow {
		if prefix, ok := strings.CutSuffix(s, ".>"); ok && strings.HasPrefix(prefix, "_INBOX_") {
			return prefix
		}
	}
	return ""
}

// liveness makes a component's connection notice a NATS server that
// stopped answering in seconds (wire.PingInterval, wire.MaxPingsOut).
func liveness() []nats.Option {
	return []nats.Option{nats.PingInterval(wire.PingInterval), nats.MaxPingsOutstanding(wire.MaxPingsOut)}
}
