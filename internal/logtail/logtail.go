// Package logtail reads a function's log lines from YARD_LOGS by stream
// sequence, so a reader that polls can ask for what came after the last
// line it saw. The gateway's /ops routes serve them to the console.
package logtail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Line is one log line of one instance.
type Line struct {
	Seq      uint64    `json:"seq"`
	Instance string    `json:"instance"`
	Time     time.Time `json:"time"`
	Line     string    `json:"line"`
}

// Limits of one Read.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// window bounds the messages a first Read looks back through for the
	// last lines: YARD_LOGS interleaves every function's lines, and each
	// line of this function among them is one get.
	window = 5000
)

// ErrNoLogs: YARD_LOGS does not exist yet (no agent has run a function).
var ErrNoLogs = errors.New("no logs yet")

// Read returns up to limit lines of function name. With after 0 they are
// the newest lines; otherwise the lines after stream sequence after,
// oldest first. next is the sequence to pass as after to the next Read.
func Read(ctx context.Context, js jetstream.JetStream, name string, after uint64, limit int) (lines []Line, next uint64, err error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, after, err
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	stream, err := js.Stream(ctx, wire.StreamLogs)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, after, ErrNoLogs
	}
	if err != nil {
		return nil, after, err
	}
	prefix := wire.LogsPrefix + name + "."
	newest := after == 0
	var win uint64
	if newest {
		win = window
	}
	lines = []Line{}
	next, err = jskv.Window(ctx, stream, prefix+"*", after, win, func(msg *jetstream.RawStreamMsg) bool {
		lines = append(lines, Line{Seq: msg.Sequence, Instance: strings.TrimPrefix(msg.Subject, prefix),
			Time: msg.Time.UTC(), Line: strings.TrimSuffix(string(msg.Data), "\n")})
		if newest && len(lines) > limit {
			lines = lines[1:]
		}
		return newest || len(lines) < limit
	})
	if err != nil && len(lines) == 0 {
		return nil, after, fmt.Errorf("logs: %w", err)
	}
	return lines, next, nil
}
