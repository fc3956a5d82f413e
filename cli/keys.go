package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/audit"
)

func newKeysCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke the gateway's API keys",
		Long: `An API key lets an HTTP client call the functions it names through the
gateway: Authorization: Bearer <key>. Keys are stored hashed in the
key-value bucket yard_keys; the key itself is shown once, when created.
A revoked key is refused by every gateway within seconds. Public
functions need no key; internal ones cannot be called over HTTP at all.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newKeysCreateCmd(f), newKeysLsCmd(f), newKeysRevokeCmd(f))
	return cmd
}

// keyRow is a key as yard keys prints it: never the key or its hash,
// except for the key itself once, from create.
type keyRow struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Key       string   `json:"key,omitempty"`
	Functions []string `json:"functions"`
	// Rate is the key's own limit (50/s); "" is the gateway's default.
	Rate     string `json:"rate"`
	Operator bool   `json:"operator"`
	Created  string `json:"created"`
	Revoked  string `json:"revoked,omitempty"`
}

// invalidText is an apikeys validation error without its "invalid: ".
func invalidText(err error) string {
	return strings.TrimPrefix(err.Error(), apikeys.ErrInvalid.Error()+": ")
}

func keyEntry(r apikeys.Record) keyRow {
	row := keyRow{ID: r.ID, Name: r.Name, Functions: r.Functions, Rate: apikeys.FormatRate(r.Rate),
		Operator: r.Operator, Created: r.Created.UTC().Format(time.RFC3339)}
	if r.IsRevoked() {
		row.Revoked = r.Revoked.UTC().Format(time.RFC3339)
	}
	return row
}

// withKeys connects for one keys command.
func withKeys(ctx context.Context, f *factory, run func(context.Context, *nats.Conn, jetstream.JetStream) error) error {
	nc, err := f.connect("keys")
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

func newKeysCreateCmd(f *factory) *cobra.Command {
	var functions, rate string
	var asJSON, operator bool
	cmd := &cobra.Command{
		Use:   "create <name> --functions a,b|'*' | --operator",
		Short: "Create an API key for some functions; the key is printed once",
		Long: `Create an API key named <name> that may call the functions in --functions
('*' for every function that is not internal), at most --rate requests
(<n>/s, <n>/m or <n>/h; default: the gateway's, 50/s). The key goes to
stdout, once: it is not stored, only its hash is. Keep it like a password.

An --operator key grants every function and also the gateway's /ops routes:
instances, live logs, dead letters and their replay, as the web console
shows them. Give it to the people who run the platform, not to callers.`,
		Example: `  KEY=$(yard keys create shop --functions orders)
  curl -H "Authorization: Bearer $KEY" -d '{…}' http://127.0.0.1:8080/fn/orders
  yard keys create admin --functions '*' --rate 200/s --json
  yard keys create ops --operator`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := apikeys.ValidateName(name); err != nil {
				return usageError("%s", invalidText(err))
			}
			var fns []string
			for _, s := range strings.Split(functions, ",") {
				if s = strings.TrimSpace(s); s != "" {
					fns = append(fns, s)
				}
			}
			if operator {
				if len(fns) > 0 && !slices.Equal(fns, []string{apikeys.AllFunctions}) {
					return usageError("--operator keys grant every function: leave --functions out, or give '*'")
				}
				fns = []string{apikeys.AllFunctions}
			}
			if len(fns) == 0 {
				return usageError("--functions: name the functions the key may call (a,b), or '*' for all")
			}
			if err := apikeys.ValidateFunctions(fns); err != nil {
				return usageError("--functions: %s", invalidText(err))
			}
			if _, _, err := apikeys.ParseRate(rate); err != nil {
				return usageError("--rate: %s", invalidText(err))
			}
			return withKeys(cmd.Context(), f, func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
				var opts []apikeys.Option
				if operator {
					opts = append(opts, apikeys.AsOperator())
				}
				key, rec, err := apikeys.Create(ctx, js, name, fns, rate, opts...)
				newAuditLog(f, nc, js).record(ctx, audit.KindKey, "create API key", name, rec.ID, err)
				if err != nil {
					return err
				}
				if asJSON {
					row := keyEntry(rec)
					row.Key = key
					return writeJSONOut(f, row)
				}
				fmt.Fprintln(f.io.Out, key)
				what := strings.Join(rec.Functions, ", ")
				if rec.Operator {
					what = "every function and the /ops routes (operator)"
				}
				fmt.Fprintf(f.io.ErrOut, "API key %s (id %s) for %s; it is shown only this once\n", name, rec.ID, what)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&functions, "functions", "", "functions the key may call, comma-separated, or '*' (required)")
	cmd.Flags().StringVar(&rate, "rate", "", "rate limit of the key: <n>/s, <n>/m or <n>/h (default: the gateway's)")
	cmd.Flags().BoolVar(&operator, "operator", false, "an operator key: every function, and the /ops routes (instances, logs, dead letters)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"id","name","key","functions","rate","operator","created"}`)
	return cmd
}

func newKeysLsCmd(f *factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the API keys (never the keys themselves), revoked ones included",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withKeys(cmd.Context(), f, func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
				recs, err := apikeys.List(ctx, js)
				if err != nil {
					return err
				}
				rows := make([]keyRow, 0, len(recs))
				for _, r := range recs {
					rows = append(rows, keyEntry(r))
				}
				if asJSON {
					return writeJSONOut(f, rows)
				}
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tFUNCTIONS\tRATE\tCREATED\tREVOKED")
				for _, r := range rows {
					fns := strings.Join(r.Functions, ",")
					if r.Operator {
						fns += " (operator)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, fns, dash(r.Rate), r.Created, dash(r.Revoked))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newKeysRevokeCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <id|name>",
		Short: "Revoke an API key: every gateway refuses it within seconds",
		Long: `Revoke the API key with this id, or the one unrevoked key with this name
(several keys sharing a name are revoked by id). The key stays listed, with
the time it was revoked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withKeys(cmd.Context(), f, func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
				rec, err := apikeys.Revoke(ctx, js, args[0])
				newAuditLog(f, nc, js).record(ctx, audit.KindKey, "revoke API key", args[0], rec.ID, err)
				if err != nil {
					return err
				}
				fmt.Fprintf(f.io.ErrOut, "API key %s (id %s) revoked at %s\n", rec.Name, rec.ID, rec.Revoked.UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
}
