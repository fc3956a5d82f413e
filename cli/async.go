package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// openStores opens the registry and the invocation store on nc.
func openStores(ctx context.Context, nc *nats.Conn) (*registry.Registry, *invocation.Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, nil, err
	}
	inv, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		return nil, nil, err
	}
	return reg, inv, nil
}

// runAsync validates the input as the gateway would, queues it, and
// prints the id, or with --wait the outcome.
func (o *invokeOptions) runAsync(ctx context.Context, nc *nats.Conn, input []byte) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	reg, inv, err := openStores(ctx, nc)
	if err != nil {
		return err
	}
	spec, err := reg.Get(ctx, o.name)
	if errors.Is(err, registry.ErrNotFound) {
		return o.printError(wire.Errorf(wire.CodeNotFound, "function %q not found (see `yard ls`)", o.name), "")
	}
	if err != nil {
		return err
	}
	if we := validateInput(spec, input); we != nil {
		return o.printError(we, "")
	}
	rec, created, err := inv.Submit(ctx, invocation.Submission{
		Function: o.name, Body: input, IdempotencyKey: o.idempotencyKey,
		RequestID: nuid.Next(), CallbackURL: o.callbackURL,
	})
	if errors.Is(err, invocation.ErrConflict) {
		return o.printError(wire.Errorf(wire.CodeConflict, "idempotency key %q was used for a different input", o.idempotencyKey), "")
	}
	if errors.Is(err, invocation.ErrBacklogFull) {
		return o.printError(wire.Errorf(wire.CodeResourceExhausted, "%v", invocation.ErrBacklogFull), "")
	}
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(o.f.io.ErrOut, "idempotency key seen before: invocation %s (%s)\n", rec.ID, rec.Status)
	}
	if !o.wait {
		if o.json {
			return writeJSONOut(o.f, rec)
		}
		fmt.Fprintln(o.f.io.Out, rec.ID)
		fmt.Fprintf(o.f.io.ErrOut, "queued; see `yard invocations get %s` or `nats sub 'yard.results.%s.%s'`\n", rec.ID, o.name, rec.ID)
		return nil
	}
	fmt.Fprintf(o.f.io.ErrOut, "queued %s, waiting …\n", rec.ID)
	final, err := inv.Wait(ctx, rec.ID)
	if errors.Is(err, context.DeadlineExceeded) {
		status := "unknown"
		if final != nil {
			status = string(final.Status)
		}
		return o.printError(wire.Errorf(wire.CodeDeadlineExceeded, "invocation %s still %s after %s; it keeps going", rec.ID, status, o.timeout), rec.RequestID)
	}
	if err != nil {
		return err
	}
	if o.json {
		if err := writeJSONOut(o.f, final); err != nil {
			return err
		}
		if final.Status != invocation.Succeeded {
			return &exitError{code: ExitFnError, err: errors.New("")}
		}
		return nil
	}
	if final.Status != invocation.Succeeded {
		fmt.Fprintf(o.f.io.ErrOut, "invocation %s is dead after %d attempts (see `yard dlq ls %s`)\n", final.ID, final.Attempts, o.name)
		return o.printError(final.Error, final.RequestID)
	}
	_, err = fmt.Fprintln(o.f.io.Out, string(final.Result))
	return err
}

// validateInput checks input against the function's live input schema, so
// a bad async input is refused now rather than dead-lettered later.
func validateInput(spec *registry.Spec, input []byte) *wire.Error {
	s, err := schemas.Compile(spec.InputSchema)
	if err != nil {
		return nil // the instance validates anyway
	}
	doc, err := schemas.Decode(input, schemas.DecodeLimits{})
	if err != nil {
		return schemas.InvalidJSON("input is not valid JSON", err)
	}
	if v := s.Validate(doc); len(v) > 0 {
		return schemas.InvalidInput("input does not match the schema of "+spec.Name, v)
	}
	return nil
}

func writeJSONOut(f *factory, v any) error {
	enc := json.NewEncoder(f.io.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newInvocationsCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "invocations",
		Short: "Inspect asynchronous invocations",
		Args:  subcommandArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var asJSON bool
	get := &cobra.Command{
		Use:   "get <id>",
		Short: "Show the status and result of an async invocation",
		Long: `Show an async invocation's record from yard_results: status (queued,
running, succeeded, failed = an attempt failed and another is scheduled,
dead = in the dead-letter queue), attempts, timings, and result or error.
Records are kept for 24 hours.`,
		Args: exactArgs(1, "an invocation id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), f, "invocations", 10*time.Second, func(ctx context.Context, inv *invocation.Store) error {
				rec, err := inv.Get(ctx, args[0])
				if errors.Is(err, invocation.ErrNotFound) {
					return &exitError{code: ExitError, err: fmt.Errorf("invocation %q not found (records are kept for 24h)", args[0])}
				}
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(f, rec)
				}
				printRecord(f, rec)
				return nil
			})
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	cmd.AddCommand(get)
	return cmd
}

