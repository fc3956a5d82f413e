package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// yard events: the event streams functions declare, what is in them, and
// moving a function's subscriptions back (replay).

// platformStreamPrefixes start the names of the platform's own streams
// (and of key-value buckets and object stores), which are no event
// streams: the same prefixes registry.ValidateDeclarations refuses to a
// function's stream.
var platformStreamPrefixes = []string{"YARD_", "KV_", "OBJ_"}

func isEventStream(name string) bool {
	return !slices.ContainsFunc(platformStreamPrefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// eventStreamEntry is one row of `yard events ls`, and its --json form.
type eventStreamEntry struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	Kind     string   `json:"kind"` // entity or events
	Messages uint64   `json:"messages"`
	Bytes    uint64   `json:"bytes"`
	// FirstEvent and LastEvent are null while the stream is empty.
	FirstEvent *time.Time `json:"first_event"`
	LastEvent  *time.Time `json:"last_event"`
	// MaxAge is the stream's MaxAge as a Go duration ("0s": kept until
	// removed); Retention says the same for people ("7d", "forever").
	MaxAge    string `json:"max_age"`
	Retention string `json:"retention"`
	Replicas  int    `json:"replicas"`
	Consumers int    `json:"consumers"`
}

// eventLine is one event of `yard events tail --json`.
type eventLine struct {
	Stream  string    `json:"stream"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	Type    string    `json:"type"` // the Yard-Event-Type header; "" when none
	// Data is the event's JSON; data that is not JSON is given as a JSON
	// string.
	Data json.RawMessage `json:"data"`
}

func newEventsCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List event streams, tail events, replay a function's subscriptions",
		Long: `Functions publish events to JetStream streams they declare (fn.Config.Streams;
entity streams are event-sourced, one subject per entity) and handle them
with fn.On, each subscription through a durable consumer of its own.
'yard events ls' lists the streams, 'yard events tail' prints events as they
come, and 'yard events replay' moves a function's subscriptions back so its
handlers see events again.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newEventsLsCmd(f), newEventsTailCmd(f), newEventsReplayCmd(f))
	return cmd
}

