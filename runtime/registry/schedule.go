package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/switchyard-dev/switchyard/schemas"
)

// MaxSchedules bounds the schedules of one function.
const MaxSchedules = 16

// Schedule is one timer of a function: on every tick the function runs
// asynchronously with Input. nats-server fires it (see Pattern).
type Schedule struct {
	// Cron is "@every <duration>" (at least 1s), a descriptor (@hourly,
	// @daily, @midnight, @weekly, @monthly, @yearly, @annually), or a cron
	// line of five fields (minute hour day-of-month month day-of-week) or
	// six (seconds first), in UTC.
	Cron  string          `json:"cron"`
	Input json.RawMessage `json:"input,omitempty"`
}

// cronParser reads the six-field lines nats-server accepts.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

var descriptors = map[string]string{
	"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
	"@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}

// Pattern is the Nats-Schedule header value: the line as nats-server
// reads it. A five-field line gets a leading "0" seconds field.
func (s Schedule) Pattern() (string, error) {
	line := strings.Join(strings.Fields(s.Cron), " ")
	switch {
	case line == "":
		return "", errors.New("cron is empty")
	case strings.HasPrefix(line, "@every "):
		d, err := time.ParseDuration(strings.TrimPrefix(line, "@every "))
		if err != nil {
			return "", fmt.Errorf("cron %q: %w", s.Cron, err)
		}
		if d < time.Second || d%time.Second != 0 {
			return "", fmt.Errorf("cron %q: @every needs whole seconds, at least 1s", s.Cron)
		}
		return "@every " + d.String(), nil
	case strings.HasPrefix(line, "@"):
		if _, ok := descriptors[line]; !ok {
			return "", fmt.Errorf("cron %q: unknown descriptor (use @every <duration>, @hourly, @daily, @weekly, @monthly or @yearly)", s.Cron)
		}
		return line, nil
	}
	if n := len(strings.Fields(line)); n == 5 {
		line = "0 " + line
	} else if n != 6 {
		return "", fmt.Errorf("cron %q: want 5 fields (minute hour day month weekday) or 6 (seconds first), got %d", s.Cron, n)
	}
	sched, err := cronParser.Parse(line)
	if err != nil {
		return "", fmt.Errorf("cron %q: %w", s.Cron, err)
	}
	// nats-server refuses a line with no time in the next five years
	// (30 February, say); so do we, before anything is deployed.
	if sched.Next(time.Now()).IsZero() {
		return "", fmt.Errorf("cron %q never fires", s.Cron)
	}
	return line, nil
}

// ID names the schedule by its pattern and input, so an edited schedule
// replaces the old one and an unchanged one is left running.
func (s Schedule) ID() string {
	p, err := s.Pattern()
	if err != nil {
		p = s.Cron
	}
	sum := sha256.Sum256([]byte(p + "\n" + string(s.Input)))
	return hex.EncodeToString(sum[:8])
}

// Next is when the schedule fires next after now. every-schedules count
// from since, the time their schedule message was stored.
func (s Schedule) Next(since, now time.Time) (time.Time, error) {
	p, err := s.Pattern()
	if err != nil {
		return time.Time{}, err
	}
	if strings.HasPrefix(p, "@every ") {
		d, _ := time.ParseDuration(strings.TrimPrefix(p, "@every "))
		start := since.UTC().Round(time.Second)
		if !now.After(start) {
			return start.Add(d), nil
		}
		k := now.Sub(start)/d + 1
		return start.Add(k * d), nil
	}
	if line, ok := descriptors[p]; ok {
		p = line
	}
	sched, err := cronParser.Parse(p)
	if err != nil {
		return time.Time{}, err
	}
	return sched.Next(now.UTC()), nil
}

// ValidateSchedules reports every problem with a function's schedules:
// their lines, and (with a non-empty inputSchema) their inputs against the
// function's input schema, so a bad schedule fails at deploy or start
// rather than at every tick.
func ValidateSchedules(ss []Schedule, inputSchema []byte) error {
	errs := validateSchedules(ss)
	if len(ss) == 0 || len(inputSchema) == 0 {
		return errors.Join(errs...)
	}
	in, err := schemas.Compile(inputSchema)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("input schema: %w", err))...)
	}
	for k, s := range ss {
		input := s.Input
		if len(input) == 0 {
			input = []byte("{}")
		}
		v, err := schemas.Decode(input, schemas.DecodeLimits{})
		if err != nil {
			errs = append(errs, fmt.Errorf("schedules/%d: input: %w", k, err))
			continue
		}
		if bad := in.Validate(v); len(bad) > 0 {
			errs = append(errs, fmt.Errorf("schedules/%d: input does not match the input schema: %s %s", k, bad[0].Pointer, bad[0].Message))
		}
	}
	return errors.Join(errs...)
}

func validateSchedules(ss []Schedule) []error {
	var errs []error
	if len(ss) > MaxSchedules {
		errs = append(errs, fmt.Errorf("schedules: at most %d, got %d", MaxSchedules, len(ss)))
	}
	seen := map[string]bool{}
	for k, s := range ss {
		if _, err := s.Pattern(); err != nil {
			errs = append(errs, fmt.Errorf("schedules/%d: %w", k, err))
			continue
		}
		if len(s.Input) > 0 && !json.Valid(s.Input) {
			errs = append(errs, fmt.Errorf("schedules/%d: input is not valid JSON", k))
		}
		id := s.ID()
		if seen[id] {
			errs = append(errs, fmt.Errorf("schedules/%d: same cron and input as an earlier schedule", k))
		}
		seen[id] = true
	}
	return errs
}
