package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// session is what a command that works on the registry holds: the
// connection, its JetStream context, and the registry on it.
type session struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *registry.Registry
}

// withRegistry connects and opens the registry for one command.
func withRegistry(ctx context.Context, f *factory, name string, run func(context.Context, *session) error) error {
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
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return err
	}
	return run(ctx, &session{nc: nc, js: js, reg: reg})
}

func nameArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError("%s takes one function name (got %d arguments)", cmd.CommandPath(), len(args))
	}
	if err := wire.ValidateName(args[0]); err != nil {
		return usageError("%v", err)
	}
	return nil
}

func notFound(err error, name string) error {
	if errors.Is(err, registry.ErrNotFound) {
		return &exitError{code: ExitError, err: fmt.Errorf("function %q not found (see `yard ls`)", name)}
	}
	return err
}

// instanceInfo is one running instance as micro discovery reports it.
type instanceInfo struct {
	ID string `json:"id"`
	// Name is the agent's name for it (as ps, yard up and yard logs show
	// it); empty for an instance no agent started.
	Name    string `json:"name,omitempty"`
	Version string `json:"version"`
}

// instancesOf asks every instance of a function for its identity.
func instancesOf(nc *nats.Conn, name string, wait time.Duration) []instanceInfo {
	pings, _ := fleet.Ping(nc, name, wait)
	out := make([]instanceInfo, len(pings))
	for i, p := range pings {
		out[i] = instanceInfo{ID: p.ID, Name: p.Metadata[wire.MetaInstance], Version: p.Version}
	}
	return out
}

