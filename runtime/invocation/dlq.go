package invocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// DeadLetter is one invocation in YARD_DLQ.
type DeadLetter struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Function  string          `json:"function"`
	Attempts  int             `json:"attempts"`
	Error     *wire.Error     `json:"error,omitempty"`
	CreatedAt time.Time       `json:"created_at,omitzero"`
	DeadAt    time.Time       `json:"dead_at"`
	Payload   json.RawMessage `json:"payload"`
}

// DeadLetters lists the dead letters of one function, or of all when name
// is empty, oldest first, at most limit (0: all).
func (s *Store) DeadLetters(ctx context.Context, name string, limit int) ([]DeadLetter, error) {
	filter := wire.DLQPrefix + ">"
	if name != "" {
		subj, err := wire.DLQSubject(name)
		if err != nil {
			return nil, err
		}
		filter = subj
	}
	out := []DeadLetter{}
	_, err := jskv.Window(ctx, s.dlq, filter, 0, 0, func(m *jetstream.RawStreamMsg) bool {
		out = append(out, decodeDeadLetter(m.Sequence, m.Time, m.Subject, m.Header, m.Data))
		return limit == 0 || len(out) < limit
	})
	if err != nil {
		return out, fmt.Errorf("invocation: read DLQ: %w", err)
	}
	return out, nil
}

// decodeDeadLetter reads a dead letter. Its function is the one whose
// subject (yard.dlq.<name>) it was published on, whatever its headers say:
// a function may dead-letter only onto its own subject, so a forged
// Yard-Function header cannot make a replay run another function.
func decodeDeadLetter(seq uint64, at time.Time, subject string, h nats.Header, data []byte) DeadLetter {
	d := DeadLetter{Seq: seq, ID: h.Get(wire.HeaderInvocationID), Function: strings.TrimPrefix(subject, wire.DLQPrefix), DeadAt: at.UTC()}
	d.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	d.CreatedAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderCreated))
	if e := h.Get(HeaderError); e != "" {
		var we wire.Error
		if json.Unmarshal([]byte(e), &we) == nil {
			d.Error = &we
		}
	}
	if json.Valid(data) {
		d.Payload = data
	} else {
		// A payload that failed decoding may not be JSON; keep it readable.
		d.Payload, _ = json.Marshal(string(data))
	}
	return d
}

// Replay sends the dead letter of invocation id back to the work queue,
// with its attempts reset, and removes it from the DLQ.
func (s *Store) Replay(ctx context.Context, id string) (*Record, error) {
	seq, err := s.findDeadLetter(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	return s.replaySeq(ctx, seq, true)
}

// Requeue is Replay for a component that may not write records (the
// gateway): the dead letter goes back to the work queue and leaves the
// DLQ, and the record keeps saying "dead" until the instance that takes
// the work writes "running". The record returned is the one to expect.
// seq, when not 0, is the dead letter's sequence (from DeadLetters): it
// must hold id. Without it, the record names the sequence, or the first
// 1,000 dead letters are searched. A dead letter of a function that is
// not in the registry any more (deployed reports false) is left where it
// is, since nothing would take the work: the error wraps ErrGone.
func (s *Store) Requeue(ctx context.Context, id string, seq uint64, deployed func(function string) bool) (*Record, error) {
	if seq == 0 {
		var err error
		if seq, err = s.findDeadLetter(ctx, id, 1000); err != nil {
			return nil, err
		}
	}
	raw, err := s.dlq.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: dead letter %d is gone", ErrNotFound, seq)
	}
	if err != nil {
		return nil, err
	}
	d := decodeDeadLetter(seq, raw.Time, raw.Subject, raw.Header, raw.Data)
	if d.ID != id || !strings.HasPrefix(raw.Subject, wire.DLQPrefix) {
		return nil, fmt.Errorf("%w: dead letter %d is not %s's", ErrNotFound, seq, id)
	}
	if deployed != nil && !deployed(d.Function) {
		return nil, fmt.Errorf("%w: %s is not in the registry any more; its dead letter stays", ErrGone, d.Function)
	}
	return s.replaySeq(ctx, seq, false)
}

// ErrGone: the dead letter's function is not in the registry any more.
var ErrGone = errors.New("function gone")

// ReplayAll replays every dead letter of a function and returns how many.
func (s *Store) ReplayAll(ctx context.Context, name string) (int, error) {
	letters, err := s.DeadLetters(ctx, name, 0)
	if err != nil {
		return 0, err
	}
	for i, d := range letters {
		if _, err := s.replaySeq(ctx, d.Seq, true); err != nil {
			return i, err
		}
	}
	return len(letters), nil
}

// findDeadLetter finds the sequence of id's dead letter: its record's,
// else by searching the first max dead letters (0: all).
func (s *Store) findDeadLetter(ctx context.Context, id string, max int) (uint64, error) {
	if rec, err := s.Get(ctx, id); err == nil && rec.DLQSeq != 0 {
		return rec.DLQSeq, nil
	}
	// The record may have expired before the dead letter did: search.
	letters, err := s.DeadLetters(ctx, "", max)
	if err != nil {
		return 0, err
	}
	for _, d := range letters {
		if d.ID == id {
			return d.Seq, nil
		}
	}
	return 0, fmt.Errorf("%w: no dead letter for %s", ErrNotFound, id)
}

func (s *Store) replaySeq(ctx context.Context, seq uint64, writeRecord bool) (*Record, error) {
	raw, err := s.dlq.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: dead letter %d is gone", ErrNotFound, seq)
	}
	if err != nil {
		return nil, err
	}
	d := decodeDeadLetter(seq, raw.Time, raw.Subject, raw.Header, raw.Data)
	subject, err := wire.AsyncSubject(d.Function)
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	rec := &Record{
		ID: d.ID, Function: d.Function, Status: Queued, RequestID: raw.Header.Get(wire.HeaderRequestID),
		BodyHash: BodyHash(raw.Data), CreatedAt: time.Now().UTC(),
	}
	if writeRecord {
		if err := s.Put(ctx, rec); err != nil {
			return nil, err
		}
	}
	restore := func() {
		if !writeRecord {
			return
		}
		// Put the record back as it was, rather than leave it saying
		// "queued" for work that is still in the DLQ.
		dead := &Record{ID: d.ID, Function: d.Function, Status: Dead, Attempts: d.Attempts, RequestID: rec.RequestID,
			BodyHash: rec.BodyHash, CreatedAt: d.CreatedAt, FinishedAt: d.DeadAt, Error: d.Error, DLQSeq: seq}
		_ = s.Put(context.WithoutCancel(ctx), dead)
	}
	msg := &nats.Msg{Subject: subject, Data: raw.Data, Header: carried(raw.Header)}
	msg.Header.Set(wire.HeaderInvocationID, d.ID)
	msg.Header.Set(HeaderReplay, strconv.FormatUint(seq, 10))
	if _, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID("replay-"+strconv.FormatUint(seq, 10))); err != nil {
		restore()
		return nil, fmt.Errorf("invocation: replay %s: %w", d.ID, err)
	}
	if err := s.dlq.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return rec, fmt.Errorf("invocation: replayed %s but could not remove it from the DLQ: %w", d.ID, err)
	}
	return rec, nil
}
