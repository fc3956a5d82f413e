package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/trust"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func newCredsCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "creds",
		Short: "Create, list and revoke NATS credentials for callers",
		Long: `A caller credential (.creds file) lets its holder invoke exactly the named
functions over plain NATS, queue async work for them, and read the replies
sent to an inbox of its own (_INBOX_c.<name>): it cannot read anyone else's
replies, subscribe to function subjects or touch the platform's state.
Internal functions cannot be granted. These commands need the admin's
credential (yard up writes .yard/admin.creds).`,
	}
	cmd.AddCommand(newCredsCreateCmd(f), newCredsLsCmd(f), newCredsRevokeCmd(f))
	return cmd
}

func newCredsCreateCmd(f *factory) *cobra.Command {
	var functions, ttl, out, ctxName string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create <name> --functions a,b",
		Short: "Create a caller credential for some functions",
		Long: `Create a caller credential for the named functions, valid for --ttl
(default 720h, at most 8784h), and write it to -o (default ./<name>.creds,
mode 0600; '-' prints it). --context also writes a nats CLI context with the
server, the credential and the inbox prefix, so that

  nats --context <ctx> req fn.greet '{"name":"Ada"}'

just works.`,
		Example: `  yard creds create billing --functions orders,catalog --ttl 24h
  yard creds create billing --functions orders --context billing`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := wire.ValidateName(name); err != nil {
				return usageError("name %q: %v", name, err)
			}
			var fns []string
			for _, s := range strings.Split(functions, ",") {
				if s = strings.TrimSpace(s); s != "" {
					if err := wire.ValidateName(s); err != nil {
						return usageError("--functions: %q: %v", s, err)
					}
					fns = append(fns, s)
				}
			}
			if len(fns) == 0 {
				return usageError("--functions: name at least one function (a,b)")
			}
			if ttl != "" {
				if d, err := time.ParseDuration(ttl); err != nil || d <= 0 || d > trust.MaxCallerTTL {
					return usageError("--ttl %q: want a positive duration up to %s, such as 24h", ttl, trust.MaxCallerTTL)
				}
			}
			if out == "" {
				out = name + ".creds"
			}
			if ctxName != "" {
				if err := validContextName(ctxName); err != nil {
					return usageError("--context %q: %v", ctxName, err)
				}
			}
			nc, err := f.connect("creds")
			if err != nil {
				return err
			}
			defer nc.Close()
			req, _ := json.Marshal(trust.CredsRequest{Name: name, Functions: fns, TTL: ttl})
			msg, err := nc.Request(roles.TrustCreds, req, 10*time.Second)
			if err != nil {
				return denied(err, "create credentials")
			}
			var reply trust.CredsReply
			if err := json.Unmarshal(msg.Data, &reply); err != nil {
				return fmt.Errorf("creds: bad answer: %w", err)
			}
			if reply.Error != "" {
				return fmt.Errorf("creds: %s", reply.Error)
			}
			if out == "-" {
				fmt.Fprint(f.io.Out, reply.Creds)
			} else if err := writeSecretFile(out, []byte(reply.Creds)); err != nil {
				return err
			}
			if ctxName != "" {
				path, err := writeNATSContext(f, ctxName, out, reply.InboxPrefix)
				if err != nil {
					return err
				}
				fmt.Fprintf(f.io.ErrOut, "nats context %s written to %s\n", ctxName, path)
			}
			if asJSON {
				return writeJSONOut(f, credsEntry(reply.Record, out))
			}
			if out != "-" {
				fmt.Fprintf(f.io.ErrOut, "credential %s for %s written to %s (user %s, expires %s)\n",
					name, strings.Join(reply.Functions, ", "), out, reply.User, reply.Expires.Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&functions, "functions", "", "functions the holder may call, comma-separated (required)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "how long the credential is valid (default 720h)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default ./<name>.creds; - for stdout)")
	cmd.Flags().StringVar(&ctxName, "context", "", "also write a nats CLI context of this name (here --context names the context written: connect through one with $NATS_CONTEXT)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was created as JSON (never the credential)")
	return cmd
}

// denied explains a refused request: a permission violation means the
// credential in use is not the admin's.
func denied(err error, what string) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("cannot %s: no trust service answers (is this a Switchyard server: yard up or yard server?)", what)
	}
	if errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot %s: %w (this needs the admin's credential: --creds .yard/admin.creds)", what, err)
	}
	return err
}

