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

// Headers on async and dead-letter messages, beyond those in wire.
const (
	HeaderError    = "Yard-Error"     // JSON wire.Error of the last attempt (DLQ)
	HeaderAttempts = "Yard-Attempts"  // attempts made (DLQ)
	HeaderCreated  = "Yard-Created"   // RFC 3339 time the invocation was accepted (DLQ)
	HeaderFunction = "Yard-Function"  // function name (DLQ)
	HeaderReplay   = "Yard-Replay-Of" // DLQ sequence a replayed invocation came from
	// HeaderEventSubject marks a dead-lettered event with the subject it
	// was published on, so a replay runs the event handler again.
	HeaderEventSubject = "Yard-Event-Subject"
	// HeaderSeqID "1" says the invocation id is the message's Nats-Msg-Id,
	// "-", and its stream sequence (see Submit).
	HeaderSeqID = "Yard-Seq-Id"
)

// Config of the durable pieces; zero values take the defaults.
type Config struct {
	ResultsTTL time.Duration // default 24h
	DLQMaxAge  time.Duration // default 14 days
	// Duplicates is JetStream's de-duplication window on Nats-Msg-Id.
	// Idempotency keys hold for ResultsTTL regardless, through the record.
	Duplicates time.Duration // default 10m
	// MaxBytes bounds each of YARD_ASYNC, YARD_DLQ and yard_results, so
	// a flood of accepted work cannot fill the disk that the registry and
	// every other function share. A full work queue refuses new work
	// (ErrBacklogFull: the gateway answers 429 with Retry-After); a full
	// DLQ or results bucket drops its oldest entries.
	MaxBytes int64 // default 1 GiB each
}

// ErrBacklogFull: the work queue holds Config.MaxBytes already.
var ErrBacklogFull = errors.New("the asynchronous work queue is full; retry later")

// Store reads and writes invocations. A store from Open (the platform's
// components) holds every stream; one from Bind (a function instance)
// only writes its function's records, dead letters and callbacks.
type Store struct {
	js        jetstream.JetStream
	results   jetstream.KeyValue
	async     jetstream.Stream
	dlq       jetstream.Stream
	schedules jetstream.Stream
}

// Bind returns the store a function instance uses: it creates nothing and
// needs only the rights of the function's role (its own records, dead
// letters and callbacks, and its schedule's last tick), reading and
// writing records by their subjects, so not even the bucket's
// configuration (or the list of its keys) is needed.
func Bind(js jetstream.JetStream) *Store {
	return &Store{js: js}
}

// Open creates the streams and bucket when missing and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.ResultsTTL == 0 {
		cfg.ResultsTTL = 24 * time.Hour
	}
	if cfg.DLQMaxAge == 0 {
		cfg.DLQMaxAge = 14 * 24 * time.Hour
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = 10 * time.Minute
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 30
	}
	schedules, err := ensureSchedules(ctx, js)
	if err != nil {
		return nil, err
	}
	async, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        wire.StreamAsync,
		Description: "Switchyard: accepted asynchronous invocations",
		Subjects:    []string{wire.AsyncPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  cfg.Duplicates,
		MaxBytes:    cfg.MaxBytes,
		Discard:     jetstream.DiscardNew,
		Sources:     []*jetstream.StreamSource{ticksSource()},
	})
	if err == nil {
		async, err = sourceTicks(ctx, js, async)
	}
	if err != nil {
		return nil, err
	}
	dlq, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        wire.StreamDLQ,
		Description: "Switchyard: invocations that exhausted their attempts",
		Subjects:    []string{wire.DLQPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.DLQMaxAge,
		MaxBytes:    cfg.MaxBytes,
	})
	if err != nil {
		return nil, err
	}
	if _, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        wire.StreamCallbacks,
		Description: "Switchyard: callbacks of finished async invocations, to deliver",
		Subjects:    []string{wire.CallbacksPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		// Long enough that a redelivered settled invocation (after its
		// function's timeout) stores its callback once, not twice.
		Duplicates: min(max(cfg.Duplicates, 2*time.Hour), cfg.ResultsTTL),
		MaxAge:     cfg.ResultsTTL,
		MaxBytes:   cfg.MaxBytes,
	}); err != nil {
		return nil, err
	}
	kv, err := jskv.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:      wire.BucketResults,
		Description: "Switchyard: status and result of async invocations",
		TTL:         cfg.ResultsTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		MaxBytes:    cfg.MaxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("invocation: %w", err)
	}
	return &Store{js: js, results: kv, async: async, dlq: dlq, schedules: schedules}, nil
}

