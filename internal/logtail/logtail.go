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
	// last lines: YARD_LOGS interleaves every function's lines.
	window = 20000
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
	last, err := stream.GetLastMsgForSubject(ctx, prefix+"*")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return []Line{}, after, nil
	}
	if err != nil {
		return nil, after, fmt.Errorf("logs: %w", err)
	}
	if last.Sequence <= after {
		return []Line{}, after, nil
	}
	start := after + 1
	newest := after == 0
	if newest && last.Sequence > window {
		start = last.Sequence - window + 1
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + "*"}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return nil, after, fmt.Errorf("logs: %w", err)
	}
	next = after
	lines = []Line{}
	// Up to the last line that existed when Read began: a busy function
	// cannot keep one Read going.
	for next < last.Sequence && (newest || len(lines) < limit) {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			if len(lines) > 0 || ctx.Err() != nil {
				break
			}
			return nil, after, fmt.Errorf("logs: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, after, err
		}
		next = meta.Sequence.Stream
		lines = append(lines, Line{Seq: next, Instance: strings.TrimPrefix(msg.Subject(), prefix), Time: meta.Timestamp.UTC(),
			Line: strings.TrimSuffix(string(msg.Data()), "\n")})
		if newest && len(lines) > limit {
			lines = lines[1:]
		}
		if meta.NumPending == 0 {
			break
		}
	}
	return lines, next, nil
}
