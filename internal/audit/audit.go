// Package audit keeps who did what to the platform, when, and with which
// outcome, in the stream YARD_AUDIT (wire.StreamAudit): one JSON Event a
// message on yard.audit.<kind>, kept 90 days.
//
// Writers: the yard CLI (deploy, rollback, rm, secrets; keys and creds
// commands) with Record, a JetStream publish, so an event is stored once
// Record returns nil; the gateways publish refused requests on
// yard.audit.denied with core NATS, in the same Event JSON. Readers use
// List. An event names things, never a secret's value: callers put names
// only in Target and Detail.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Kinds of events: the last token of the subject yard.audit.<kind>.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	KindRemove   = "remove"
	KindKey      = "key"
	KindCreds    = "creds"
	KindSecret   = "secret"
	KindDenied   = "denied"
	KindOps      = "ops" // what operator keys did through the gateway
)

// OutcomeOK is the Outcome of an action that succeeded; a failed one has
// its error's text.
const OutcomeOK = "ok"

// MaxAge is how long the stream keeps an event.
const MaxAge = 90 * 24 * time.Hour

// MaxField bounds Outcome and Detail, in bytes: a long error (a refused
// deploy lists every breaking change) is cut, not refused.
const MaxField = 1024

// MaxList is the most events List returns at once.
const MaxList = 10000

// Event is one audited action.
type Event struct {
	Time time.Time `json:"time"`
	// Who did it: for the CLI the NATS user it connected as (ConnUser).
	Who string `json:"who"`
	// Action is what was done: deploy, rollback, remove, secret.set,
	// secret.remove, …
	Action string `json:"action"`
	// Target is what it was done to, usually a function name.
	Target string `json:"target,omitempty"`
	// Outcome is OutcomeOK or the error.
	Outcome string `json:"outcome"`
	// Detail adds what else matters (the version deployed, a secret's
	// name); never a secret's value.
	Detail string `json:"detail,omitempty"`
}

// Subject is where events of a kind are published: yard.audit.<kind>.
func Subject(kind string) string { return wire.AuditPrefix + kind }

// Outcome is OutcomeOK for a nil error, else the error's text.
func Outcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	return err.Error()
}

// config is the stream as Ensure creates it when missing.
var config = jetstream.StreamConfig{
	Name:        wire.StreamAudit,
	Description: "Switchyard audit log: who did what, when, with which outcome",
	Subjects:    []string{wire.AuditPrefix + ">"},
	Retention:   jetstream.LimitsPolicy,
	Storage:     jetstream.FileStorage,
	MaxAge:      MaxAge,
}

// Ensure creates the stream YARD_AUDIT when it is missing; an existing one
// is left as an operator may have tuned it.
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	_, err := jskv.EnsureStream(ctx, js, config)
	return err
}

// Record stores ev on yard.audit.<kind>, creating the stream when missing.
// A zero ev.Time is now; Outcome and Detail longer than MaxField are cut.
func Record(ctx context.Context, js jetstream.JetStream, kind string, ev Event) error {
	if err := validKind(kind); err != nil {
		return err
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	ev.Outcome = cut(ev.Outcome)
	ev.Detail = cut(ev.Detail)
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = js.Publish(ctx, Subject(kind), data)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// No stream listens yet: the first event creates it.
		if err = Ensure(ctx, js); err == nil {
			_, err = js.Publish(ctx, Subject(kind), data)
		}
	}
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", ev.Action, ev.Target, err)
	}
	return nil
}

// List returns the events stored since since (all when zero), oldest
// first; when there are more than limit, the newest limit of them. A limit
// of 0 or above MaxList is MaxList. With no stream yet it returns none.
// Listing never creates the stream.
func List(ctx context.Context, js jetstream.JetStream, since time.Time, limit int) ([]Event, error) {
	if limit <= 0 || limit > MaxList {
		limit = MaxList
	}
	stream, err := js.Stream(ctx, wire.StreamAudit)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", wire.StreamAudit, err)
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.AuditPrefix + ">"}}
	if !since.IsZero() {
		occ.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		occ.OptStartTime = &since
	}
	cons, pending, err := ordered(ctx, stream, occ)
	if err != nil || pending == 0 {
		return nil, err
	}
	if pending > uint64(limit) {
		// Skip to the newest limit events rather than read them all.
		// Sequences may have gaps (deleted messages); the time check
		// below keeps anything older than since out all the same.
		info, err := stream.Info(ctx)
		if err != nil {
			return nil, err
		}
		if last := info.State.LastSeq; last >= uint64(limit) {
			occ.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			occ.OptStartTime = nil
			occ.OptStartSeq = last - uint64(limit) + 1
			if cons, pending, err = ordered(ctx, stream, occ); err != nil || pending == 0 {
				return nil, err
			}
		}
	}
	var out []Event
	for pending > 0 && len(out) < limit {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", wire.StreamAudit, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		pending = meta.NumPending
		if !since.IsZero() && meta.Timestamp.Before(since) {
			continue
		}
		out = append(out, decode(msg, meta))
	}
	return out, nil
}

// ordered makes an ordered consumer and says how many messages it has.
func ordered(ctx context.Context, stream jetstream.Stream, occ jetstream.OrderedConsumerConfig) (jetstream.Consumer, uint64, error) {
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return nil, 0, err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	return cons, info.NumPending, nil
}

// decode reads one event. A message that is not one (anyone with publish
// rights on yard.audit.> may write) is still listed, as what it is.
func decode(msg jetstream.Msg, meta *jetstream.MsgMetadata) Event {
	var ev Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		ev = Event{Outcome: "?", Detail: fmt.Sprintf("not an audit event (%d bytes on %s)", len(msg.Data()), msg.Subject())}
	}
	if ev.Time.IsZero() {
		ev.Time = meta.Timestamp
	}
	ev.Time = ev.Time.UTC()
	if ev.Action == "" {
		ev.Action = strings.TrimPrefix(msg.Subject(), wire.AuditPrefix)
	}
	return ev
}

// ConnUser is who a connection acts as, for Event.Who: the user the
// server says it authenticated (the user name, or the user's public key
// with JWT credentials), else the name it connected with, else "admin",
// which is what a server without users makes of every client.
func ConnUser(nc *nats.Conn) string {
	msg, err := nc.Request("$SYS.REQ.USER.INFO", nil, 500*time.Millisecond)
	if err == nil {
		var reply struct {
			Data struct {
				User string `json:"user"`
			} `json:"data"`
		}
		if json.Unmarshal(msg.Data, &reply) == nil && reply.Data.User != "" {
			return reply.Data.User
		}
	}
	if nc.Opts.User != "" {
		return nc.Opts.User
	}
	return "admin"
}

func validKind(kind string) error {
	if kind == "" {
		return errors.New("audit: empty kind")
	}
	for i := 0; i < len(kind); i++ {
		c := kind[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("audit: kind %q: only a-z, 0-9 and '-'", kind)
		}
	}
	return nil
}

// cut shortens s to MaxField bytes on a rune boundary.
func cut(s string) string {
	if len(s) <= MaxField {
		return s
	}
	i := MaxField
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