func newDescribeCmd(f *factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "describe <name>",
		Short: "Show a function: live spec, schemas, versions, instances, schedules and circuit breakers",
		Long: `Show a function: its live spec and schemas, its versions, the instances
that answer now, its schedules, and the circuit breaker each instance keeps
for every function it calls (closed, open or half-open; read from micro
STATS, as 'nats micro stats <name>' shows them).`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), f, "describe", func(ctx context.Context, s *session) error {
				live, err := s.reg.Get(ctx, args[0])
				if err != nil {
					return notFound(err, args[0])
				}
				versions, err := s.reg.Versions(ctx, args[0])
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					return err
				}
				insts := instancesOf(s.nc, args[0], 300*time.Millisecond)
				breakers := breakerStates(s.nc, args[0])
				// Env values and secrets are never shown: names only.
				envNames := slices.Sorted(maps.Keys(live.Env))
				// Not being allowed to read yard_secrets is no reason to
				// show nothing: the rest is shown, the gap said.
				secretNames, serr := secrets.Names(ctx, s.js, args[0])
				if serr != nil {
					fmt.Fprintf(f.io.ErrOut, "yard: warning: cannot list the secrets of %s: %v\n", args[0], serr)
				}
				if asJSON {
					shown := make([]*registry.Spec, len(versions))
					for i, v := range versions {
						shown[i] = withoutEnvValues(v)
					}
					out := map[string]any{"spec": withoutEnvValues(live), "versions": shown, "instances": insts, "breakers": breakers,
						"env": append([]string{}, envNames...)}
					if serr == nil {
						out["secrets"] = append([]string{}, secretNames...)
					}
					return writeJSONOut(f, out)
				}
				out := f.io.Out
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "name\t%s\n", live.Name)
				if live.Description != "" {
					fmt.Fprintf(tw, "description\t%s\n", live.Description)
				}
				if live.Version > 0 {
					fmt.Fprintf(tw, "live version\tv%d (deployed %s)\n", live.Version, live.DeployedAt.Format(time.RFC3339))
				} else {
					fmt.Fprintf(tw, "live version\tnot deployed (registered by a running instance)\n")
				}
				fmt.Fprintf(tw, "timeout\t%s\n", live.Timeout.D())
				fmt.Fprintf(tw, "instances\tmin %d, max %d, concurrency %d each\n", live.MinInstances, live.MaxInstances, live.Concurrency)
				if live.Artifact != nil {
					fmt.Fprintf(tw, "artifact\t%s (%.1f MB)\n", live.Artifact.Digest, float64(live.Artifact.Size)/1e6)
				}
				// What it declares it uses: the rights it gets.
				for _, d := range []struct {
					label string
					items []string
				}{{"calls", live.Calls}, {"publishes", live.Publishes}, {"consumes", live.Events}, {"buckets", live.Buckets}} {
					if len(d.items) > 0 {
						fmt.Fprintf(tw, "%s\t%s\n", d.label, strings.Join(d.items, ", "))
					}
				}
				for _, st := range live.Streams {
					fmt.Fprintf(tw, "stream\t%s (%s)\n", st.Name, strings.Join(st.Subjects, ", "))
				}
				if len(envNames) > 0 {
					fmt.Fprintf(tw, "env\t%s\n", strings.Join(envNames, ", "))
				}
				if len(secretNames) > 0 {
					fmt.Fprintf(tw, "secrets\t%s\n", strings.Join(secretNames, ", "))
				}
				_ = tw.Flush()
				fmt.Fprintf(out, "\ninput schema:\n%s\n\noutput schema:\n%s\n", indent(live.InputSchema), indent(live.OutputSchema))
				if len(versions) > 0 {
					fmt.Fprintln(out, "\nversions:")
					tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
					for _, v := range versions {
						mark := ""
						if v.Version == live.Version {
							mark = "live"
						}
						fmt.Fprintf(tw, "  v%d\t%s\t%s\t%s\n", v.Version, v.DeployedAt.Format(time.RFC3339), short(v.Artifact), mark)
					}
					_ = tw.Flush()
				}
				fmt.Fprintf(out, "\nrunning instances: %d\n", len(insts))
				for _, in := range insts {
					fmt.Fprintf(out, "  %s  %s\n", cmp.Or(in.Name, in.ID), in.Version)
				}
				if len(live.Schedules) > 0 {
					fmt.Fprintln(out, "\nschedules (UTC):")
					for _, sc := range live.Schedules {
						fmt.Fprintf(out, "  %s  input %s\n", sc.Cron, sc.Input)
					}
				}
				if len(breakers) > 0 {
					fmt.Fprintln(out, "\ncircuit breakers (calls to other functions):")
					tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
					for _, b := range breakers {
						fmt.Fprintf(tw, "  %s\t%s\t(instance %s)\n", b.Target, b.State, b.Instance)
					}
					_ = tw.Flush()
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print spec, versions, instances and circuit breakers as JSON")
	return cmd
}

// withoutEnvValues is a copy of spec to show: its env, which may hold
// values people should not have put there, left out.
func withoutEnvValues(spec *registry.Spec) *registry.Spec {
	c := *spec
	c.Env = nil
	return &c
}

// breakerState is one instance's circuit for its calls to one function.
type breakerState struct {
	Target   string `json:"target"`
	State    string `json:"state"` // closed, open, half-open
	Instance string `json:"instance"`
}

// breakerStates reads the circuits of every instance's calls to other
// functions from micro STATS.
func breakerStates(nc *nats.Conn, name string) []breakerState {
	stats, _ := fleet.Stats(nc, name, 300*time.Millisecond)
	var out []breakerState
	for _, st := range stats {
		for _, ep := range st.Endpoints {
			var data struct {
				Breakers map[string]string `json:"breakers"`
			}
			if ep.Name != "invoke" || json.Unmarshal(ep.Data, &data) != nil {
				continue
			}
			for _, target := range slices.Sorted(maps.Keys(data.Breakers)) {
				out = append(out, breakerState{Target: target, State: data.Breakers[target], Instance: cmp.Or(st.Metadata[wire.MetaInstance], st.ID)})
			}
		}
	}
	return out
}

func short(a *registry.Artifact) string {
	if a == nil || len(a.Digest) < 19 {
		return ""
	}
	return a.Digest[:19]
}

func indent(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "  ", "  ")
	return "  " + string(b)
}

