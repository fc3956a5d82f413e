package invocation

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Headers of nats-server's message scheduler.
const (
	HeaderSchedule       = "Nats-Schedule"        // the pattern, on a schedule message
	HeaderScheduleTarget = "Nats-Schedule-Target" // where its ticks go
	HeaderScheduler      = "Nats-Scheduler"       // on a tick: the schedule's subject
	HeaderScheduleNext   = "Nats-Schedule-Next"   // on a tick: when the next one fires
	headerExpectLastSubj = "Nats-Expected-Last-Subject-Sequence"
)

// ticksPerSubject is how many ticks of a function YARD_SCHEDULES keeps;
// YARD_ASYNC has sourced them long before.
const ticksPerSubject = 16

// ensureSchedules creates YARD_SCHEDULES when missing: the schedule
// messages (yard.schedules.<name>.<id>) and the ticks the server fires
// from them (yard.ticks.<name>), which YARD_ASYNC sources as
// yard.async.<name>. The scheduler needs its own stream because a stream
// with schedules accepts roll-ups (Nats-Rollup) from any publisher: in
// YARD_ASYNC one publish could purge every queued invocation.
func ensureSchedules(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:              wire.StreamSchedules,
		Description:       "Switchyard: function schedules and their ticks",
		Subjects:          []string{wire.SchedulesPrefix + ">", wire.TicksPrefix + ">"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: ticksPerSubject,
		Discard:           jetstream.DiscardOld,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		// Instances read their schedule's last tick by direct get, which
		// permissions can scope to their own subjects.
		AllowDirect: true,
	})
	if err != nil {
		return nil, err
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowDirect {
		// Made by an earlier release.
		cfg.AllowDirect = true
		if st, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("invocation: stream %s: allow direct gets: %w", wire.StreamSchedules, err)
		}
	}
	if !st.CachedInfo().Config.AllowMsgSchedules {
		// A server before 2.12 ignores the setting: schedules would be
		// stored and never fire.
		return nil, fmt.Errorf("invocation: stream %s: this nats-server does not schedule messages (2.12 or later is needed)", wire.StreamSchedules)
	}
	return st, nil
}

// ticksSource makes YARD_ASYNC take the ticks (yard.ticks.<name>.<id>)
// in as async invocations (yard.async.<name>).
func ticksSource() *jetstream.StreamSource {
	return &jetstream.StreamSource{
		Name: wire.StreamSchedules,
		SubjectTransforms: []jetstream.SubjectTransformConfig{{
			Source: wire.TicksPrefix + "*.*", Destination: wire.AsyncPrefix + "{{wildcard(1)}}",
		}},
	}
}

// sourceTicks adds the ticks source to a YARD_ASYNC made by an earlier
// release, keeping whatever else an operator tuned.
func sourceTicks(ctx context.Context, js jetstream.JetStream, s jetstream.Stream) (jetstream.Stream, error) {
	cfg := s.CachedInfo().Config
	want := ticksSource()
	var sources []*jetstream.StreamSource
	for _, src := range cfg.Sources {
		if src == nil {
			continue
		}
		if src.Name == wire.StreamSchedules {
			if slices.Equal(src.SubjectTransforms, want.SubjectTransforms) {
				return s, nil
			}
			continue // an older transform: replaced below
		}
		sources = append(sources, src)
	}
	cfg.Sources = append(sources, want)
	s, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("invocation: let %s take in schedule ticks: %w", cfg.Name, err)
	}
	return s, nil
}

// ActiveSchedule is a schedule message stored in YARD_SCHEDULES.
type ActiveSchedule struct {
	registry.Schedule
	Subject string    `json:"subject"`
	Pattern string    `json:"pattern"`
	Since   time.Time `json:"since"`
	Next    time.Time `json:"next,omitzero"`
}

// Schedules lists the schedule messages of a function, soonest first.
func (s *Store) Schedules(ctx context.Context, name string) ([]ActiveSchedule, error) {
	return listSchedules(ctx, s.schedules, name)
}

// ListSchedules is Schedules without opening (and so creating) anything:
// no YARD_SCHEDULES stream means no schedules.
func ListSchedules(ctx context.Context, js jetstream.JetStream, name string) ([]ActiveSchedule, error) {
	st, err := js.Stream(ctx, wire.StreamSchedules)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invocation: %s: %w", wire.StreamSchedules, err)
	}
	return listSchedules(ctx, st, name)
}

func listSchedules(ctx context.Context, st jetstream.Stream, name string) ([]ActiveSchedule, error) {
	subjects, err := scheduleSubjects(ctx, st, name)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []ActiveSchedule
	for _, subj := range subjects {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("invocation: schedule %s: %w", subj, err)
		}
		a := ActiveSchedule{Subject: subj, Pattern: m.Header.Get(HeaderSchedule), Since: m.Time.UTC()}
		a.Cron, a.Input = a.Pattern, m.Data
		if next, err := a.Schedule.Next(m.Time, now); err == nil {
			a.Next = next
		}
		out = append(out, a)
	}
	// Soonest first; a schedule without a next run (none within five
	// years) last.
	slices.SortFunc(out, func(a, b ActiveSchedule) int {
		if a.Next.IsZero() != b.Next.IsZero() {
			if a.Next.IsZero() {
				return 1
			}
			return -1
		}
		return a.Next.Compare(b.Next)
	})
	return out, nil
}