// codeStreamStoreFailed is nats-server's JSStreamStoreFailedF.
const codeStreamStoreFailed jetstream.ErrorCode = 10077

// publishError names a full work queue ErrBacklogFull (the stream discards
// new messages beyond MaxBytes, answering code 10077 "maximum bytes
// exceeded").
func publishError(subject string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamStoreFailed && strings.Contains(apiErr.Description, "maximum") {
		return fmt.Errorf("invocation: publish %s: %w (%s)", subject, ErrBacklogFull, apiErr.Description)
	}
	return fmt.Errorf("invocation: publish %s: %w", subject, err)
}

// ensureStream creates a stream when missing; see jskv.EnsureStream.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := jskv.EnsureStream(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("invocation: %w", err)
	}
	return s, nil
}

// Submission is one request to run a function asynchronously. The body
// must already be validated against the function's input schema.
type Submission struct {
	Function       string
	Body           []byte
	IdempotencyKey string
	RequestID      string
	CallbackURL    string
	Traceparent    string
	Tracestate     string
	// Owner is who submits it ("" for nobody in particular): an owned
	// invocation's id carries the owner, see OwnedBy.
	Owner string
}

// Submit accepts an invocation: it records it as queued and publishes it
// to the work queue, returning only once JetStream has acknowledged the
// message. With an idempotency key already used for the same function and
// body it returns the existing record (created false) and runs nothing
// again; with another body it returns ErrConflict.
func (s *Store) Submit(ctx context.Context, sub Submission) (rec *Record, created bool, err error) {
	subject, err := wire.AsyncSubject(sub.Function)
	if err != nil {
		return nil, false, err
	}
	id := NewID()
	if sub.Owner != "" {
		id = newOwnedID(sub.Owner)
	}
	if sub.IdempotencyKey != "" {
		if err := ValidateKey(sub.IdempotencyKey); err != nil {
			return nil, false, err
		}
		if sub.Owner != "" {
			id = idForOwnerKey(sub.Function, sub.Owner, sub.IdempotencyKey)
		} else {
			id = IDForKey(sub.Function, sub.IdempotencyKey)
		}
	}
	rec = &Record{
		ID: id, Function: sub.Function, Status: Queued, RequestID: sub.RequestID,
		BodyHash: BodyHash(sub.Body), CreatedAt: time.Now().UTC(),
	}
	msg := asyncMsg(subject, id, sub)
	if sub.IdempotencyKey == "" {
		if err := s.submitFresh(ctx, rec, msg); err != nil {
			return nil, false, err
		}
		return rec, true, nil
	}
	key := wire.ResultKey(sub.Function, id)
	data, _ := json.Marshal(rec)
	err = untilLeader(ctx, AcceptWait, func(ctx context.Context) error {
		_, err := s.results.Create(ctx, key, data)
		return err
	})
	if err == nil && s.legacy(ctx, id) != nil {
		// Accepted by an earlier release, which keyed records by id alone.
		_ = s.results.Delete(context.WithoutCancel(ctx), key)
		err = jetstream.ErrKeyExists
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, fmt.Errorf("invocation: record %s: %w", id, err)
		}
		old, gerr := s.Get(ctx, id)
		if gerr != nil {
			return nil, false, gerr
		}
		if old.Function != rec.Function || old.BodyHash != rec.BodyHash {
			return old, false, ErrConflict
		}
		if old.Status != Queued || old.Seq != 0 {
			return old, false, nil
		}
		// Queued with no message recorded: the first submitter may have died
		// between the record and the publish. Publishing again is safe: the
		// stream drops a second message with the same Nats-Msg-Id.
		rec, created = old, false
	} else {
		created = true
	}
	ack, err := s.publish(ctx, msg)
	if err != nil {
		if created {
			// Best effort: the client gets an error and will retry, so a
			// record saying "queued" for work that never was would only lie.
			_ = s.results.Delete(context.WithoutCancel(ctx), key)
		}
		return nil, false, publishError(subject, err)
	}
	// Record that the message is stored, so a resubmit with the same key
	// never publishes again, however long the invocation stays queued. If
	// an instance wrote the record first, it has the sequence already.
	rec.Seq = ack.Sequence
	if data, err := json.Marshal(rec); err == nil {
		if e, err := s.results.Get(ctx, key); err == nil {
			var cur Record
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Status == Queued {
				_, _ = s.results.Update(ctx, key, data, e.Revision())
			}
		}
	}
	return rec, created, nil
}

