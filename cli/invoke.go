package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/callback"
	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

type invokeOptions struct {
	f       *factory
	name    string
	data    string
	file    string
	timeout time.Duration
	json    bool

	async          bool
	wait           bool
	idempotencyKey string
	callbackURL    string
	allowPrivate   bool
}

func newInvokeCmd(f *factory, run func(context.Context, *invokeOptions) error) *cobra.Command {
	o := &invokeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "invoke <name> [-d JSON | -f FILE]",
		Short: "Call a function over NATS and print its reply",
		Long: `Call a function over NATS (subject fn.<name>) and print its JSON reply.

The input is -d JSON, or -f FILE ('-' reads standard input), or {} when
neither is given. The function validates it against its input schema.

On an error the code, reason (when the function gave one) and message go
to standard error (with --json, the error body goes to standard output)
and yard exits with status 3.

With --async the input is checked against the function's schema, queued
durably (JetStream) and its invocation id printed; it runs with retries
and ends succeeded or in the dead-letter queue (see 'yard dlq'). --wait
then waits for the outcome and prints it as a synchronous call would.`,
		Example: `  yard invoke greet -d '{"name":"Ada"}'
  echo '{"sku":"TEA-0001"}' | yard invoke catalog -f -
  yard invoke greet --async -d '{"name":"Ada"}'
  yard invoke greet --async --wait --idempotency-key order-42 -d '{"name":"Ada"}'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("invoke takes exactly one function name, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			if err := wire.ValidateName(o.name); err != nil {
				return usageError("%v", err)
			}
			if o.data != "" && o.file != "" {
				return usageError("give the input with -d or with -f, not both")
			}
			if o.timeout <= 0 {
				return usageError("--timeout must be positive")
			}
			if !o.async && (o.wait || o.idempotencyKey != "" || o.callbackURL != "") {
				return usageError("--wait, --idempotency-key and --callback-url go with --async")
			}
			if o.idempotencyKey != "" {
				if err := invocation.ValidateKey(o.idempotencyKey); err != nil {
					return usageError("--idempotency-key: %v", err)
				}
			}
			if o.callbackURL != "" {
				// The same policy as the gateways' default: they would
				// refuse a private target anyway, only later.
				if _, err := (callback.Policy{AllowPrivate: o.allowPrivate}).CheckURL(o.callbackURL); err != nil {
					if o.allowPrivate {
						return usageError("--callback-url: %v", err)
					}
					return usageError("--callback-url: %v (for local development pass --allow-private-callbacks, and run yard up or yard gateway with it too)", err)
				}
			}
			if run != nil {
				return run(cmd.Context(), o)
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.data, "data", "d", "", "input as a JSON string")
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "read the input from FILE ('-' for standard input)")
	cmd.Flags().DurationVarP(&o.timeout, "timeout", "t", 30*time.Second, "how long to wait for the reply")
	cmd.Flags().BoolVar(&o.json, "json", false, "print errors as their JSON body on standard output (with --async: the record)")
	cmd.Flags().BoolVar(&o.async, "async", false, "queue the invocation durably and print its id")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "with --async: wait up to --timeout for the outcome")
	cmd.Flags().StringVar(&o.idempotencyKey, "idempotency-key", "", "with --async: the same key and input never run twice")
	cmd.Flags().StringVar(&o.callbackURL, "callback-url", "", "with --async: POST the outcome to this URL")
	cmd.Flags().BoolVar(&o.allowPrivate, "allow-private-callbacks", false, "with --callback-url: allow loopback and private targets (the gateways, which deliver callbacks, must allow them too)")
	return cmd
}

func (o *invokeOptions) input() ([]byte, error) {
	switch {
	case o.data != "":
		return []byte(o.data), nil
	case o.file == "-":
		return io.ReadAll(o.f.io.In)
	case o.file != "":
		return os.ReadFile(o.file)
	default:
		return []byte("{}"), nil
	}
}

func (o *invokeOptions) run(ctx context.Context) error {
	input, err := o.input()
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	if !json.Valid(input) {
		return usageError("the input is not valid JSON: %s", truncate(string(input), 80))
	}
	nc, err := o.f.connect("invoke")
	if err != nil {
		return err
	}
	defer nc.Close()
	if o.async {
		return o.runAsync(ctx, nc, input)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	subject, _ := wire.FnSubject(o.name)
	reqID := nuid.Next()
	msg := &nats.Msg{Subject: subject, Data: input, Header: nats.Header{
		wire.HeaderRequestID: {reqID},
		wire.HeaderDeadline:  {deadline.UTC().Format(time.RFC3339Nano)},
	}}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if errors.Is(err, nats.ErrNoResponders) && fleet.Activate(ctx, nc, o.name, deadline) == nil {
		// It was scaled to zero and an agent started an instance.
		reply, err = nc.RequestMsgWithContext(ctx, msg)
	}
	var we *wire.Error
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		we = o.noResponders(nc)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		we = wire.Errorf(wire.CodeDeadlineExceeded, "%s did not answer within %s", o.name, o.timeout)
	case err != nil:
		return fmt.Errorf("request %s: %w", subject, err)
	default:
		we = wire.ReplyError(reply.Header, reply.Data)
	}
	if we != nil {
		return o.printError(we, reqID)
	}
	out := reply.Data
	if len(out) == 0 || out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	_, err = o.f.io.Out.Write(out)
	return err
}

// noResponders tells "no such function" from "no instance running" by
// asking the registry.
func (o *invokeOptions) noResponders(nc *nats.Conn) *wire.Error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if js, err := jetstream.New(nc); err == nil {
		if reg, err := registry.Open(ctx, js); err == nil {
			if _, err := reg.Get(ctx, o.name); errors.Is(err, registry.ErrNotFound) {
				return wire.Errorf(wire.CodeNotFound, "function %q not found (see `yard ls`)", o.name)
			}
		}
	}
	return wire.Errorf(wire.CodeUnavailable, "no instance of %q is running", o.name)
}

func (o *invokeOptions) printError(we *wire.Error, reqID string) error {
	if o.json {
		enc := json.NewEncoder(o.f.io.Out)
		_ = enc.Encode(we)
	} else {
		fmt.Fprintf(o.f.io.ErrOut, "error: %s (%d): %s\n", we.Code, we.Code.HTTPStatus(), we.Message)
		if we.Reason != "" {
			fmt.Fprintf(o.f.io.ErrOut, "reason: %s\n", we.Reason)
		}
		for _, fe := range we.Errors {
			ptr := fe.Pointer
			if ptr == "" {
				ptr = "(body)"
			}
			fmt.Fprintf(o.f.io.ErrOut, "  %s: %s\n", ptr, fe.Message)
		}
		if reqID != "" {
			fmt.Fprintf(o.f.io.ErrOut, "request id: %s\n", reqID)
		}
	}
	return &exitError{code: ExitFnError, err: errors.New("")}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