// writeSecretFile writes a credential readable by its owner only, never
// following a link or replacing a file of someone else's.
func writeSecretFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".creds-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeNATSContext writes a caller's nats CLI context (saveNATSContext):
// the server and CA in use, the credential and its inbox prefix.
func writeNATSContext(f *factory, name, credsPath, inbox string) (string, error) {
	return f.saveNATSContext(name, natsContextFile{Description: "Switchyard caller " + name, URL: f.natsURL(),
		Creds: credsPath, CA: f.caFile(), InboxPrefix: inbox})
}

type credsRow struct {
	User      string   `json:"user"`
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Functions []string `json:"functions,omitempty"`
	Created   string   `json:"created"`
	Expires   string   `json:"expires,omitempty"`
	Revoked   string   `json:"revoked,omitempty"`
	File      string   `json:"file,omitempty"`
}

func credsEntry(r trust.Record, file string) credsRow {
	row := credsRow{User: r.User, Name: r.Name, Role: r.Role, Functions: r.Functions, Created: r.Created.Format(time.RFC3339), File: file}
	if !r.Expires.IsZero() {
		row.Expires = r.Expires.Format(time.RFC3339)
	}
	if !r.Revoked.IsZero() {
		row.Revoked = r.Revoked.Format(time.RFC3339)
	}
	return row
}

// credsRecords reads yard_creds.
func credsRecords(ctx context.Context, nc *nats.Conn) (jetstream.KeyValue, []trust.Record, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, wire.BucketCreds)
	if err != nil {
		return nil, nil, denied(err, "read "+wire.BucketCreds)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, nil, denied(err, "list "+wire.BucketCreds)
	}
	var recs []trust.Record
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var r trust.Record
		if json.Unmarshal(e.Value(), &r) == nil {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b trust.Record) int { return a.Created.Compare(b.Created) })
	return kv, recs, nil
}

func newCredsLsCmd(f *factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the caller credentials created, with their expiry and revocation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := f.connect("creds")
			if err != nil {
				return err
			}
			defer nc.Close()
			_, recs, err := credsRecords(cmd.Context(), nc)
			if err != nil {
				return err
			}
			rows := make([]credsRow, 0, len(recs))
			for _, r := range recs {
				rows = append(rows, credsEntry(r, ""))
			}
			if asJSON {
				return writeJSONOut(f, rows)
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFUNCTIONS\tCREATED\tEXPIRES\tREVOKED\tUSER")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, strings.Join(r.Functions, ","), r.Created, dash(r.Expires), dash(r.Revoked), r.User)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCredsRevokeCmd(f *factory) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <name|user>",
		Short: "Revoke caller credentials: refused from now on, live connections closed",
		Long: `Revoke every credential created under <name>, or the one whose user public
key is given. The server refuses them from now on and closes the
connections that use them, within a second.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := f.connect("creds")
			if err != nil {
				return err
			}
			defer nc.Close()
			kv, recs, err := credsRecords(cmd.Context(), nc)
			if err != nil {
				return err
			}
			n := 0
			now := time.Now().UTC()
			for _, r := range recs {
				if (r.Name != args[0] && r.User != args[0]) || !r.Revoked.IsZero() {
					continue
				}
				r.Revoked = now
				b, _ := json.Marshal(r)
				if _, err := kv.Put(cmd.Context(), r.User, b); err != nil {
					return denied(err, "revoke "+r.User)
				}
				js, _ := jetstream.New(nc)
				if err := audit.Record(cmd.Context(), js, audit.KindCreds, audit.Event{Who: audit.ConnUser(nc),
					Action: "revoke caller credential", Target: r.Name, Outcome: audit.OutcomeOK, Detail: r.User}); err != nil {
					fmt.Fprintf(f.io.ErrOut, "warning: not in the audit log: %v\n", err)
				}
				n++
				fmt.Fprintf(f.io.ErrOut, "revoked %s (user %s)\n", r.Name, r.User)
			}
			if n == 0 {
				return fmt.Errorf("no live credential named %q or with that user key (see yard creds ls)", args[0])
			}
			return nil
		},
	}
}