func asyncMsg(subject, id string, sub Submission) *nats.Msg {
	msg := &nats.Msg{Subject: subject, Data: sub.Body, Header: nats.Header{
		wire.HeaderMsgID:        {id},
		wire.HeaderInvocationID: {id},
	}}
	for k, v := range map[string]string{
		wire.HeaderRequestID: sub.RequestID, wire.HeaderCallbackURL: sub.CallbackURL,
		wire.HeaderTraceparent: sub.Traceparent, wire.HeaderTracestate: sub.Tracestate,
	} {
		if v != "" {
			msg.Header.Set(k, v)
		}
	}
	return msg
}

// submitFresh accepts an invocation without an idempotency key with one
// JetStream write instead of two: no record is written up front. The id is
// the message's Nats-Msg-Id and its stream sequence, so Get can find a
// queued invocation in YARD_ASYNC until its instance writes the first
// record, which happens before the message leaves the work queue.
func (s *Store) submitFresh(ctx context.Context, rec *Record, msg *nats.Msg) error {
	msg.Header.Del(wire.HeaderInvocationID)
	msg.Header.Set(HeaderSeqID, "1")
	ack, err := s.publish(ctx, msg)
	if err != nil {
		return publishError(msg.Subject, err)
	}
	rec.ID, rec.Seq = SeqID(rec.ID, ack.Sequence), ack.Sequence
	return nil
}

// AcceptWait bounds how long accepting an invocation waits for its
// stream: on a cluster, a node that dies takes the leadership of the
// streams it led with it for the seconds the others need to elect a new
// leader.
const AcceptWait = 15 * time.Second

// publish stores msg (which carries a Nats-Msg-Id) in YARD_ASYNC, waiting
// out a leader election: the id makes a repeat harmless, as the stream
// keeps one copy and acknowledges it with the first's sequence.
func (s *Store) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	var ack *jetstream.PubAck
	err := untilLeader(ctx, AcceptWait, func(ctx context.Context) error {
		var err error
		ack, err = s.js.PublishMsg(ctx, msg)
		return err
	})
	return ack, err
}

