package fn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// Event sourcing: an entity is the events appended to its own subject of
// an entity stream (Stream.Entity), and its state is what folding them
// gives. Its version is the stream sequence of its last event: Append
// with ExpectVersion adds an event only if no one else did meanwhile.
// docs/events.md tells the whole story.

// ErrVersionConflict: the entity changed since the version an Append
// expected. The error Append returns also carries a 409 conflict with
// reason version_conflict, which is what a caller sees when the handler
// returns it; a handler usually loads again and retries instead.
var ErrVersionConflict = errors.New("fn: version conflict")

// ReasonVersionConflict is the reason of a version conflict's 409.
const ReasonVersionConflict = "version_conflict"

// HeaderEventType names an appended event's type.
const HeaderEventType = wire.HeaderEventType

// EventType declares an event type appended to an entity stream: see
// EventOf.
type EventType struct {
	name   string
	schema []byte
	err    error
}

// EventOf declares T as an event type of an entity stream, named as
// Append names it (the Go type's name). Its JSON schema goes into the
// function's spec: a deploy whose T could not read the events the live
// version wrote is refused.
func EventOf[T any]() EventType {
	name := typeName[T]()
	sc, err := schemas.For[T]()
	if err == nil && !registry.ValidEventType(name) {
		err = fmt.Errorf("fn: event type %q needs a name", name)
	}
	return EventType{name: name, schema: sc, err: err}
}

func typeName[T any]() string {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// eventTypeOf names an event as Append does by default: its Go type's
// name.
func eventTypeOf(event any) string {
	t := reflect.TypeOf(event)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	return t.Name()
}

// AppendOption tunes Append.
type AppendOption func(*appendOptions)

type appendOptions struct {
	expect *uint64
	typ    string
	id     string
}

// ExpectVersion appends only if the entity's version is still v (0: the
// entity has no events yet); otherwise Append fails with
// ErrVersionConflict.
func ExpectVersion(v uint64) AppendOption { return func(o *appendOptions) { o.expect = &v } }

// WithEventType names the event's type instead of its Go type's name.
func WithEventType(name string) AppendOption { return func(o *appendOptions) { o.typ = name } }

// WithAppendID names the append, for the entity: a second append with the
// same id to the same entity within the stream's duplicate window (2
// minutes) is dropped and reports the first one's version. Use an id of
// the command (a client's Idempotency-Key and the operation), not a
// request id, which the commands of one request share.
func WithAppendID(id string) AppendOption { return func(o *appendOptions) { o.id = id } }

// Append adds event to the entity at subject (a literal subject of an
// entity stream the function declares) and returns the entity's new
// version. The request id and trace context of ctx travel with it.
func Append(ctx context.Context, subject string, event any, opts ...AppendOption) (uint64, error) {
	ev, _, err := appendEvent(ctx, subject, event, opts...)
	return ev.Seq, err
}

// appendEvent is Append, returning the event as stored (its Time is the
// time of the append here) and whether it was a duplicate (WithAppendID),
// stored before.
func appendEvent(ctx context.Context, subject string, event any, opts ...AppendOption) (Event, bool, error) {
	_, decl, err := entityDecl(ctx, subject)
	if err != nil {
		return Event{}, false, err
	}
	nc := connFrom(ctx)
	if nc == nil {
		return Event{}, false, ErrNoConn
	}
	var o appendOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.typ == "" {
		o.typ = eventTypeOf(event)
	}
	if !registry.ValidEventType(o.typ) {
		return Event{}, false, fmt.Errorf("fn: append to %s: the event needs a type name (a named Go type, or WithEventType)", subject)
	}
	// Declared types are what a deploy checks old events against: an
	// undeclared one would escape the check.
	if decl != nil && len(decl.EventTypes) > 0 && !slices.ContainsFunc(decl.EventTypes, func(t EventType) bool { return t.name == o.typ }) {
		return Event{}, false, fmt.Errorf("%w: fn %s appends events of type %s to %s: add fn.EventOf for it to the stream's EventTypes", ErrUndeclared, connName(ctx), o.typ, decl.Name)
	}
	data, err := json.Marshal(event)
	if err != nil {
		return Event{}, false, fmt.Errorf("fn: encode event for %s: %w", subject, err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{HeaderEventType: {o.typ}}}
	if o.id != "" {
		// The stream's duplicate window spans all its subjects: the id is
		// the entity's, so the same id on two entities is two events.
		msg.Header.Set(wire.HeaderMsgID, subject+"|"+o.id)
	}
	if o.expect != nil {
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(*o.expect, 10))
	}
	if id := RequestID(ctx); id != "" {
		msg.Header.Set(wire.HeaderRequestID, id)
	}
	span := startOutgoing(ctx, "append "+subject, trace.SpanKindProducer, msg.Header,
		attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject))
	var seq uint64
	dup := false
	js, err := jetstream.New(nc)
	if err == nil {
		var ack *jetstream.PubAck
		ack, err = js.PublishMsg(ctx, msg)
		var apiErr *jetstream.APIError
		switch {
		case err == nil:
			seq, dup = ack.Sequence, ack.Duplicate
		case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
			err = fmt.Errorf("%w: %w", ErrVersionConflict, &Error{Code: CodeConflict, Reason: ReasonVersionConflict,
				Message: fmt.Sprintf("%s changed since version %d", subject, *o.expect)})
		default:
			err = fmt.Errorf("fn: append to %s: %w", subject, err)
		}
	}
	endOutgoing(span, err)
	return Event{Subject: subject, Type: o.typ, Seq: seq, Time: time.Now().UTC(), Data: data}, dup, err
}