func printRecord(f *factory, rec *invocation.Record) {
	tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	row("id", rec.ID)
	row("function", rec.Function)
	row("status", string(rec.Status))
	row("attempts", fmt.Sprintf("%d of %d", rec.Attempts, rec.MaxAttempts))
	row("created", ts(rec.CreatedAt))
	row("started", ts(rec.StartedAt))
	row("finished", ts(rec.FinishedAt))
	row("next attempt", ts(rec.NextAttemptAt))
	row("request id", rec.RequestID)
	if len(rec.Result) > 0 {
		row("result", string(rec.Result))
	}
	if rec.Error != nil {
		row("error", rec.Error.Error())
	}
	_ = tw.Flush()
}

func newDLQCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay dead-lettered invocations",
		Long: `Async invocations that failed every attempt (or failed permanently) land
in the stream YARD_DLQ with their payload, last error and attempts. List
them, and replay them once the cause is fixed.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var asJSON bool
	var limit int
	ls := &cobra.Command{
		Use:   "ls [name]",
		Short: "List dead letters, of one function or of all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
				if err := wire.ValidateName(name); err != nil {
					return usageError("%v", err)
				}
			}
			return withStore(cmd.Context(), f, "dlq", time.Minute, func(ctx context.Context, inv *invocation.Store) error {
				letters, err := inv.DeadLetters(ctx, name, limit)
				if err != nil {
					return err
				}
				if asJSON {
					if letters == nil {
						letters = []invocation.DeadLetter{}
					}
					return writeJSONOut(f, letters)
				}
				if len(letters) == 0 {
					fmt.Fprintln(f.io.ErrOut, "the dead-letter queue is empty")
					return nil
				}
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tFUNCTION\tATTEMPTS\tDEAD AT\tERROR")
				for _, d := range letters {
					msg := ""
					if d.Error != nil {
						msg = truncate(d.Error.Error(), 80)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.ID, d.Function, d.Attempts, d.DeadAt.Format(time.RFC3339), msg)
				}
				return tw.Flush()
			})
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print a JSON array (with payloads)")
	ls.Flags().IntVar(&limit, "limit", 0, "list at most this many (0: all)")
	ls.PreRunE = func(*cobra.Command, []string) error {
		if limit < 0 {
			return usageError("--limit must be 0 (all) or more")
		}
		return nil
	}

	var all string
	var replayJSON bool
	replay := &cobra.Command{
		Use:   "replay <id> | --all <name>",
		Short: "Send dead letters back to the work queue",
		Long: `Replay sends a dead letter back to its function's work queue with its
attempts reset and removes it from the DLQ. The invocation keeps its id.`,
		Example: `  yard dlq replay 3Bn9U6kQBeMxGvHtqCtpoq
  yard dlq replay --all payments`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (all == "") == (len(args) != 1) {
				return usageError("give one invocation id, or --all <name>")
			}
			if all != "" {
				if err := wire.ValidateName(all); err != nil {
					return usageError("%v", err)
				}
			}
			return withStore(cmd.Context(), f, "dlq", time.Minute, func(ctx context.Context, inv *invocation.Store) error {
				if all != "" {
					n, err := inv.ReplayAll(ctx, all)
					if replayJSON {
						_ = writeJSONOut(f, map[string]any{"function": all, "replayed": n})
					} else {
						fmt.Fprintf(f.io.ErrOut, "replayed %d invocations of %s\n", n, all)
					}
					return err
				}
				rec, err := inv.Replay(ctx, args[0])
				if errors.Is(err, invocation.ErrNotFound) {
					return &exitError{code: ExitError, err: err}
				}
				if err != nil {
					return err
				}
				if replayJSON {
					return writeJSONOut(f, rec)
				}
				fmt.Fprintf(f.io.ErrOut, "replayed %s (%s); follow it with `yard invocations get %s`\n", rec.ID, rec.Function, rec.ID)
				return nil
			})
		},
	}
	replay.Flags().StringVar(&all, "all", "", "replay every dead letter of this function")
	replay.Flags().BoolVar(&replayJSON, "json", false, "print the outcome as JSON")
	cmd.AddCommand(ls, replay)
	return cmd
}

// withStore connects and opens the invocation store (not the registry,
// which these commands do not read) for one command.
func withStore(ctx context.Context, f *factory, name string, timeout time.Duration, run func(context.Context, *invocation.Store) error) error {
	nc, err := f.connect(name)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	inv, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		return err
	}
	return run(ctx, inv)
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s takes %s (got %d arguments)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// subcommandArgs refuses an unknown sub-command of a command that only
// groups others, with a usage error instead of the help and exit 0.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}