// untilLeader runs a JetStream write until it succeeds, fails for good,
// ctx ends or wait passes. It tries again when the write found no
// stream leader or got no answer (a leader that died or stopped): only
// writes that are safe to repeat go through it.
func untilLeader(ctx context.Context, wait time.Duration, write func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	pause := 50 * time.Millisecond
	for {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := write(wctx)
		cancel()
		retry := Transient(err)
		if err == nil || !retry || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// codeDuplicateInProcess: a message with this Nats-Msg-Id is being stored
// (an earlier try that got no answer); once it is, a repeat is answered
// as its duplicate.
const codeDuplicateInProcess = 10158

// Transient reports whether a JetStream write failed for want of a stream
// leader (none, or one that died or stopped and is being replaced) and
// may succeed when repeated: no responder, no answer, or the first copy
// of the same message still in flight.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == codeDuplicateInProcess
}

// SeqID is the id of an invocation accepted without an idempotency key.
func SeqID(msgID string, seq uint64) string {
	return msgID + "-" + strconv.FormatUint(seq, 10)
}

// queued finds an invocation that no instance has taken yet, by the stream
// sequence in its id; nil when there is none.
func (s *Store) queued(ctx context.Context, id string) *Record {
	i := strings.LastIndexByte(id, '-')
	if i < 1 {
		return nil
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return nil
	}
	raw, err := s.async.GetMsg(ctx, seq)
	if err != nil || raw.Header.Get(HeaderSeqID) != "1" || raw.Header.Get(wire.HeaderMsgID) != id[:i] {
		return nil
	}
	return &Record{
		ID: id, Function: strings.TrimPrefix(raw.Subject, wire.AsyncPrefix), Status: Queued,
		RequestID: raw.Header.Get(wire.HeaderRequestID), BodyHash: BodyHash(raw.Data), CreatedAt: raw.Time.UTC(),
	}
}

// Get returns the record of an invocation, whatever its function, or
// ErrNotFound. It reads across functions: the platform's view.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	if err := ValidateID(id); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	data, err := s.lastRecord(ctx, id)
	if errors.Is(err, ErrNotFound) {
		if rec := s.queued(ctx, id); rec != nil {
			return rec, nil
		}
		// An instance may have taken and finished it between the two
		// lookups; it writes the record before the message leaves the
		// queue, so one more look settles it.
		data, err = s.lastRecord(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	return decodeRecord(id, data)
}

// GetOf returns the record of function name's invocation id: the
// instance's view, which reads its own function's records only.
func (s *Store) GetOf(ctx context.Context, name, id string) (*Record, error) {
	m, err := directGet(ctx, s.js.Conn(), "KV_"+wire.BucketResults, "$KV."+wire.BucketResults+"."+wire.ResultKey(name, id))
	if err != nil {
		return nil, fmt.Errorf("invocation: get %s: %w", id, err)
	}
	if m == nil || deleted(m) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return decodeRecord(id, m.Data)
}

func decodeRecord(id string, data []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("invocation: decode %s: %w", id, err)
	}
	return &rec, nil
}

// lastRecord reads the newest value of key <any function>.<id>: a direct
// get of the last message on a wildcard subject, which the key-value API
// cannot express.
func (s *Store) lastRecord(ctx context.Context, id string) ([]byte, error) {
	subject := "$KV." + wire.BucketResults + ".*." + id
	m, err := directGet(ctx, s.js.Conn(), "KV_"+wire.BucketResults, subject)
	if err != nil {
		return nil, fmt.Errorf("invocation: get %s: %w", id, err)
	}
	if m == nil || deleted(m) {
		if m = s.legacy(ctx, id); m == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
	}
	return m.Data, nil
}

// legacy reads a record an earlier release stored under <id> alone, or
// nil; such records expire with the bucket's TTL.
func (s *Store) legacy(ctx context.Context, id string) *nats.Msg {
	m, err := directGet(ctx, s.js.Conn(), "KV_"+wire.BucketResults, "$KV."+wire.BucketResults+"."+id)
	if err != nil || m == nil || deleted(m) {
		return nil
	}
	return m
}

func deleted(m *nats.Msg) bool {
	op := m.Header.Get("KV-Operation")
	return op == "DEL" || op == "PURGE"
}

// directGet reads the last message on subject in stream (which allows
// direct gets), or nil when there is none. A literal subject goes in the
// request subject, so permissions can scope it; a wildcard in the body.
func directGet(ctx context.Context, nc *nats.Conn, stream, subject string) (*nats.Msg, error) {
	api := "$JS.API.DIRECT.GET." + stream
	var body []byte
	if strings.ContainsAny(subject, "*>") {
		body, _ = json.Marshal(map[string]string{"last_by_subj": subject})
	} else {
		api += "." + subject
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	m, err := nc.RequestWithContext(ctx, api, body)
	if err != nil {
		return nil, err
	}
	switch m.Header.Get("Status") {
	case "":
		return m, nil
	case "404":
		return nil, nil
	default:
		return nil, fmt.Errorf("direct get %s: %s %s", subject, m.Header.Get("Status"), m.Header.Get("Description"))
	}
}

// Put writes a record and waits for JetStream to store it.
func (s *Store) Put(ctx context.Context, rec *Record) error {
	_, err := s.PutEncoded(ctx, rec)
	return err
}

// PutEncoded is Put returning the JSON it stored, for callers that send the
// same record on (as the completion event does).
func (s *Store) PutEncoded(ctx context.Context, rec *Record) ([]byte, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	// A key-value put is a publish on the key's subject. Writing the same
	// record again is harmless: it waits out a leader election (up to
	// PutWait) rather than give the work back for another execution.
	subject := "$KV." + wire.BucketResults + "." + wire.ResultKey(rec.Function, rec.ID)
	err = untilLeader(ctx, PutWait, func(ctx context.Context) error {
		_, err := s.js.Publish(ctx, subject, data)
		return err
	})
	return data, err
}

// PutWait bounds how long Put waits out a leader election of yard_results.
const PutWait = 5 * time.Second

// PutAsync writes a record without waiting; the future reports the outcome.
// Writes from one connection are stored in the order they are made. One
// that finds no stream leader is not sent again: a late resend could land
// after a newer write and undo it (a "running" over a "succeeded").
func (s *Store) PutAsync(rec *Record) (jetstream.PubAckFuture, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return s.js.PublishAsync("$KV."+wire.BucketResults+"."+wire.ResultKey(rec.Function, rec.ID), data,
		jetstream.WithRetryAttempts(0))
}

// Wait blocks until the invocation reaches a final status or ctx ends, and
// returns the last record seen.
func (s *Store) Wait(ctx context.Context, id string) (*Record, error) {
	if err := ValidateID(id); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	w, err := s.results.Watch(ctx, "*."+id)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var last *Record
	for {
		select {
		case <-ctx.Done():
			if last != nil {
				return last, ctx.Err()
			}
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return last, errors.New("invocation: watch closed")
			}
			if e == nil {
				if last == nil {
					// No record yet: queued in the stream, or written
					// between the watch starting and now (Get sees both).
					rec, err := s.Get(ctx, id)
					if err != nil {
						return nil, err
					}
					if last = rec; rec.Status.Final() {
						return rec, nil
					}
				}
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			var rec Record
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, err
			}
			last = &rec
			if rec.Status.Final() {
				return last, nil
			}
		}
	}
}

// DeadLetter publishes the payload of a failed invocation to YARD_DLQ and
// returns its sequence there.
func (s *Store) DeadLetter(ctx context.Context, rec *Record, payload []byte, hdr nats.Header) (uint64, error) {
	if rec.Seq == 0 {
		return 0, fmt.Errorf("invocation: dead-letter %s: no stream sequence", rec.ID)
	}
	subject, err := wire.DLQSubject(rec.Function)
	if err != nil {
		return 0, err
	}
	msg := &nats.Msg{Subject: subject, Data: payload, Header: carried(hdr)}
	errJSON, _ := json.Marshal(rec.Error)
	msg.Header.Set(wire.HeaderInvocationID, rec.ID)
	msg.Header.Set(HeaderFunction, rec.Function)
	msg.Header.Set(HeaderError, string(errJSON))
	msg.Header.Set(HeaderAttempts, strconv.Itoa(rec.Attempts))
	msg.Header.Set(HeaderCreated, rec.CreatedAt.Format(time.RFC3339Nano))
	// Keyed by the work-queue message, so dead-lettering the same message
	// again (after a crash before its ack) is dropped as a duplicate.
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID("dlq-"+rec.ID+"-"+strconv.FormatUint(rec.Seq, 10)))
	if err != nil {
		return 0, fmt.Errorf("invocation: dead-letter %s: %w", rec.ID, err)
	}
	return ack.Sequence, nil
}