// Event is one stored event of an entity, as a fold sees it.
type Event struct {
	Subject string
	// Type is the event's type name (see Append).
	Type string
	// Seq is the event's stream sequence: the entity's version once it
	// is folded in.
	Seq  uint64
	Time time.Time
	Data json.RawMessage
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error { return json.Unmarshal(e.Data, v) }

// EventAs returns the event's data as a T when the event is of type T
// (by name, as Append names it) and its data decodes as one; use Decode
// to see why an event of the type does not.
func EventAs[T any](e Event) (T, bool) {
	var v T
	if e.Type != typeName[T]() || json.Unmarshal(e.Data, &v) != nil {
		return v, false
	}
	return v, true
}

// LoadOption tunes Load.
type LoadOption func(*loadOptions)

type loadOptions struct {
	every   int
	version string
	append  []AppendOption // Update's
}

// SnapshotVersion names the fold's version in its snapshots: change it
// when the fold changes but the state's type does not, and older
// snapshots are ignored (a changed state type does that by itself).
func SnapshotVersion(v string) LoadOption { return func(o *loadOptions) { o.version = v } }

// AppendWith passes options to the append Update makes (WithAppendID,
// WithEventType); Load ignores it.
func AppendWith(opts ...AppendOption) LoadOption {
	return func(o *loadOptions) { o.append = append(o.append, opts...) }
}

// Snapshot keeps a snapshot of the folded state once every events have
// been folded since the last one, and starts later loads from it. Each
// function keeps its own snapshots (its fold is its own); a snapshot is
// ignored when the state's Go type (its JSON schema) or the
// SnapshotVersion changed.
func Snapshot(every int) LoadOption { return func(o *loadOptions) { o.every = every } }

// Load reads the events of the entity at subject in order and folds them
// into a state, starting from the zero S (or a snapshot). It returns the
// state and the version to pass to ExpectVersion: 0 for an entity without
// events.
func Load[S any](ctx context.Context, subject string, fold func(S, Event) (S, error), opts ...LoadOption) (S, uint64, error) {
	var state S
	stream, _, err := entityDecl(ctx, subject)
	if err != nil {
		return state, 0, err
	}
	nc := connFrom(ctx)
	if nc == nil {
		return state, 0, ErrNoConn
	}
	var o loadOptions
	for _, opt := range opts {
		opt(&o)
	}
	snaps := &snapshotStore[S]{}
	version := uint64(0)
	if o.every > 0 {
		snaps = openSnapshots[S](ctx, nc, stream, subject, o.version)
		if s, v, ok := snaps.get(); ok {
			state, version = s, v
		}
	}
	folded := 0
	err = readEntity(ctx, nc, stream, subject, version, func(e Event) error {
		var err error
		if state, err = fold(state, e); err != nil {
			return err
		}
		version = e.Seq
		folded++
		return nil
	})
	if err != nil {
		var zero S
		return zero, 0, err
	}
	if o.every > 0 && folded >= o.every {
		snaps.put(state, version)
	}
	return state, version, nil
}

// UpdateAttempts bounds how many times Update loads and tries again after
// a version conflict (the context's deadline bounds it too).
const UpdateAttempts = 100

// Update is the usual command on an entity: load it, let decide return the
// event to append given its state (nil: none), and append that at the
// loaded version; on a conflict, load again and decide again after a
// random pause that grows to at most 100 ms. It returns the state with the event folded
// in, and its version. An error from decide or fold is returned as is,
// so decide can refuse a command with an *Error (a 409 with a reason, say).
// AppendWith(WithAppendID(id)) makes a retried command (its reply lost)
// append nothing the second time: Update then returns the state as stored.
func Update[S any](ctx context.Context, subject string, fold func(S, Event) (S, error), decide func(S) (any, error), opts ...LoadOption) (S, uint64, error) {
	var zero S
	var o loadOptions
	for _, opt := range opts {
		opt(&o)
	}
	for attempt := 1; ; attempt++ {
		state, v, err := Load(ctx, subject, fold, opts...)
		if err != nil {
			return zero, 0, err
		}
		ev, err := decide(state)
		if err != nil || ev == nil {
			return state, v, err
		}
		stored, dup, err := appendEvent(ctx, subject, ev, append(slices.Clone(o.append), ExpectVersion(v))...)
		switch {
		case err == nil && dup:
			// Stored by an earlier try of the same command (WithAppendID):
			// what is stored is the answer.
			return Load(ctx, subject, fold, opts...)
		case err == nil:
			state, err = fold(state, stored)
			if err != nil {
				return zero, 0, err
			}
			return state, stored.Seq, nil
		case !errors.Is(err, ErrVersionConflict) || attempt >= UpdateAttempts:
			return zero, 0, err
		}
		pause := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond))))
		select {
		case <-ctx.Done():
			return zero, 0, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// entityDecl finds the entity stream of subject: one the function
// declares, with its declaration, or, from a context of WithConn,
// whichever stream holds it (no declaration).
func entityDecl(ctx context.Context, subject string) (string, *Stream, error) {
	if !literalSubject(subject) {
		return "", nil, fmt.Errorf("fn: %q is not an entity's subject (dot-separated tokens, no wildcards)", subject)
	}
	d, ok := declared(ctx)
	if !ok {
		nc := connFrom(ctx)
		if nc == nil {
			return "", nil, ErrNoConn
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return "", nil, err
		}
		name, err := js.StreamNameBySubject(ctx, subject)
		if err != nil {
			return "", nil, fmt.Errorf("fn: no stream holds %s: %w", subject, err)
		}
		return name, nil, nil
	}
	for k, st := range d.entities {
		if slices.ContainsFunc(st.Subjects, func(p string) bool { return subjectMatches(p, subject) }) {
			return st.Name, &d.entities[k], nil
		}
	}
	return "", nil, fmt.Errorf("%w: fn %s appends to or loads %s: declare an entity stream holding it in Config.Streams", ErrUndeclared, d.name, subject)
}

// connName is the function of ctx, for messages.
func connName(ctx context.Context) string {
	if d, ok := declared(ctx); ok {
		return d.name
	}
	return "(no function)"
}

func literalSubject(s string) bool {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	return !slices.Contains(strings.Split(s, "."), "")
}

// readBatch is how many events one direct get returns at most.
const readBatch = 1000

// readEntity calls f with each event of subject after sequence after, in
// order, with batched direct gets: no consumer to create, one round trip
// per readBatch events. A direct get may be answered by any replica, so a
// load can miss the newest events for a moment; an Append that expects
// the version it returned then fails with a conflict, and a retry sees
// them.
func readEntity(ctx context.Context, nc *nats.Conn, stream, subject string, after uint64, f func(Event) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	// A channel of one batch and its end: the next batch is asked for
	// only once this one is read, so it never overflows, and a load does
	// not allocate a sync subscription's 64k-slot channel.
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, readBatch+2)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	seq := after + 1
	for {
		req, _ := json.Marshal(map[string]any{"seq": seq, "next_by_subj": subject, "batch": readBatch})
		if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, req); err != nil {
			return err
		}
		for {
			var m *nats.Msg
			select {
			case m = <-ch:
			case <-ctx.Done():
				return fmt.Errorf("fn: read %s from stream %s: %w", subject, stream, ctx.Err())
			}
			switch m.Header.Get("Status") {
			case "":
			case "404": // nothing (more) on the subject
				return nil
			case "204": // the end of a batch
				if m.Header.Get("Nats-Num-Pending") == "0" {
					return nil
				}
				goto next
			case "503":
				return fmt.Errorf("fn: read %s: stream %s does not answer direct gets (is it an entity stream?)", subject, stream)
			default:
				return fmt.Errorf("fn: read %s from stream %s: %s %s", subject, stream, m.Header.Get("Status"), m.Header.Get("Description"))
			}
			n, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return fmt.Errorf("fn: read %s: a reply without a sequence", subject)
			}
			ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
			if err := f(Event{Subject: subject, Type: m.Header.Get(HeaderEventType), Seq: n, Time: ts, Data: m.Data}); err != nil {
				return err
			}
			seq = n + 1
		}
	next:
	}
}

