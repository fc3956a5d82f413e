package cli

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// auditLog writes the audit events of one command. Who is asked of the
// server once, on the first event.
type auditLog struct {
	f   *factory
	nc  *nats.Conn
	js  jetstream.JetStream
	who string
}

func newAuditLog(f *factory, nc *nats.Conn, js jetstream.JetStream) *auditLog {
	return &auditLog{f: f, nc: nc, js: js}
}

// record stores what a command did and how it ended (err nil: ok). A
// failure to record is a warning: the action has happened (or failed)
// already, and saying so matters more than the missing event.
func (a *auditLog) record(ctx context.Context, kind, action, target, detail string, err error) {
	if a.who == "" {
		a.who = audit.ConnUser(a.nc)
	}
	// The command's own deadline may be what failed it; the event still
	// gets a few seconds of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ev := audit.Event{Who: a.who, Action: action, Target: target, Outcome: audit.Outcome(err), Detail: detail}
	if rerr := audit.Record(ctx, a.js, kind, ev); rerr != nil {
		fmt.Fprintf(a.f.io.ErrOut, "yard: warning: not in the audit log: %v\n", rerr)
	}
}

// versionDetail says which version a deploy or rollback made live.
func versionDetail(spec *registry.Spec) string {
	if spec == nil {
		return ""
	}
	if d := short(spec.Artifact); d != "" {
		return fmt.Sprintf("v%d %s", spec.Version, d)
	}
	return fmt.Sprintf("v%d", spec.Version)
}

func newAuditCmd(f *factory) *cobra.Command {
	var since time.Duration
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: who deployed, rolled back, removed, set secrets …",
		Long: `Show the audit log kept in the stream YARD_AUDIT (90 days): deploys,
rollbacks, removals, secret changes, key and credential changes, and
requests the gateway refused, each with its time, who did it (the NATS user
yard connected as; "admin" on a server without users), the action, its
target and its outcome ("ok" or the error). Oldest first, newest last; with
more than --limit events since --since, the newest --limit.`,
		Example: `  yard audit
  yard audit --since 168h --limit 1000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usageError("--since must be a duration such as 24h (0: everything kept)")
			}
			if limit < 1 || limit > audit.MaxList {
				return usageError("--limit must be between 1 and %d", audit.MaxList)
			}
			return withJetStream(cmd.Context(), f, "audit", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
				var from time.Time
				if since > 0 {
					from = time.Now().Add(-since)
				}
				events, err := audit.List(ctx, js, from, limit)
				if err != nil {
					return err
				}
				if asJSON {
					if events == nil {
						events = []audit.Event{}
					}
					return writeJSONOut(f, events)
				}
				if len(events) == 0 {
					fmt.Fprintln(f.io.ErrOut, "no audit events in that time")
					return nil
				}
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tOUTCOME\tDETAIL")
				for _, e := range events {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), cell(e.Who, 40), cell(e.Action, 30),
						cmp.Or(cell(e.Target, 40), "-"), cell(e.Outcome, 60), cell(e.Detail, 40))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "only events newer than this, e.g. 1h (0: everything kept)")
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most the newest this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// cell fits a field into one table cell: one line, at most n runes. The
// fields come from whoever could publish on yard.audit.>, so control
// characters are shown, not obeyed.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
