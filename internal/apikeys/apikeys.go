// Package apikeys keeps the gateway's API keys in the JetStream key-value
// bucket yard_keys (wire.BucketKeys), one entry per key id, and lets the
// gateways look them up in memory.
//
// A key reads yk_<id>_<secret>:
//
//   - id: 12 characters of [a-z0-9], random; it names the entry and the
//     principal (audit records, owner of async results), and is not secret;
//   - secret: 32 random bytes in lower-case base32 without padding, 52
//     characters of [a-z2-7], so the whole key is one word that a
//     double-click selects.
//
// The bucket stores a Record: the id, a name people chose, the SHA-256 of
// the secret's text (hex), the functions the key grants, its rate limit and
// the times it was created and revoked. Never the key itself: the key is
// shown once, by Create. A revoked key stays listed, with its revocation
// time, and is refused by every gateway as soon as its watch sees the
// update (Cache).
//
// Admins write the bucket (yard keys); gateways only read and watch it.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// The shape of a key.
const (
	Prefix       = "yk_"
	IDLen        = 12
	SecretBytes  = 32
	SecretLen    = 52 // base32 of SecretBytes, unpadded
	KeyLen       = len(Prefix) + IDLen + 1 + SecretLen
	MaxNameLen   = 64
	AllFunctions = "*"
)

// Errors of the package.
var (
	// ErrMalformed: the text is not a key of the documented shape.
	ErrMalformed = errors.New("malformed API key")
	// ErrUnknown: no key has this id, or its secret does not match.
	ErrUnknown = errors.New("unknown API key")
	// ErrRevoked: the key was revoked.
	ErrRevoked = errors.New("API key revoked")
	// ErrNotFound: Revoke found no key by that id or name.
	ErrNotFound = errors.New("no such API key")
	// ErrAmbiguous: Revoke was given a name that several keys share.
	ErrAmbiguous = errors.New("several API keys have this name")
	// ErrInvalid wraps every error about a bad name, function list or rate.
	ErrInvalid = errors.New("invalid")
)

// secretEncoding is base32 in lower case, unpadded. Parse also requires
// the canonical encoding (no stray trailing bits), so one secret has one
// spelling.
var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Record is one key's entry in yard_keys.
type Record struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the key's secret part (its text).
	Hash string `json:"hash"`
	// Functions are the functions the key grants; "*" grants every
	// function whose policy is authenticated.
	Functions []string `json:"functions"`
	// Rate is requests per second and Burst the bucket size; zero takes
	// the gateway's default.
	Rate    float64   `json:"rate,omitempty"`
	Burst   int       `json:"burst,omitempty"`
	Created time.Time `json:"created"`
	Revoked time.Time `json:"revoked,omitzero"`
	// Operator keys also see how the platform runs, through the gateway's
	// /ops routes: instances, logs, dead letters and their replay. They
	// always grant every function.
	Operator bool `json:"operator,omitempty"`
}

// Option changes the key Create makes.
type Option func(*Record)

// AsOperator makes an operator key (see Record.Operator); its functions
// become "*".
func AsOperator() Option {
	return func(r *Record) {
		r.Operator = true
		r.Functions = []string{AllFunctions}
	}
}

// IsRevoked reports whether the key was revoked.
func (r *Record) IsRevoked() bool { return !r.Revoked.IsZero() }

// Parse splits a key into its id and secret, checking every character:
// the prefix, the id's alphabet, the separator and the secret's strict
// base32 encoding of exactly SecretBytes bytes. The error is always
// ErrMalformed and never holds the text.
func Parse(key string) (id, secret string, err error) {
	if len(key) != KeyLen || !strings.HasPrefix(key, Prefix) || key[len(Prefix)+IDLen] != '_' {
		return "", "", ErrMalformed
	}
	id = key[len(Prefix) : len(Prefix)+IDLen]
	secret = key[len(Prefix)+IDLen+1:]
	if !ValidID(id) {
		return "", "", ErrMalformed
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", "", ErrMalformed
		}
	}
	if b, err := secretEncoding.DecodeString(secret); err != nil || len(b) != SecretBytes || secretEncoding.EncodeToString(b) != secret {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// ValidID reports whether s is a key id: IDLen characters of [a-z0-9].
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidateName checks a key's name: 1 to 64 characters of [a-z0-9_-],
// starting with a letter; names appear in listings and audit records.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen || name[0] < 'a' || name[0] > 'z' {
		return fmt.Errorf("%w: key name %q: 1 to %d characters of a-z 0-9 _ -, starting with a letter", ErrInvalid, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: key name %q: 1 to %d characters of a-z 0-9 _ -, starting with a letter", ErrInvalid, name, MaxNameLen)
		}
	}
	return nil
}