// snapshotStore reads and writes one entity's snapshot; the zero value
// does nothing.
type snapshotStore[S any] struct {
	ctx    context.Context
	kv     jetstream.KeyValue
	key    string
	schema string
	rev    uint64 // of the snapshot read; 0: none
}

type snapshot struct {
	Version uint64          `json:"version"`
	Schema  string          `json:"schema"`
	State   json.RawMessage `json:"state"`
}

var kvKeyRe = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func openSnapshots[S any](ctx context.Context, nc *nats.Conn, stream, subject, version string) *snapshotStore[S] {
	js, err := jetstream.New(nc)
	if err != nil {
		return &snapshotStore[S]{}
	}
	kv, err := snapshotBucket(ctx, js, nc, stream)
	if err != nil {
		Logger(ctx).Warn("snapshots unavailable; loading every event", "stream", stream, logKeyErr, err)
		return &snapshotStore[S]{}
	}
	return &snapshotStore[S]{ctx: ctx, kv: kv, key: SnapshotKey(snapshotOwner(ctx), subject), schema: snapshotSchema[S](version)}
}

// snapshotOwner is whose snapshots a load reads and writes: its function
// (whose rights cover only its own), or "_" from a context of WithConn.
func snapshotOwner(ctx context.Context) string {
	if d, ok := declared(ctx); ok {
		return d.name
	}
	return "_"
}

