package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// secretArg is one secret to store, checked before anything is stored.
type secretArg struct{ name, value string }

func newSecretsCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Set, list and remove function secrets (kept apart from the spec)",
		Long: `Secrets are environment variables of a function's instances that are not
part of its spec: the spec, env included, is in yard_functions, which every
gateway and agent reads; secrets are in the bucket yard_secrets, which only
admins write and only agents read. Agents pass them to instances started
afterwards as environment variables (a secret wins over an env variable of
the same name). Names follow the rules of env names; NATS_URL, NATS_CREDS
and YARD_* are reserved. yard never prints a secret's value.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}

	set := &cobra.Command{
		Use:   "set <name> KEY=VALUE [KEY=VALUE…] | set <name> KEY",
		Short: "Store secrets of a function",
		Long: `Store one or more secrets of a function; each replaces the one of the same
name. KEY=VALUE takes the value from the command line, which your shell
history and the process list may keep. KEY alone (one at most) reads the
value from stdin instead, which must then be a pipe or a file, not a
terminal; one trailing newline is dropped. Values are at most 64 KiB and
hold no NUL byte. Everything is checked before anything is stored.

The function need not be deployed yet. Instances started afterwards get
the new values; restart running ones with a deploy or rollback.`,
		Example: `  yard secrets set payments STRIPE_KEY < stripe.key
  printf %s "$DB_URL" | yard secrets set orders DB_URL
  yard secrets set greet GREETING_SALT=abc LEVEL=3
  yard deploy ./functions/payments --secret STRIPE_KEY   # from your environment`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError("%s takes a function name and at least one KEY=VALUE or KEY (got %d arguments)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			fn := args[0]
			if err := wire.ValidateName(fn); err != nil {
				return usageError("%v", err)
			}
			items, err := secretArgs(f, fn, args[1:])
			if err != nil {
				return err
			}
			return withJetStream(cmd.Context(), f, "secrets", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
				return storeSecrets(ctx, f, newAuditLog(f, nc, js), fn, items)
			})
		},
	}

	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls <name>",
		Short: "List the names of a function's secrets (never their values)",
		Args:  nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJetStream(cmd.Context(), f, "secrets", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
				names, err := secrets.Names(ctx, js, args[0])
				if err != nil {
					return err
				}
				if lsJSON {
					return writeJSONOut(f, append([]string{}, names...))
				}
				if len(names) == 0 {
					fmt.Fprintf(f.io.ErrOut, "%s has no secrets\n", args[0])
					return nil
				}
				for _, n := range names {
					fmt.Fprintln(f.io.Out, n)
				}
				return nil
			})
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print a JSON array of names")

	rm := &cobra.Command{
		Use:   "rm <name> KEY",
		Short: "Remove a secret of a function",
		Long: `Remove a secret of a function. Instances started afterwards go without it;
running ones keep the value they started with.`,
		Args: exactArgs(2, "a function name and a secret name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fn, name := args[0], args[1]
			if err := secrets.Validate(fn, name); err != nil {
				return usageError("%v", err)
			}
			return withJetStream(cmd.Context(), f, "secrets", func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
				err := secrets.Remove(ctx, js, fn, name)
				newAuditLog(f, nc, js).record(ctx, audit.KindSecret, "secret.remove", fn, name, err)
				if errors.Is(err, secrets.ErrNotFound) {
					return &exitError{code: ExitError, err: fmt.Errorf("%s has no secret %s (see `yard secrets ls %s`)", fn, name, fn)}
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(f.io.ErrOut, "removed secret %s of %s\n", name, fn)
				return nil
			})
		},
	}
	cmd.AddCommand(set, ls, rm)
	return cmd
}

// secretArgs parses and checks the KEY=VALUE and KEY arguments of secrets
// set: every mistake is a usage error, found before anything is stored.
func secretArgs(f *factory, fn string, args []string) ([]secretArg, error) {
	var items []secretArg
	fromStdin := ""
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok {
			if fromStdin != "" {
				return nil, usageError("%s and %s both want stdin: give at most one KEY without =VALUE", fromStdin, name)
			}
			fromStdin = name
			v, err := readSecretStdin(f, name)
			if err != nil {
				return nil, err
			}
			value = v
		}
		if err := secrets.Validate(fn, name); err != nil {
			return nil, usageError("%v", err)
		}
		if err := secrets.ValidateValue(name, value); err != nil {
			return nil, usageError("%v", err)
		}
		if slices.ContainsFunc(items, func(it secretArg) bool { return it.name == name }) {
			return nil, usageError("secret %s is given twice", name)
		}
		items = append(items, secretArg{name, value})
	}
	return items, nil
}

// readSecretStdin reads one value from stdin, which must not be a terminal
// (a value typed there would echo on the screen).
func readSecretStdin(f *factory, name string) (string, error) {
	if file, ok := f.io.In.(*os.File); ok {
		if fi, err := file.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return "", usageError("%s has no =VALUE, so its value is read from stdin, which is a terminal: pipe it in (printf %%s \"$%s\" | yard secrets set …) or give %s=VALUE", name, name, name)
		}
	}
	if f.io.In == nil {
		return "", usageError("%s has no =VALUE and there is no stdin to read it from", name)
	}
	data, err := io.ReadAll(io.LimitReader(f.io.In, secrets.MaxValueSize+2))
	if err != nil {
		return "", fmt.Errorf("read the value of %s from stdin: %w", name, err)
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if v == "" {
		return "", usageError("%s has no =VALUE and stdin is empty", name)
	}
	return v, nil
}

// deploySecrets reads the values of yard deploy --secret KEY from the
// deployer's environment, before anything is built or stored.
func deploySecrets(f *factory, names []string) ([]secretArg, error) {
	var items []secretArg
	for _, name := range names {
		// The function's name is known only after the build.
		if err := registry.ValidateEnvName(name); err != nil {
			return nil, usageError("--secret %v", err)
		}
		value := f.getenv(name)
		if value == "" {
			return nil, usageError("--secret %s: the environment variable %s is not set (or empty)", name, name)
		}
		if err := secrets.ValidateValue(name, value); err != nil {
			return nil, usageError("--secret %v", err)
		}
		if !slices.ContainsFunc(items, func(it secretArg) bool { return it.name == name }) {
			items = append(items, secretArg{name, value})
		}
	}
	return items, nil
}

// storeSecrets stores checked secrets one by one, auditing each by name.
func storeSecrets(ctx context.Context, f *factory, log *auditLog, fn string, items []secretArg) error {
	for _, it := range items {
		err := secrets.Set(ctx, log.js, fn, it.name, it.value)
		log.record(ctx, audit.KindSecret, "secret.set", fn, it.name, err)
		if err != nil {
			return err
		}
		fmt.Fprintf(f.io.ErrOut, "set secret %s of %s\n", it.name, fn)
	}
	return nil
}

// withJetStream connects for one command that needs JetStream but not
// the registry.
func withJetStream(ctx context.Context, f *factory, name string, run func(context.Context, *nats.Conn, jetstream.JetStream) error) error {
	nc, err := f.connect(name)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return run(ctx, nc, js)
}