func newRollbackCmd(f *factory) *cobra.Command {
	var to int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback <name> [--to N]",
		Short: "Make an earlier version live again",
		Long: `Make an earlier deployed version live again: by default the one before
the live version, or --to N. Agents roll over to it as for a deploy.`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return usageError("--to must be a version number")
			}
			return withRegistry(cmd.Context(), f, "rollback", func(ctx context.Context, s *session) error {
				spec, err := s.reg.Rollback(ctx, args[0], to)
				if err != nil {
					err = notFound(err, args[0])
				}
				newAuditLog(f, s.nc, s.js).record(ctx, audit.KindRollback, "rollback", args[0], versionDetail(spec), err)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(f, spec)
				}
				fmt.Fprintf(f.io.ErrOut, "%s: v%d is live again\n", spec.Name, spec.Version)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "version to make live (default: the one before the live one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the live spec as JSON")
	return cmd
}

func newRmCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm <name>",
		Short: "Remove a function: agents drain its instances",
		Long: `Remove a function's live spec. Agents drain and stop its instances; the
gateway answers 404 for it; its schedules stop. Its versions stay in
yard_versions, so a later deploy continues the numbering and 'yard rollback'
can bring one back. Queued async work stays queued for that.`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd.Context(), f, "rm", func(ctx context.Context, s *session) error {
				// The agents see the spec go: they drain its instances
				// and stop its schedules.
				err := s.reg.Remove(ctx, args[0])
				if errors.Is(err, registry.ErrNotFound) {
					err = notFound(err, args[0])
				}
				newAuditLog(f, s.nc, s.js).record(ctx, audit.KindRemove, "remove", args[0], "", err)
				if err != nil {
					return err
				}
				fmt.Fprintf(f.io.ErrOut, "removed %s\n", args[0])
				return nil
			})
		},
	}
	return cmd
}

// logEntry is a log line in yard logs --json.
type logEntry struct {
	Instance string    `json:"instance"`
	Time     time.Time `json:"time,omitzero"`
	Line     string    `json:"line"`
}

func newLogsCmd(f *factory) *cobra.Command {
	var follow, asJSON bool
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "logs <name> [-f]",
		Short: "Print a function's log lines (from yard.logs.<name>.*)",
		Long: `Print the log lines of a function's instances kept in the stream
YARD_LOGS (the last 24 hours at most), then with -f keep printing new ones.
Each line starts with the instance id.`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if follow {
				var stop context.CancelFunc
				ctx, stop = signalContext(ctx)
				defer stop()
			}
			nc, err := f.connect("logs")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			stream, err := js.Stream(ctx, wire.StreamLogs)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return &exitError{code: ExitError, err: errors.New("no logs yet: they are kept once an agent (yard agent, yard up) runs functions")}
			}
			if err != nil {
				return err
			}
			// Every instance of this function, and of no other.
			prefix := wire.LogsPrefix + args[0] + "."
			occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + "*"}, DeliverPolicy: jetstream.DeliverAllPolicy}
			if since > 0 {
				occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
				t := time.Now().Add(-since)
				occ.OptStartTime = &t
			}
			cons, err := stream.OrderedConsumer(ctx, occ)
			if err != nil {
				return err
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return err
			}
			pending := info.NumPending
			for follow || pending > 0 {
				msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
				if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrTimeout) {
					if ctx.Err() != nil {
						return nil
					}
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				meta, _ := msg.Metadata()
				instance := strings.TrimPrefix(msg.Subject(), prefix)
				if asJSON {
					entry := logEntry{Instance: instance, Line: strings.TrimSuffix(string(msg.Data()), "\n")}
					if meta != nil {
						entry.Time = meta.Timestamp.UTC()
					}
					_ = json.NewEncoder(f.io.Out).Encode(entry)
				} else {
					fmt.Fprintf(f.io.Out, "%s | %s", instance, msg.Data())
				}
				if meta != nil {
					pending = meta.NumPending
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until Ctrl-C")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line: instance, time, line")
	cmd.Flags().DurationVar(&since, "since", 0, "only lines newer than this, e.g. 10m")
	return cmd
}
