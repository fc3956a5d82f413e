package registry_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/registry"
)

func TestSchedulePattern(t *testing.T) {
	for _, c := range []struct{ cron, want, err string }{
		{"@every 1m", "@every 1m0s", ""},
		{" @every  90s ", "@every 1m30s", ""},
		{"@hourly", "@hourly", ""},
		{"*/5 * * * *", "0 */5 * * * *", ""},
		{"30 0 9 * * MON-FRI", "30 0 9 * * MON-FRI", ""},
		{"", "", "empty"},
		{"@every 500ms", "", "whole seconds"},
		{"@every 1.5s", "", "whole seconds"},
		{"@every soon", "", "invalid duration"},
		{"@fortnightly", "", "unknown descriptor"},
		{"* * * *", "", "want 5 fields"},
		{"61 * * * *", "", "above maximum"},
		{"every minute", "", "want 5 fields"},
		{"0 0 30 2 *", "", "never fires"},
	} {
		got, err := registry.Schedule{Cron: c.cron}.Pattern()
		if c.err == "" && (err != nil || got != c.want) {
			t.Errorf("%q: %q, %v; want %q", c.cron, got, err, c.want)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: error %v, want one saying %q", c.cron, err, c.err)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	since := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	now := since.Add(2*time.Minute + 10*time.Second)
	for _, c := range []struct {
		cron string
		want time.Time
	}{
		{"@every 1m", since.Add(3 * time.Minute)},
		{"@every 1h", since.Add(time.Hour)},
		{"*/5 * * * *", since.Add(5 * time.Minute)},
		{"@daily", time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"0 0 12 * * *", time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)},
	} {
		got, err := registry.Schedule{Cron: c.cron}.Next(since, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%q: next %v, %v; want %v", c.cron, got, err, c.want)
		}
	}
	// Before its first tick, an every-schedule fires one interval after it was stored.
	if got, _ := (registry.Schedule{Cron: "@every 1m"}).Next(since, since); !got.Equal(since.Add(time.Minute)) {
		t.Errorf("first tick %v", got)
	}
}

func TestValidateSchedules(t *testing.T) {
	ok := registry.Schedule{Cron: "@hourly", Input: json.RawMessage(`{}`)}
	if err := registry.ValidateSchedules([]registry.Schedule{ok}, nil); err != nil {
		t.Fatal(err)
	}
	err := registry.ValidateSchedules([]registry.Schedule{ok, ok, {Cron: "@every 0s"}, {Cron: "@daily", Input: json.RawMessage(`{`)}}, nil)
	for _, want := range []string{"schedules/1: same cron and input", "schedules/2:", "schedules/3: input is not valid JSON"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	many := make([]registry.Schedule, registry.MaxSchedules+1)
	for k := range many {
		many[k] = registry.Schedule{Cron: "@every " + (time.Duration(k+1) * time.Second).String()}
	}
	if err := registry.ValidateSchedules(many, nil); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("too many schedules: %v", err)
	}
}

// FuzzSchedulePattern: any line a yard.json or manifest may carry is either
// refused or gives a pattern that parses again to itself and has a next run.
func FuzzSchedulePattern(f *testing.F) {
	for _, s := range []string{"@every 1m", "*/5 * * * *", "0 0 9 * * MON-FRI", "@hourly", "@every 0s", "1-2/3 * * * *", "? * * * *"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string) {
		s := registry.Schedule{Cron: line}
		p, err := s.Pattern()
		if err != nil {
			return
		}
		again, err := registry.Schedule{Cron: p}.Pattern()
		if err != nil || again != p {
			t.Fatalf("%q -> %q -> %q, %v", line, p, again, err)
		}
		if _, err := s.Next(now, now); err != nil {
			t.Fatalf("%q: valid pattern %q has no next run: %v", line, p, err)
		}
	})
}
