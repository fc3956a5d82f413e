package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

type lsOptions struct {
	f    *factory
	json bool
	wait time.Duration
}

// lsEntry is one row of `yard ls`, and its --json form.
type lsEntry struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Version     int    `json:"version,omitempty"`
	Instances   int    `json:"instances"`
	State       string `json:"state"` // running, scaled to zero, down
	Timeout     string `json:"timeout"`
	Concurrency int    `json:"concurrency,omitempty"`
	SchemaHash  string `json:"schema_hash"`
	UpdatedAt   string `json:"updated_at"`
	// Schedules are the function's active timers, soonest first; NextRun is
	// the soonest tick.
	Schedules []lsSchedule `json:"schedules,omitempty"`
	NextRun   string       `json:"next_run,omitempty"`
}

type lsSchedule struct {
	Cron    string          `json:"cron"`
	Input   json.RawMessage `json:"input,omitempty"`
	NextRun string          `json:"next_run,omitempty"`
}

func newLsCmd(f *factory, run func(context.Context, *lsOptions) error) *cobra.Command {
	o := &lsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List functions and their running instances",
		Long: `List every function the registry knows: its live version ("-" when it
was not deployed but registered by a running instance), how many instances
answer right now (counted by a micro PING on $SRV.PING), when its next
scheduled run is due (schedules fire from nats-server's scheduler, in UTC),
its timeout and description. 'yard describe <name>' shows versions and
instances.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if run != nil {
				return run(cmd.Context(), o)
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print a JSON array")
	cmd.Flags().DurationVar(&o.wait, "wait", 300*time.Millisecond, "how long to collect instance answers")
	return cmd
}

func (o *lsOptions) run(ctx context.Context) error {
	return withRegistry(ctx, o.f, "ls", o.list)
}

func (o *lsOptions) list(ctx context.Context, s *session) error {
	specs, err := s.reg.List(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(specs))
	for _, spec := range specs {
		names = append(names, spec.Name)
	}
	counts := countInstances(s.nc, names, o.wait)
	entries := make([]lsEntry, 0, len(specs))
	for _, spec := range specs {
		e := lsEntry{
			Name: spec.Name, Description: spec.Description, Version: spec.Version,
			Instances: counts[spec.Name], State: spec.RunState(counts[spec.Name]), Timeout: spec.Timeout.D().String(), Concurrency: spec.Concurrency,
			SchemaHash: spec.SchemaHash, UpdatedAt: spec.UpdatedAt.Format(time.RFC3339),
		}
		// Read-only: listing must never create or change a stream.
		active, err := invocation.ListSchedules(ctx, s.js, spec.Name)
		if err != nil {
			return err
		}
		for _, a := range active {
			ls := lsSchedule{Cron: a.Pattern, Input: a.Input}
			if !a.Next.IsZero() {
				ls.NextRun = a.Next.Format(time.RFC3339)
			}
			e.Schedules = append(e.Schedules, ls)
		}
		if len(e.Schedules) > 0 {
			e.NextRun = e.Schedules[0].NextRun
		}
		entries = append(entries, e)
	}
	if o.json {
		return writeJSONOut(o.f, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintln(o.f.io.ErrOut, "no functions yet: start some with `yard up`")
		return nil
	}
	tw := tabwriter.NewWriter(o.f.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tINSTANCES\tSTATE\tNEXT RUN\tTIMEOUT\tDESCRIPTION")
	for _, e := range entries {
		version := "-" // registered by a running instance, not deployed
		if e.Version > 0 {
			version = fmt.Sprintf("v%d", e.Version)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Name, version, e.Instances, e.State, nextRun(e.NextRun, time.Now()), e.Timeout, e.Description)
	}
	return tw.Flush()
}

// nextRun shows when a schedule fires: "-" for none, else the time in UTC
// and how far off it is ("12:05:00Z (in 42s)").
func nextRun(at string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return "-"
	}
	layout := "15:04:05Z"
	if t.Sub(now) >= 24*time.Hour {
		layout = "2006-01-02 15:04Z"
	}
	in := max(t.Sub(now).Round(time.Second), 0)
	return fmt.Sprintf("%s (in %s)", t.UTC().Format(layout), in)
}

// countInstances counts the instances of each named function that answer
// a PING on their own subject (see fleet.PingEach: a broadcast would let
// one function answer as another).
func countInstances(nc *nats.Conn, names []string, wait time.Duration) map[string]int {
	return fleet.PingEach(nc, names, wait)
}
