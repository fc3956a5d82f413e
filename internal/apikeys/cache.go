package apikeys

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
)

// Cache mirrors yard_keys in memory for a gateway: a KV watch applies
// every create and revocation as JetStream stores it, so a revoked key is
// refused by every gateway within one watch round trip, and the request
// path never touches JetStream. A watch that ends (the server restarted)
// is started again, and the mirror rebuilt from what it then delivers.
type Cache struct {
	mu    sync.RWMutex
	keys  map[string]Record
	onErr func(key string, err error)

	ready  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// NewCache opens yard_keys, starts the watch and returns once the mirror
// holds every current key, or ctx ends. onErr, when not nil, hears of
// entries that are not usable records (they are left out) and of watch
// failures.
//
// The cache only reads: a gateway's NATS user may not create platform
// buckets. While the bucket does not exist (no key was ever created and
// the platform's bootstrap did not make it), the cache is empty, every
// key unknown, and it looks for the bucket again every second.
func NewCache(ctx context.Context, js jetstream.JetStream, onErr func(key string, err error)) (*Cache, error) {
	if onErr == nil {
		onErr = func(string, error) {}
	}
	kv, err := js.KeyValue(ctx, config.Bucket)
	missing := errors.Is(err, jetstream.ErrBucketNotFound)
	if err != nil && !missing {
		return nil, fmt.Errorf("apikeys: open %s: %w", config.Bucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	c := &Cache{keys: map[string]Record{}, onErr: onErr, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	if missing {
		close(c.ready)
	}
	go func() {
		defer close(c.done)
		for kv == nil {
			select {
			case <-wctx.Done():
				return
			case <-time.After(time.Second):
			}
			kv, _ = js.KeyValue(wctx, config.Bucket)
		}
		c.follow(wctx, kv, missing)
	}()
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("apikeys: loading the keys: %w", ctx.Err())
	}
}

// Close stops the watch.
func (c *Cache) Close() {
	c.cancel()
	<-c.done
}

// follow runs watches until ctx ends. Each watch first builds a fresh
// mirror from the current values and swaps it in whole, so a key deleted
// while no watch ran does not linger.
func (c *Cache) follow(ctx context.Context, kv jetstream.KeyValue, readyAlready bool) {
	first := !readyAlready
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			c.onErr("", fmt.Errorf("watch %s: %w", kv.Bucket(), err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		fresh := map[string]Record{}
		loaded := false
		err = jskv.Follow(ctx, w, func() {
			c.mu.Lock()
			c.keys, fresh, loaded = fresh, nil, true
			c.mu.Unlock()
			if first {
				close(c.ready)
				first = false
			}
		}, func(e jetstream.KeyValueEntry) {
			var rec Record
			put := e.Operation() == jetstream.KeyValuePut
			if put {
				var err error
				if rec, err = Decode(e.Key(), e.Value()); err != nil {
					c.onErr(e.Key(), err)
					put = false
				}
			}
			if !loaded {
				if put {
					fresh[e.Key()] = rec
				} else {
					delete(fresh, e.Key())
				}
				return
			}
			c.mu.Lock()
			if put {
				c.keys[e.Key()] = rec
			} else {
				delete(c.keys, e.Key())
			}
			c.mu.Unlock()
		})
		if ctx.Err() == nil {
			c.onErr("", fmt.Errorf("watch %s: %w; starting it again", kv.Bucket(), err))
		}
	}
}

func (c *Cache) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// Lookup returns the record of key id.
func (c *Cache) Lookup(id string) (Record, bool) {
	c.mu.RLock()
	rec, ok := c.keys[id]
	c.mu.RUnlock()
	return rec, ok
}

// Len is how many keys the mirror holds, revoked ones included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.keys)
}

// Verify checks a key presented by a client: ErrMalformed, ErrUnknown
// (no such id, or another secret: the two are not told apart), ErrRevoked
// (only once the secret matched), or the key's record.
func (c *Cache) Verify(key string) (Record, error) {
	id, secret, err := Parse(key)
	if err != nil {
		return Record{}, err
	}
	rec, ok := c.Lookup(id)
	if !ok || !rec.Matches(secret) {
		return Record{}, ErrUnknown
	}
	if rec.IsRevoked() {
		return Record{}, ErrRevoked
	}
	return rec, nil
}