// ValidateFunctions checks the functions a key grants: at least one, each
// "*" or a function name.
func ValidateFunctions(fns []string) error {
	if len(fns) == 0 {
		return fmt.Errorf("%w: a key grants at least one function (or %q for all)", ErrInvalid, AllFunctions)
	}
	for _, f := range fns {
		if f == AllFunctions {
			continue
		}
		if err := wire.ValidateName(f); err != nil {
			return fmt.Errorf("%w: function %w", ErrInvalid, err)
		}
	}
	return nil
}

// ParseRate reads a rate limit: "<n>/s", "<n>/m" or "<n>/h" (a bare number
// is per second), n a positive decimal. It returns requests per second and
// the default burst: twice the per-second rate, at least 1. "" is 0, 0:
// the gateway's default.
func ParseRate(s string) (perSecond float64, burst int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	per := 1.0
	switch unit {
	case "", "s":
	case "m":
		per = 60
	case "h":
		per = 3600
	default:
		return 0, 0, fmt.Errorf("%w: rate %q: want <n>/s, <n>/m or <n>/h, like 50/s", ErrInvalid, s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) || n > 1e9 || strings.ContainsAny(num, "xXpPeE_") {
		return 0, 0, fmt.Errorf("%w: rate %q: want a positive number of requests, like 50/s", ErrInvalid, s)
	}
	perSecond = n / per
	return perSecond, max(1, int(math.Ceil(2*perSecond))), nil
}

// FormatRate prints a per-second rate the way ParseRate reads it.
func FormatRate(perSecond float64) string {
	if perSecond <= 0 {
		return ""
	}
	if perSecond < 1 {
		if m := perSecond * 60; m == math.Trunc(m) {
			return strconv.FormatFloat(m, 'f', -1, 64) + "/m"
		}
		if h := perSecond * 3600; math.Abs(h-math.Round(h)) < 1e-6 {
			return strconv.FormatFloat(math.Round(h), 'f', -1, 64) + "/h"
		}
	}
	return strconv.FormatFloat(perSecond, 'f', -1, 64) + "/s"
}

// HashSecret is what a Record keeps of a secret: hex SHA-256 of its text.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether secret is this key's.
func (r *Record) Matches(secret string) bool {
	got := HashSecret(secret)
	return subtle.ConstantTimeCompare([]byte(got), []byte(r.Hash)) == 1
}

// config is the bucket as Open creates it when missing.
var config = jetstream.KeyValueConfig{
	Bucket:      wire.BucketKeys,
	Description: "Switchyard gateway API keys, hashed, one per key id",
	History:     1,
	Storage:     jetstream.FileStorage,
}

// Open returns the bucket yard_keys, creating it when missing.
func Open(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	return jskv.Open(ctx, js, config)
}

// Ensure creates yard_keys when missing, for the platform's bootstrap
// (gateways may only read it).
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	_, err := Open(ctx, js)
	return err
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID draws IDLen characters of idAlphabet uniformly (rejection
// sampling keeps every character equally likely).
func newID() (string, error) {
	out := make([]byte, 0, IDLen)
	var buf [32]byte
	for len(out) < IDLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < 256-256%len(idAlphabet) && len(out) < IDLen {
				out = append(out, idAlphabet[int(b)%len(idAlphabet)])
			}
		}
	}
	return string(out), nil
}

// Create makes a new key named name that grants functions at rate (see
// ParseRate; "" for the gateway's default), stores its record and returns
// the key. The key is not kept anywhere: this is the only time it is seen.
func Create(ctx context.Context, js jetstream.JetStream, name string, functions []string, rate string, opts ...Option) (key string, rec Record, err error) {
	if err := ValidateName(name); err != nil {
		return "", Record{}, err
	}
	var probe Record
	for _, o := range opts {
		o(&probe)
	}
	if probe.Operator {
		functions = probe.Functions
	}
	if err := ValidateFunctions(functions); err != nil {
		return "", Record{}, err
	}
	perSecond, burst, err := ParseRate(rate)
	if err != nil {
		return "", Record{}, err
	}
	kv, err := Open(ctx, js)
	if err != nil {
		return "", Record{}, err
	}
	fns := slices.Clone(functions)
	slices.Sort(fns)
	fns = slices.Compact(fns)
	if slices.Contains(fns, AllFunctions) {
		fns = []string{AllFunctions}
	}
	// An id collision is all but impossible; Create refuses to overwrite,
	// so one would cost a retry, never another key's entry.
	for range 3 {
		id, err := newID()
		if err != nil {
			return "", Record{}, err
		}
		raw := make([]byte, SecretBytes)
		if _, err := rand.Read(raw); err != nil {
			return "", Record{}, err
		}
		secret := secretEncoding.EncodeToString(raw)
		rec = Record{ID: id, Name: name, Hash: HashSecret(secret), Functions: fns, Rate: perSecond, Burst: burst,
			Created: time.Now().UTC().Truncate(time.Second)}
		for _, o := range opts {
			o(&rec)
		}
		data, _ := json.Marshal(rec)
		_, err = kv.Create(ctx, id, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return "", Record{}, fmt.Errorf("store API key %s: %w", name, err)
		}
		return Prefix + id + "_" + secret, rec, nil
	}
	return "", Record{}, errors.New("could not draw an unused key id")
}

