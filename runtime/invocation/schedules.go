package invocation

import (
	"context"
	"errors"
	"fmt"
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

// ActiveSchedule is a schedule message stored in YARD_ASYNC.
type ActiveSchedule struct {
	registry.Schedule
	Subject string    `json:"subject"`
	Pattern string    `json:"pattern"`
	Since   time.Time `json:"since"`
	Next    time.Time `json:"next,omitzero"`
}

// Schedules lists the schedule messages of a function, soonest first.
func (s *Store) Schedules(ctx context.Context, name string) ([]ActiveSchedule, error) {
	subjects, err := s.scheduleSubjects(ctx, name)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []ActiveSchedule
	for _, subj := range subjects {
		m, err := s.async.GetLastMsgForSubject(ctx, subj)
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
	slices.SortFunc(out, func(a, b ActiveSchedule) int { return a.Next.Compare(b.Next) })
	return out, nil
}

// SyncSchedules makes the schedule messages of a function in YARD_ASYNC
// exactly want: it adds the missing ones and purges the others, leaving an
// unchanged schedule (and its timing) alone. Each schedule fires
// yard.async.<name>, so a tick is one async invocation, run once across all
// instances. Concurrent callers with the same want agree: a schedule is
// created only if its subject is still empty.
func (s *Store) SyncSchedules(ctx context.Context, name string, want []registry.Schedule) error {
	target, err := wire.AsyncSubject(name)
	if err != nil {
		return err
	}
	have, err := s.scheduleSubjects(ctx, name)
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
		keep[subj] = true
		if slices.Contains(have, subj) {
			continue
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
		if _, err := s.js.PublishMsg(ctx, msg); err != nil && !wrongLastSequence(err) {
			return fmt.Errorf("invocation: schedule %q for %s: %w", sc.Cron, name, err)
		}
	}
	for _, subj := range have {
		if keep[subj] {
			continue
		}
		if err := s.async.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return fmt.Errorf("invocation: remove schedule %s: %w", subj, err)
		}
	}
	return nil
}

func (s *Store) scheduleSubjects(ctx context.Context, name string) ([]string, error) {
	prefix, err := wire.SchedulesSubject(name, "x")
	if err != nil {
		return nil, err
	}
	prefix = strings.TrimSuffix(prefix, "x")
	info, err := s.async.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
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

// wrongLastSequence: another caller created the schedule first.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