// SnapshotKey is the key of owner's snapshot of the entity at subject in
// its stream's snapshot bucket: <owner>.<subject>, the subject encoded
// when it holds what a key may not.
func SnapshotKey(owner, subject string) string {
	if !kvKeyRe.MatchString(subject) {
		subject = "b64_" + base64.RawURLEncoding.EncodeToString([]byte(subject))
	}
	return owner + "." + subject
}

func snapshotSchema[S any](version string) string {
	schema := reflect.TypeFor[S]().String()
	if sc, err := schemas.For[S](); err == nil {
		schema = schemas.Hash(sc)
	}
	if version != "" {
		schema += "/" + version
	}
	return schema
}

// snapshotBuckets holds the snapshot buckets opened on each connection:
// opening one asks the server for its stream's info, which would
// otherwise cost every load a round trip.
var snapshotBuckets sync.Map // snapshotKey → jetstream.KeyValue

type snapshotKey struct {
	nc     *nats.Conn
	stream string
}

func snapshotBucket(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, stream string) (jetstream.KeyValue, error) {
	k := snapshotKey{nc, stream}
	if kv, ok := snapshotBuckets.Load(k); ok {
		return kv.(jetstream.KeyValue), nil
	}
	kv, err := js.KeyValue(ctx, registry.SnapshotBucket(stream))
	if err != nil {
		return nil, err
	}
	snapshotBuckets.Store(k, kv)
	return kv, nil
}

// get returns the snapshot, if there is one of this state type.
func (s *snapshotStore[S]) get() (S, uint64, bool) {
	var state S
	if s.kv == nil {
		return state, 0, false
	}
	e, err := s.kv.Get(s.ctx, s.key)
	if err != nil {
		return state, 0, false
	}
	s.rev = e.Revision()
	var snap snapshot
	if json.Unmarshal(e.Value(), &snap) != nil || snap.Schema != s.schema || json.Unmarshal(snap.State, &state) != nil {
		var zero S
		return zero, 0, false
	}
	return state, snap.Version, true
}

// put keeps state at version, unless another load wrote a snapshot since
// this one read it (both are true states; the first one stays).
func (s *snapshotStore[S]) put(state S, version uint64) {
	if s.kv == nil {
		return
	}
	b, err := json.Marshal(state)
	if err != nil {
		return
	}
	val, _ := json.Marshal(snapshot{Version: version, Schema: s.schema, State: b})
	if s.rev == 0 {
		_, err = s.kv.Create(s.ctx, s.key, val)
	} else {
		_, err = s.kv.Update(s.ctx, s.key, val, s.rev)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		Logger(s.ctx).Warn("snapshot not kept", "key", s.key, logKeyErr, err)
	}
}
