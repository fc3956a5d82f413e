package fn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

// Errors of the key-value API. Match them with errors.Is.
var (
	// ErrKeyNotFound: the key does not exist (or was deleted).
	ErrKeyNotFound = errors.New("fn: key not found")
	// ErrKeyExists: Create found the key already there.
	ErrKeyExists = errors.New("fn: key exists")
	// ErrRevisionConflict: Update's revision is not the key's latest; someone
	// else changed it since it was read.
	ErrRevisionConflict = errors.New("fn: revision conflict (the key changed since it was read)")
)

// UpdateJSONAttempts bounds how often UpdateJSON re-reads and retries after
// losing a race with another writer.
const UpdateJSONAttempts = 100

var bucketNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// KV is a JetStream key-value bucket with optimistic concurrency: every
// value has a revision, and Update writes only over the revision it names.
// It is safe for concurrent use.
type KV struct {
	bucket string
	kv     jetstream.KeyValue
}

type kvCacheKey struct {
	nc     *nats.Conn
	bucket string
}

type kvCacheEntry struct {
	once sync.Once
	kv   *KV
	err  error
}

var kvCache sync.Map // kvCacheKey -> *kvCacheEntry

// OpenKV returns the bucket over the NATS connection of ctx (a handler's
// context, or one from WithConn). A handler may open only the buckets its
// function declares in Config.Buckets; the platform creates them (file
// storage, one revision of history per key). Handles are cached per
// connection and bucket, so calling OpenKV on every request is cheap. A
// bucket name holds letters, digits, - and _.
func OpenKV(ctx context.Context, bucket string) (*KV, error) {
	if !bucketNameRe.MatchString(bucket) {
		return nil, fmt.Errorf("fn: invalid bucket name %q: use letters, digits, - and _ only", bucket)
	}
	if err := checkBucket(ctx, bucket); err != nil {
		return nil, err
	}
	nc := connFrom(ctx)
	if nc == nil {
		return nil, ErrNoConn
	}
	key := kvCacheKey{nc, bucket}
	v, _ := kvCache.LoadOrStore(key, &kvCacheEntry{})
	e := v.(*kvCacheEntry)
	e.once.Do(func() { e.kv, e.err = openKV(ctx, nc, bucket) })
	if e.err != nil {
		// Do not cache failures: the next call tries again.
		kvCache.CompareAndDelete(key, e)
		return nil, e.err
	}
	if nc.IsClosed() {
		kvCache.CompareAndDelete(key, e)
		return nil, fmt.Errorf("fn: open bucket %s: %w", bucket, nats.ErrConnectionClosed)
	}
	return e.kv, nil
}

func openKV(ctx context.Context, nc *nats.Conn, bucket string) (*KV, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("fn: open bucket %s: %w", bucket, err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("fn: bucket %s does not exist: the platform creates the buckets a function declares in Config.Buckets", bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("fn: open bucket %s: %w", bucket, err)
	}
	return &KV{bucket: bucket, kv: kv}, nil
}

// Bucket is the bucket's name.
func (k *KV) Bucket() string { return k.bucket }

// Get returns the value of key and its revision, or ErrKeyNotFound.
func (k *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return nil, 0, k.wrap("get", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create writes key only if it does not exist (or was deleted), and returns
// the new revision; ErrKeyExists otherwise.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Create(ctx, key, value)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%w: %s in %s", ErrKeyExists, key, k.bucket)
		}
		return 0, k.wrap("create", key, err)
	}
	return rev, nil
}

// Update writes key only if its latest revision is revision, and returns
// the new revision; ErrRevisionConflict otherwise.
func (k *KV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := k.kv.Update(ctx, key, value, revision)
	if err != nil {
		if invocation.WrongLastSequence(err) {
			return 0, fmt.Errorf("%w: %s in %s (revision %d)", ErrRevisionConflict, key, k.bucket, revision)
		}
		return 0, k.wrap("update", key, err)
	}
	return rev, nil
}