// SyncSchedules makes the schedule messages of a function in
// YARD_SCHEDULES exactly want: it adds the missing ones and purges the
// others, leaving an unchanged schedule (and its timing) alone. Each
// schedule fires yard.ticks.<name>, which YARD_ASYNC takes in as
// yard.async.<name>: a tick is one async invocation, run once across all
// instances. Concurrent callers with the same want agree: a schedule is
// created only if its subject is still empty.
func (s *Store) SyncSchedules(ctx context.Context, name string, want []registry.Schedule) error {
	if err := wire.ValidateName(name); err != nil {
		return err
	}
	have, err := scheduleSubjects(ctx, s.schedules, name)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, sc := range want {
		pattern, err := sc.Pattern()
		if err != nil {
			return err
		}
		subj, err := wire.SchedulesSubject(name, sc.ID())
		if err != nil {
			return err
		}
		target, err := wire.TicksSubject(name, sc.ID())
		if err != nil {
			return err
		}
		keep[subj] = true
		if slices.Contains(have, subj) {
			m, err := s.schedules.GetLastMsgForSubject(ctx, subj)
			if err == nil && m.Header.Get(HeaderScheduleTarget) == target && m.Header.Get(HeaderSchedule) == pattern {
				continue // in place: leave it (and its timing) alone
			}
			// Written by an earlier release with another target: replace it.
			if err := s.schedules.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
				return fmt.Errorf("invocation: replace schedule %s: %w", subj, err)
			}
		}
		input := sc.Input
		if len(input) == 0 {
			input = []byte("{}")
		}
		msg := &nats.Msg{Subject: subj, Data: input, Header: nats.Header{
			HeaderSchedule:       {pattern},
			HeaderScheduleTarget: {target},
			headerExpectLastSubj: {"0"},
		}}
		// A wrong last sequence: another caller created it first.
		if _, err := s.js.PublishMsg(ctx, msg); err != nil && !WrongLastSequence(err) {
			return fmt.Errorf("invocation: schedule %q for %s: %w", sc.Cron, name, err)
		}
	}
	for _, subj := range have {
		if keep[subj] {
			continue
		}
		if err := s.schedules.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return fmt.Errorf("invocation: remove schedule %s: %w", subj, err)
		}
	}
	return nil
}

func scheduleSubjects(ctx context.Context, st jetstream.Stream, name string) ([]string, error) {
	prefix, err := wire.SchedulesSubject(name, "x")
	if err != nil {
		return nil, err
	}
	prefix = strings.TrimSuffix(prefix, "x")
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("invocation: list schedules of %s: %w", name, err)
	}
	subjects := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		subjects = append(subjects, subj)
	}
	slices.Sort(subjects)
	return subjects, nil
}

// NewerTick reports whether a later tick of the same schedule than the
// one with headers h has fired already: then h's tick was missed (the
// function was down or busy) and can be skipped in favour of the later
// one. The latest tick is never skipped, however late it is delivered.
func (s *Store) NewerTick(ctx context.Context, h nats.Header) bool {
	scheduler := h.Get(HeaderScheduler)
	if !strings.HasPrefix(scheduler, wire.SchedulesPrefix) {
		return false
	}
	next, err := time.Parse(time.RFC3339Nano, h.Get(HeaderScheduleNext))
	if err != nil {
		return false
	}
	last, err := directGet(ctx, s.js.Conn(), wire.StreamSchedules, wire.TicksPrefix+strings.TrimPrefix(scheduler, wire.SchedulesPrefix))
	if err != nil || last == nil {
		return false // run it: better a tick too many than none
	}
	lastNext, err := time.Parse(time.RFC3339Nano, last.Header.Get(HeaderScheduleNext))
	return err == nil && lastNext.After(next)
}

// WrongLastSequence reports a failed compare-and-set: JetStream's "wrong
// last sequence" (10071, or 10164 on replicated streams), or a key-value
// revision mismatch.
func WrongLastSequence(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ScheduledFunctions lists the functions that have schedule messages.
func (s *Store) ScheduledFunctions(ctx context.Context) ([]string, error) {
	info, err := s.schedules.Info(ctx, jetstream.WithSubjectFilter(wire.SchedulesPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("invocation: list schedules: %w", err)
	}
	seen := map[string]bool{}
	for subj := range info.State.Subjects {
		name, _, _ := strings.Cut(strings.TrimPrefix(subj, wire.SchedulesPrefix), ".")
		seen[name] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}
