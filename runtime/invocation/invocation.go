// Package invocation keeps Switchyard's asynchronous invocations durable.
//
// An accepted invocation is a message on yard.async.<name> in the
// work-queue stream YARD_ASYNC, plus a record in the key-value bucket
// yard_results that says where it stands: queued, running, succeeded,
// failed (an attempt failed and another is scheduled) or dead (every attempt
// failed; the payload is in the stream YARD_DLQ). Records expire after the
// bucket's TTL (24h by default); dead letters stay until replayed or aged
// out of YARD_DLQ.
//
// Callers submit and read (the gateway, the CLI); function instances run
// the work and write the outcome (package fn). Both go through Store.
package invocation

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Status of an invocation.
type Status string

const (
	Queued    Status = "queued"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed" // the last attempt failed; another is scheduled
	Dead      Status = "dead"   // every attempt failed; see the DLQ
)

// Final reports whether nothing more will happen to the invocation.
func (s Status) Final() bool { return s == Succeeded || s == Dead }

// Errors of the package.
var (
	ErrNotFound = errors.New("invocation not found")
	// ErrConflict: an idempotency key was reused with another body or
	// another function.
	ErrConflict = errors.New("idempotency key reused with a different request")
)

// Record is the state of one invocation, stored as JSON under its id in
// yard_results and sent as the completion event on yard.results.<name>.<id>.
type Record struct {
	ID            string          `json:"id"`
	Function      string          `json:"function"`
	Status        Status          `json:"status"`
	Attempts      int             `json:"attempts"`
	MaxAttempts   int             `json:"max_attempts,omitempty"`
	RequestID     string          `json:"request_id,omitempty"`
	BodyHash      string          `json:"body_hash,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	StartedAt     time.Time       `json:"started_at,omitzero"`
	FinishedAt    time.Time       `json:"finished_at,omitzero"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *wire.Error     `json:"error,omitempty"`
	// DLQSeq is the dead letter's sequence in YARD_DLQ, for replay.
	DLQSeq uint64 `json:"dlq_seq,omitempty"`
	// Seq is the YARD_ASYNC sequence of the message the record is about,
	// so a redelivery of an already settled message is recognised, and an
	// idempotent resubmit knows the message is stored.
	Seq uint64 `json:"seq,omitempty"`
}

// ValidateID checks an invocation id: 1 to 64 characters of A-Z a-z 0-9
// '-' '_'. Such an id is one subject token and a valid key-value key, so
// it can name the record, the completion event and the dead letter alike.
func ValidateID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("an invocation id is 1 to 64 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return errors.New("an invocation id may hold only A-Z a-z 0-9 - _")
		}
	}
	return nil
}

// NewID returns a fresh id part: 128 random bits, so ids cannot be guessed
// from one another (a record is readable by anyone who knows its id).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Invocations accepted for an owner (an authenticated HTTP caller) carry
// the owner in their id, since the record itself is rewritten by the
// function's instance, which knows nothing of callers: the id starts with
// 'o' and ownerTagLen hex characters of a hash of the owner. The gateway
// answers a read of such an id only to that owner (OwnedBy); ids without
// an owner (anonymous callers, the CLI, plain NATS) stay readable by
// whoever knows them, as before. The tag is a plain hash: it says whose an
// id is to someone who can name the owner, and nothing more.
const ownerTagLen = 16

// ownerTag is the tag of owner in the ids of its invocations.
func ownerTag(owner string) string {
	sum := sha256.Sum256([]byte("switchyard invocation owner\x00" + owner))
	return hex.EncodeToString(sum[:ownerTagLen/2])
}

// newOwnedID is NewID for an owner: 'o', the owner's tag and 96 random
// bits (41 characters, so that "-<stream sequence>" still fits in 64).
func newOwnedID(owner string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "o" + ownerTag(owner) + hex.EncodeToString(b[:])
}

// ownedTag returns the owner tag an id carries, or "" for an id without
// an owner.
func ownedTag(id string) string {
	if len(id) < 1+ownerTagLen || id[0] != 'o' {
		return ""
	}
	tag := id[1 : 1+ownerTagLen]
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return tag
}

// OwnedBy reports whether a caller who is owner ("" for anonymous) may
// read invocation id: an id without an owner is anyone's; an owned id
// only its owner's.
func OwnedBy(id, owner string) bool {
	tag := ownedTag(id)
	if tag == "" {
		return true
	}
	return owner != "" && subtle.ConstantTimeCompare([]byte(tag), []byte(ownerTag(owner))) == 1
}

// BodyHash identifies a request body for idempotency checks.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}

// IDForKey derives the invocation id of an idempotency key, so that the
// same key for the same function always names the same invocation.
func IDForKey(function, key string) string {
	sum := sha256.Sum256([]byte(function + "\x00" + key))
	return "k" + hex.EncodeToString(sum[:15])
}

// idForOwnerKey is IDForKey for an owner: owners never share an
// idempotency key, so one owner's key can neither find nor block
// another's invocation.
func idForOwnerKey(function, owner, key string) string {
	sum := sha256.Sum256([]byte(function + "\x00" + owner + "\x00" + key))
	return "o" + ownerTag(owner) + hex.EncodeToString(sum[:12])
}

// ValidateKey checks a client's Idempotency-Key: 1 to 255 printable ASCII
// characters.
func ValidateKey(key string) error {
	if key == "" || len(key) > 255 {
		return errors.New("Idempotency-Key must be 1 to 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return errors.New("Idempotency-Key may hold only printable ASCII without spaces")
		}
	}
	return nil
}

// Retry policy defaults.
var (
	DefaultMaxAttempts = 5
	DefaultBackoff     = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
)

// Delay is the wait before attempt n+1 after attempt n (1-based) failed:
// the n-th backoff entry, or the last one when the list is shorter.
func Delay(backoff []time.Duration, attempt int) time.Duration {
	if len(backoff) == 0 {
		return 0
	}
	i := min(max(attempt-1, 0), len(backoff)-1)
	return backoff[i]
}
