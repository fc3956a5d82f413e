// Package secrets keeps function secrets apart from the spec.
//
// A spec's env is stored in yard_functions, which every gateway and agent
// reads, so it is no place for a password. Secrets live in the key-value
// bucket yard_secrets (wire.BucketSecrets, one revision kept), one entry per
// secret under the key <function>.<NAME>. Admins write it (yard secrets,
// yard deploy --secret); agents read it; nothing else should be granted it.
//
// The contract with the agents: before an agent starts an instance of a
// function it calls Load for that function and adds every secret to the
// instance's environment as NAME=value, after the spec's env, so a secret
// wins over an env variable of the same name. Secret names obey the rules
// of env names (registry.ValidateEnvName): POSIX names, and never NATS_URL,
// NATS_CREDS or YARD_*, which the agent sets itself. A change to a secret
// reaches instances started afterwards; running ones keep what they had.
//
// Values are bounded (MaxValueSize) and hold no NUL byte, which no process
// environment can carry. No error of this package holds a value, and the
// package never logs.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// MaxValueSize is the largest secret value, in bytes.
const MaxValueSize = 64 << 10

var (
	// ErrInvalid is wrapped by every error that rejects a function name,
	// a secret name or a value; nothing is stored then.
	ErrInvalid = errors.New("invalid secret")
	// ErrNotFound is returned by Remove for a secret that is not set.
	ErrNotFound = errors.New("secret not found")
)

// Key is the bucket key of a function's secret: <fn>.<name>.
func Key(fn, name string) string { return fn + "." + name }

// Validate checks a function name and a secret name without a value.
func Validate(fn, name string) error {
	if err := wire.ValidateName(fn); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := registry.ValidateEnvName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// ValidateValue checks a value's size and bytes. The error names the
// secret, never the value.
func ValidateValue(name, value string) error {
	switch {
	case len(value) > MaxValueSize:
		return fmt.Errorf("%w: %s: the value is %d bytes, the limit is %d", ErrInvalid, name, len(value), MaxValueSize)
	case strings.IndexByte(value, 0) >= 0:
		return fmt.Errorf("%w: %s: the value holds a NUL byte", ErrInvalid, name)
	}
	return nil
}

// config is the bucket as Set creates it when missing.
var config = jetstream.KeyValueConfig{
	Bucket:      wire.BucketSecrets,
	Description: "Switchyard function secrets, <function>.<NAME>; read by agents only",
	History:     1,
	Storage:     jetstream.FileStorage,
}

// Set stores the secret name of function fn, creating the bucket when
// missing.
func Set(ctx context.Context, js jetstream.JetStream, fn, name, value string) error {
	if err := Validate(fn, name); err != nil {
		return err
	}
	if err := ValidateValue(name, value); err != nil {
		return err
	}
	kv, err := jskv.Open(ctx, js, config)
	if err != nil {
		return err
	}
	if _, err := kv.PutString(ctx, Key(fn, name), value); err != nil {
		return fmt.Errorf("store secret %s of %s: %w", name, fn, err)
	}
	return nil
}

// Names lists the names of fn's secrets, sorted; never their values.
func Names(ctx context.Context, js jetstream.JetStream, fn string) ([]string, error) {
	if err := wire.ValidateName(fn); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	kv, err := open(ctx, js)
	if kv == nil || err != nil {
		return nil, err
	}
	lister, err := kv.ListKeysFiltered(ctx, Key(fn, "*"))
	if err != nil {
		return nil, fmt.Errorf("list secrets of %s: %w", fn, err)
	}
	var names []string
	for k := range lister.Keys() {
		names = append(names, strings.TrimPrefix(k, fn+"."))
	}
	slices.Sort(names)
	return names, nil
}

// Remove deletes the secret name of fn, or returns ErrNotFound.
func Remove(ctx context.Context, js jetstream.JetStream, fn, name string) error {
	if err := Validate(fn, name); err != nil {
		return err
	}
	kv, err := open(ctx, js)
	if err != nil {
		return err
	}
	if kv == nil {
		return fmt.Errorf("%w: %s of %s", ErrNotFound, name, fn)
	}
	key := Key(fn, name)
	if _, err := kv.Get(ctx, key); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %s of %s", ErrNotFound, name, fn)
	} else if err != nil {
		return fmt.Errorf("read secret %s of %s: %w", name, fn, err)
	}
	// Purge, not Delete: no revision of the value stays behind.
	if err := kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("remove secret %s of %s: %w", name, fn, err)
	}
	return nil
}

// Load returns every secret of fn, name to value, for an agent to put in
// an instance's environment. An entry that would not pass Set (written
// around it, with the nats CLI) fails the load, naming its key, so that an
// instance never starts with part of its secrets.
func Load(ctx context.Context, js jetstream.JetStream, fn string) (map[string]string, error) {
	if err := wire.ValidateName(fn); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out := map[string]string{}
	kv, err := open(ctx, js)
	if kv == nil || err != nil {
		return out, err
	}
	w, err := kv.Watch(ctx, Key(fn, "*"), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("load secrets of %s: %w", fn, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("load secrets of %s: %w", fn, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("load secrets of %s: %w", fn, jskv.ErrWatchClosed)
			}
			if e == nil { // every current entry has been seen
				return out, nil
			}
			name := strings.TrimPrefix(e.Key(), fn+".")
			if err := registry.ValidateEnvName(name); err != nil {
				return nil, fmt.Errorf("%w: key %s in %s: %w", ErrInvalid, e.Key(), wire.BucketSecrets, err)
			}
			if err := ValidateValue(name, string(e.Value())); err != nil {
				return nil, fmt.Errorf("key %s in %s: %w", e.Key(), wire.BucketSecrets, err)
			}
			out[name] = string(e.Value())
		}
	}
}

// open returns the bucket, or nil when it does not exist yet: reading
// never creates it, since agents only read.
func open(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, wire.BucketSecrets)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", wire.BucketSecrets, err)
	}
	return kv, nil
}

// Ensure creates yard_secrets when missing, so that the platform makes it
// once and agents, which may only read it, find it.
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	_, err := jskv.Open(ctx, js, config)
	return err
}