// List returns every key's record, revoked ones included, oldest first.
func List(ctx context.Context, js jetstream.JetStream) ([]Record, error) {
	kv, err := Open(ctx, js)
	if err != nil {
		return nil, err
	}
	return list(ctx, kv)
}

func list(ctx context.Context, kv jetstream.KeyValue) ([]Record, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []Record
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list API keys: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list API keys: %w", jskv.ErrWatchClosed)
			}
			if e == nil {
				slices.SortFunc(out, func(a, b Record) int {
					if c := a.Created.Compare(b.Created); c != 0 {
						return c
					}
					return strings.Compare(a.ID, b.ID)
				})
				return out, nil
			}
			if rec, err := Decode(e.Key(), e.Value()); err == nil {
				out = append(out, rec)
			}
		}
	}
}

// Decode reads an entry of the bucket, checking that it is usable: its
// id matches its key, and its hash and functions are well formed. An
// entry written around Create (with the nats CLI) that fails is refused.
func Decode(key string, data []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("%w: entry %s: %v", ErrInvalid, key, err)
	}
	switch {
	case rec.ID != key || !ValidID(rec.ID):
		return Record{}, fmt.Errorf("%w: entry %s holds id %q", ErrInvalid, key, rec.ID)
	case len(rec.Hash) != 64 || strings.Trim(rec.Hash, "0123456789abcdef") != "":
		return Record{}, fmt.Errorf("%w: entry %s: hash is not hex SHA-256", ErrInvalid, key)
	case rec.Rate < 0 || rec.Burst < 0 || math.IsNaN(rec.Rate) || math.IsInf(rec.Rate, 0):
		return Record{}, fmt.Errorf("%w: entry %s: negative rate", ErrInvalid, key)
	}
	if err := ValidateFunctions(rec.Functions); err != nil {
		return Record{}, fmt.Errorf("entry %s: %w", key, err)
	}
	return rec, nil
}

// Revoke marks the key with id or name idOrName revoked and returns its
// record. An id is tried first, then a name, which must be unambiguous.
// Revoking a revoked key changes nothing. Every gateway refuses the key
// once its watch sees the update (well within 2 s on a healthy system).
func Revoke(ctx context.Context, js jetstream.JetStream, idOrName string) (Record, error) {
	kv, err := Open(ctx, js)
	if err != nil {
		return Record{}, err
	}
	id := idOrName
	if !ValidID(id) {
		id = ""
	} else if _, err := kv.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
		id = ""
	} else if err != nil {
		return Record{}, fmt.Errorf("read API key %s: %w", idOrName, err)
	}
	if id == "" {
		recs, err := list(ctx, kv)
		if err != nil {
			return Record{}, err
		}
		var ids []string
		for _, r := range recs {
			if r.Name == idOrName && !r.IsRevoked() {
				ids = append(ids, r.ID)
			}
		}
		switch len(ids) {
		case 0:
			return Record{}, fmt.Errorf("%w: %q is neither a key id nor the name of an unrevoked key", ErrNotFound, idOrName)
		case 1:
			id = ids[0]
		default:
			return Record{}, fmt.Errorf("%w: %q names keys %s; revoke by id", ErrAmbiguous, idOrName, strings.Join(ids, ", "))
		}
	}
	// Compare-and-set, so a concurrent revoke or edit is never lost.
	for {
		e, err := kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return Record{}, fmt.Errorf("read API key %s: %w", id, err)
		}
		rec, err := Decode(id, e.Value())
		if err != nil {
			return Record{}, err
		}
		if rec.IsRevoked() {
			return rec, nil
		}
		rec.Revoked = time.Now().UTC()
		data, _ := json.Marshal(rec)
		_, err = kv.Update(ctx, id, data, e.Revision())
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Record{}, fmt.Errorf("revoke API key %s: %w", id, err)
		}
	}
}