// carriedHeaders travel with an invocation into the DLQ and back out on
// replay.
var carriedHeaders = []string{wire.HeaderRequestID, wire.HeaderCallbackURL, wire.HeaderTraceparent, wire.HeaderTracestate, HeaderEventSubject}

// carried returns the carriedHeaders that h holds, in a new header.
func carried(h nats.Header) nats.Header {
	out := nats.Header{}
	for _, k := range carriedHeaders {
		if v := h.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// QueueCallback stores the callback of a finished invocation in
// YARD_CALLBACKS, where the platform delivers it from: it survives a crash
// of the instance and of the deliverer. The same outcome queued twice
// (a crash before the ack) is stored once.
func (s *Store) QueueCallback(ctx context.Context, rec *Record, url string, event []byte) error {
	subject, err := wire.CallbacksSubject(rec.Function)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Data: event, Header: nats.Header{
		wire.HeaderCallbackURL:  {url},
		wire.HeaderInvocationID: {rec.ID},
		wire.HeaderRequestID:    {rec.RequestID},
	}}
	_, err = s.js.PublishMsg(ctx, msg, jetstream.WithMsgID("cb-"+rec.ID+"-"+strconv.FormatUint(rec.Seq, 10)))
	if err != nil {
		return fmt.Errorf("invocation: queue callback of %s: %w", rec.ID, err)
	}
	return nil
}