func newEventsLsCmd(f *factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the event streams",
		Long: `List every event stream: each stream but the platform's own (YARD_*) and
those behind key-value buckets (KV_*) and object stores (OBJ_*). KIND is
entity for an event-sourced stream, else events; FIRST and LAST are the
times of the oldest and newest event kept; RETENTION how long events are
kept (forever: until removed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJetStream(cmd.Context(), f, "events", func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
				entries, err := eventStreams(ctx, js)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(f, entries)
				}
				if len(entries) == 0 {
					fmt.Fprintln(f.io.ErrOut, "no event streams yet: functions declare them (fn.Config.Streams) and the platform creates them when it runs the function")
					return nil
				}
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSUBJECTS\tKIND\tMESSAGES\tBYTES\tFIRST\tLAST\tRETENTION\tREPLICAS\tCONSUMERS")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\n", e.Name, cell(strings.Join(e.Subjects, ","), 40), e.Kind,
						e.Messages, humanSize(e.Bytes), eventTime(e.FirstEvent), eventTime(e.LastEvent), e.Retention, e.Replicas, e.Consumers)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// eventStreams lists the event streams by name; read-only.
func eventStreams(ctx context.Context, js jetstream.JetStream) ([]eventStreamEntry, error) {
	entries := []eventStreamEntry{}
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		if !isEventStream(info.Config.Name) {
			continue
		}
		e := eventStreamEntry{
			Name: info.Config.Name, Subjects: info.Config.Subjects, Kind: "events",
			Messages: info.State.Msgs, Bytes: info.State.Bytes,
			MaxAge: info.Config.MaxAge.String(), Retention: retention(info.Config.MaxAge),
			Replicas: max(info.Config.Replicas, 1), Consumers: info.State.Consumers,
		}
		if e.Subjects == nil {
			e.Subjects = []string{}
		}
		if info.Config.Metadata[provision.MetaEntity] == "true" {
			e.Kind = "entity"
		}
		if info.State.Msgs > 0 {
			first, last := info.State.FirstTime.UTC(), info.State.LastTime.UTC()
			e.FirstEvent, e.LastEvent = &first, &last
		}
		entries = append(entries, e)
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b eventStreamEntry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// retention says how long a stream keeps events: "forever" for no MaxAge,
// whole days as "7d", else the duration.
func retention(d time.Duration) string {
	switch {
	case d <= 0:
		return "forever"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func eventTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// humanSize shows a byte count in B, KiB, MiB, GiB or TiB.
func humanSize(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return "" // unreachable
}

func newEventsTailCmd(f *factory) *cobra.Command {
	var from string
	var count int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tail <subject>",
		Short: "Print the events on a subject as they come",
		Long: `Print the events published on a subject (wildcards allowed: orders.>,
accounts.*.opened) of the stream that holds it, through an ordered consumer
of the command's own that nothing else sees. Each line has the event's
stream sequence, time, subject, type (its Yard-Event-Type header, "-" when
none) and JSON data; --json prints one JSON object a line instead.

--from says where to begin: new (the default: events published from now
on), start (every event the stream keeps, then new ones), a stream sequence
or an RFC 3339 time. It runs until -n events are printed, or until Ctrl-C.`,
		Example: `  yard events tail 'orders.>'
  yard events tail 'accounts.>' --from start -n 20
  yard events tail orders.placed --from 2024-05-01T00:00:00Z --json`,
		Args: exactArgs(1, "a subject"),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			start, err := registry.ParseEventStart(from)
			if err != nil {
				return usageError("--from: %v", err)
			}
			if count < 0 {
				return usageError("-n must be 0 (no limit) or more")
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("events")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			return tailEvents(ctx, f, js, subject, start, count, asJSON)
		},
	}
	cmd.Flags().StringVar(&from, "from", "new", "where to begin: new, start, a stream sequence or an RFC 3339 time")
	cmd.Flags().IntVarP(&count, "count", "n", 0, "stop after this many events (0: until Ctrl-C)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line: stream, seq, time, subject, type, data")
	return cmd
}

// tailEvents prints the events on subject from start until count events
// (0: no limit) are printed or ctx ends; an ended ctx is no error.
func tailEvents(ctx context.Context, f *factory, js jetstream.JetStream, subject string, start registry.EventStart, count int, asJSON bool) error {
	// The client's own check lets empty tokens through (orders..x), which
	// then fail as "no responders".
	if !validTailSubject(subject) {
		return usageError("%q is not a subject: dot-separated tokens, * for one token and > for the rest", subject)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := js.StreamNameBySubject(sctx, subject)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return &exitError{code: ExitError, err: fmt.Errorf("no stream holds the subject %s (see `yard events ls`)", subject)}
	}
	if err != nil {
		return fmt.Errorf("find the stream of %s: %w", subject, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	occ.DeliverPolicy, occ.OptStartSeq, occ.OptStartTime = start.Deliver()
	cons, err := js.OrderedConsumer(sctx, stream, occ)
	if err != nil {
		return fmt.Errorf("tail %s on stream %s: %w", subject, stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("tail %s on stream %s: %w", subject, stream, err)
	}
	defer it.Stop()
	// Ctrl-C (or the caller's context) ends the wait for the next event.
	stopOnDone := context.AfterFunc(ctx, it.Stop)
	defer stopOnDone()
	fmt.Fprintf(f.io.ErrOut, "tailing %s on stream %s from %s (Ctrl-C to stop)\n", subject, stream, start)
	enc := json.NewEncoder(f.io.Out)
	for n := 0; count == 0 || n < count; n++ {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("tail %s: %w", subject, err)
		}
		line := eventLine{Stream: stream, Subject: msg.Subject(), Type: msg.Headers().Get(wire.HeaderEventType), Data: jsonData(msg.Data())}
		if meta, err := msg.Metadata(); err == nil {
			line.Seq, line.Time = meta.Sequence.Stream, meta.Timestamp.UTC()
		}
		if asJSON {
			if err := enc.Encode(line); err != nil {
				return err
			}
			continue
		}
		typ := line.Type
		if typ == "" {
			typ = "-"
		}
		if _, err := fmt.Fprintf(f.io.Out, "%d  %s  %s  %s  %s\n", line.Seq, line.Time.Format("2006-01-02T15:04:05.000Z07:00"),
			cell(line.Subject, 200), cell(typ, 80), line.Data); err != nil {
			return err
		}
	}
	return nil
}

// validTailSubject: non-empty tokens without spaces or control characters,
// * only as a whole token, > only as the whole last one.
func validTailSubject(subject string) bool {
	tokens := strings.Split(subject, ".")
	for i, tok := range tokens {
		if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) ||
			(tok != "*" && strings.Contains(tok, "*")) || (tok != ">" && strings.Contains(tok, ">")) || (tok == ">" && i != len(tokens)-1) {
			return false
		}
	}
	return true
}

// jsonData is an event's data as one line of JSON: compacted when it is
// JSON, else as a JSON string.
func jsonData(data []byte) json.RawMessage {
	var b bytes.Buffer
	if len(data) > 0 && json.Compact(&b, data) == nil {
		return b.Bytes()
	}
	q, _ := json.Marshal(string(data))
	return q
}

func newEventsReplayCmd(f *factory) *cobra.Command {
	var subject, from string
	var clearBuckets []string
	var wait, asJSON bool
	cmd := &cobra.Command{
		Use:   "replay <function>",
		Short: "Move a function's event subscriptions back so its handlers see events again",
		Long: `Replay moves a function's event subscriptions (all of them, or the one on
--subject) back to --from: start (the default: every event the stream
keeps), a stream sequence or an RFC 3339 time. Each subscription's durable
consumer is recreated with the same settings and the new start (JetStream
cannot move a consumer's start), and the function's running instances bind
to it again by themselves; it prints, for each, how many events it goes
through again. Use it to rebuild a projection, or after fixing a handler.

Handlers see those events again, so they must be idempotent: handling an
event twice must do no more than handling it once. fn.EventMeta(ctx).Seq is
the event's stream sequence, the same on every delivery and replay: a
projection that stores the last sequence it applied skips the events at or
below it (subscribe with fn.Ordered() so they come one at a time, in order).

To rebuild a projection from scratch, name the buckets that hold its
state with --clear-bucket (buckets the function declares): they are
emptied while the subscriptions are paused and the events they hold are
done, so no live event lands between the clearing and the replay.

--wait then shows, every second, how many events each subscription still
has to go through, until all are caught up (or Ctrl-C).`,
		Example: `  yard events replay ledger
  yard events replay ledger --subject 'orders.>' --from 1200 --wait
  yard events replay ledger --from 2024-05-01T00:00:00Z --json
  yard events replay sales --clear-bucket shop_sales --wait`,
		Args: nameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			start, err := registry.ParseEventStart(from)
			if err != nil {
				return usageError("--from: %v", err)
			}
			// "new" would skip every event not yet handled: the opposite
			// of a replay, so it is refused.
			if start.String() == "new" {
				return usageError("--from %s would skip events, not replay them: give start, a stream sequence or an RFC 3339 time", from)
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			nc, err := f.connect("events")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			replayed, err := replayEvents(ctx, f, nc, js, name, subject, start, clearBuckets)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSONOut(f, replayed); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SUBJECT\tSTREAM\tCONSUMER\tFROM\tEVENTS AGAIN")
				for _, r := range replayed {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.Subject, r.Stream, r.Consumer, r.From, r.Pending)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if counts := countInstances(nc, []string{name}, 300*time.Millisecond); counts[name] == 0 {
				fmt.Fprintf(f.io.ErrOut, "no instance of %s runs right now: the events wait for one\n", name)
			}
			if !wait {
				fmt.Fprintf(f.io.ErrOut, "%s goes through these events again; follow it with --wait\n", name)
				return nil
			}
			return waitReplayed(ctx, f, js, replayed)
		},
	}
	cmd.Flags().StringVar(&subject, "subject", "", "replay only the subscription on this subject (as the function subscribed to it)")
	cmd.Flags().StringVar(&from, "from", "start", "where to start again: start, a stream sequence or an RFC 3339 time")
	cmd.Flags().StringArrayVar(&clearBuckets, "clear-bucket", nil, "empty this bucket of the function's before the replay (repeatable): a projection's state, for a rebuild")
	cmd.Flags().BoolVar(&wait, "wait", false, "then show progress every second until the subscriptions are caught up")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print what was replayed as a JSON array")
	return cmd
}

// replayEvents resets the subscriptions of the function name (all, or the
// one on subject) to start, from its live spec, and audits it. The audit
// kind is deploy (action events.replay): internal/audit has no kind for
// events, and a replay changes what the platform provisioned for the
// function, as a deploy does.
func replayEvents(ctx context.Context, f *factory, nc *nats.Conn, js jetstream.JetStream, name, subject string, start registry.EventStart, clearBuckets []string) ([]provision.Replayed, error) {
	// Long enough for the events being handled to finish (a function's
	// ack wait).
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	target := subject
	if target == "" {
		target = "all subscriptions"
	}
	detail := fmt.Sprintf("from %s: %s", start, target)
	spec, err := reg.Get(ctx, name)
	// An unknown function, one without subscriptions or without the one
	// asked for are all "not found": ExitError, as `yard rm` of an unknown
	// function and `yard secrets rm` of a missing secret are.
	switch {
	case err != nil:
		err = notFound(err, name)
	case len(spec.Events) == 0:
		err = &exitError{code: ExitError, err: fmt.Errorf("%s has no event subscriptions: nothing to replay", name)}
	case subject != "" && !slices.Contains(spec.Events, subject):
		err = &exitError{code: ExitError, err: fmt.Errorf("%s has no subscription on %s; it subscribes to %s", name, subject, strings.Join(spec.Events, ", "))}
	}
	// Clearing state that other subscriptions also build would lose
	// their part, and they would not be paused meanwhile.
	if err == nil && len(clearBuckets) > 0 && subject != "" && len(spec.Events) > 1 {
		err = &exitError{code: ExitUsage, err: fmt.Errorf("--clear-bucket with --subject: %s has other subscriptions (%s) whose state the bucket may hold; replay them all (no --subject)", name, strings.Join(spec.Events, ", "))}
	}
	for _, b := range clearBuckets {
		if err == nil && !slices.Contains(spec.Buckets, b) {
			err = &exitError{code: ExitUsage, err: fmt.Errorf("--clear-bucket %s: not a bucket %s declares (it declares %s)", b, name, strings.Join(spec.Buckets, ", "))}
		}
	}
	clear := func(ctx context.Context) error {
		for _, b := range clearBuckets {
			st, err := js.Stream(ctx, "KV_"+b)
			if err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
			if err := st.Purge(ctx); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	}
	var replayed []provision.Replayed
	if err == nil {
		replayed, err = provision.Rebuild(ctx, js, spec, subject, start, clear)
		if len(replayed) > 0 {
			var parts []string
			for _, r := range replayed {
				parts = append(parts, fmt.Sprintf("%s (%d events)", r.Subject, r.Pending))
			}
			detail = fmt.Sprintf("from %s: %s", start, strings.Join(parts, ", "))
		}
	}
	if len(clearBuckets) > 0 {
		detail += "; cleared " + strings.Join(clearBuckets, ", ")
	}
	newAuditLog(f, nc, js).record(ctx, audit.KindDeploy, "events.replay", name, detail, err)
	if err != nil && len(replayed) > 0 {
		// Some subscriptions were moved before one failed: say which.
		for _, r := range replayed {
			fmt.Fprintf(f.io.ErrOut, "replayed %s from %s (%d events) before the failure\n", r.Subject, r.From, r.Pending)
		}
	}
	if err != nil {
		return nil, err
	}
	return replayed, nil
}

// waitReplayed shows, every second, how many events each replayed
// subscription still has to go through (pending plus delivered but not
// acknowledged), until none has any or ctx ends; an ended ctx is no error.
func waitReplayed(ctx context.Context, f *factory, js jetstream.JetStream, replayed []provision.Replayed) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var parts []string
		left := false
		for _, r := range replayed {
			c, err := js.Consumer(ctx, r.Stream, r.Consumer)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				// Being provisioned again by an agent, or unreachable
				// for a moment: shown, and asked again next second.
				parts = append(parts, fmt.Sprintf("%s ?", r.Subject))
				left = true
				continue
			}
			info := c.CachedInfo()
			n := info.NumPending + uint64(max(info.NumAckPending, 0))
			parts = append(parts, fmt.Sprintf("%s %d left", r.Subject, n))
			left = left || n > 0
		}
		if ctx.Err() != nil {
			fmt.Fprintln(f.io.ErrOut, "stopped waiting; the replay goes on")
			return nil
		}
		if !left {
			fmt.Fprintln(f.io.ErrOut, "caught up: every replayed event was handled (or dead-lettered: see `yard dlq ls`)")
			return nil
		}
		fmt.Fprintf(f.io.ErrOut, "%s  %s\n", time.Now().Format(time.TimeOnly), strings.Join(parts, ", "))
		select {
		case <-ctx.Done():
			fmt.Fprintln(f.io.ErrOut, "stopped waiting; the replay goes on")
			return nil
		case <-tick.C:
		}
	}
}