// Put writes key whatever its revision, and returns the new revision.
func (k *KV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Put(ctx, key, value)
	if err != nil {
		return 0, k.wrap("put", key, err)
	}
	return rev, nil
}

// Delete removes key. Deleting a missing key is not an error.
func (k *KV) Delete(ctx context.Context, key string) error {
	if err := k.kv.Delete(ctx, key); err != nil {
		return k.wrap("delete", key, err)
	}
	return nil
}

// DeleteRevision removes key only if its latest revision is revision
// (as Get returned it); ErrRevisionConflict when it changed meanwhile.
func (k *KV) DeleteRevision(ctx context.Context, key string, revision uint64) error {
	if err := k.kv.Delete(ctx, key, jetstream.LastRevision(revision)); err != nil {
		if invocation.WrongLastSequence(err) {
			return fmt.Errorf("%w: %s in %s", ErrRevisionConflict, key, k.bucket)
		}
		return k.wrap("delete", key, err)
	}
	return nil
}

// Keys lists the bucket's keys in order; an empty bucket gives an empty
// slice.
func (k *KV) Keys(ctx context.Context) ([]string, error) {
	keys, err := k.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fn: list keys of %s: %w", k.bucket, err)
	}
	return keys, nil
}

func (k *KV) wrap(op, key string, err error) error {
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %s in %s", ErrKeyNotFound, key, k.bucket)
	}
	return fmt.Errorf("fn: %s %s in %s: %w", op, key, k.bucket, err)
}

// GetJSON reads key and decodes its JSON value into T; ErrKeyNotFound
// when it is missing.
func GetJSON[T any](ctx context.Context, kv *KV, key string) (T, uint64, error) {
	var v T
	data, rev, err := kv.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, 0, fmt.Errorf("fn: decode %s in %s: %w", key, kv.bucket, err)
	}
	return v, rev, nil
}

// UpdateJSON changes the JSON value at key safely under concurrency: it
// reads the value (the zero T and exists=false when the key is missing),
// lets change modify it, and writes it back only if nobody wrote the key in
// between (Create when missing, Update on the revision read). When another
// writer won, it reads again and re-applies change, up to
// UpdateJSONAttempts times with a small jittered backoff, as long as ctx
// lasts; change must therefore depend only on the value it is given. If
// change returns an error, nothing is written and UpdateJSON returns that
// error, with the value as change left it. It returns the value written.
func UpdateJSON[T any](ctx context.Context, kv *KV, key string, change func(v *T, exists bool) error) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		var v T
		exists := true
		data, rev, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, ErrKeyNotFound):
			exists = false
		case err != nil:
			return zero, err
		default:
			if err := json.Unmarshal(data, &v); err != nil {
				return zero, fmt.Errorf("fn: decode %s in %s: %w", key, kv.bucket, err)
			}
		}
		if err := change(&v, exists); err != nil {
			return v, err
		}
		out, err := json.Marshal(v)
		if err != nil {
			return zero, fmt.Errorf("fn: encode %s in %s: %w", key, kv.bucket, err)
		}
		if exists {
			_, err = kv.Update(ctx, key, out, rev)
		} else {
			_, err = kv.Create(ctx, key, out)
		}
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, ErrRevisionConflict) && !errors.Is(err, ErrKeyExists) {
			return zero, err
		}
		if attempt+1 >= UpdateJSONAttempts {
			return zero, fmt.Errorf("fn: update %s in %s: gave up after %d attempts: %w", key, kv.bucket, UpdateJSONAttempts, err)
		}
		// Full jitter, growing from 1ms to at most 50ms.
		limit := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
		t := time.NewTimer(time.Duration(rand.Int64N(int64(limit)) + 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("fn: update %s in %s: %w (last: %w)", key, kv.bucket, ctx.Err(), err)
		case <-t.C:
		}
	}
}
