package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/schemas"
)

// function is what the gateway knows of one function: its live spec and
// its input schema compiled once.
type function struct {
	spec *registry.Spec
	in   *schemas.Schema
	err  error // why the input schema did not compile
}

// schemaCache mirrors yard_functions in memory. A KV watch keeps it fresh,
// so a function that restarts with a new schema is validated against it
// within one watch round trip; the hot path never touches JetStream.
type schemaCache struct {
	mu    sync.RWMutex
	funcs map[string]*function
	ready atomic.Bool
	onErr func(name string, err error)
	// onRemove, when set, hears of each function removed from the registry.
	onRemove func(name string)
}

func newSchemaCache(onErr func(string, error)) *schemaCache {
	return &schemaCache{funcs: map[string]*function{}, onErr: onErr}
}

func (c *schemaCache) get(name string) (*function, bool) {
	c.mu.RLock()
	f, ok := c.funcs[name]
	c.mu.RUnlock()
	return f, ok
}

func (c *schemaCache) list() []*registry.Spec {
	c.mu.RLock()
	specs := make([]*registry.Spec, 0, len(c.funcs))
	for _, f := range c.funcs {
		specs = append(specs, f.spec)
	}
	c.mu.RUnlock()
	registry.SortByName(specs)
	return specs
}

// apply folds one watch update into the cache, compiling the schema only
// when its hash changed.
func (c *schemaCache) apply(e jetstream.KeyValueEntry) {
	name := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		c.mu.Lock()
		delete(c.funcs, name)
		c.mu.Unlock()
		if c.onRemove != nil {
			c.onRemove(name)
		}
		return
	}
	spec, err := registry.Decode(e.Value())
	if err != nil {
		c.onErr(name, err)
		return
	}
	if old, ok := c.get(name); ok && old.spec.SchemaHash == spec.SchemaHash && old.err == nil {
		c.mu.Lock()
		c.funcs[name] = &function{spec: spec, in: old.in}
		c.mu.Unlock()
		return
	}
	f := &function{spec: spec}
	f.in, f.err = schemas.Compile(spec.InputSchema)
	if f.err != nil {
		c.onErr(name, f.err)
	}
	c.mu.Lock()
	c.funcs[name] = f
	c.mu.Unlock()
}

// watch follows the registry until ctx ends. It marks the cache ready once
// the initial values are in.
func (c *schemaCache) watch(ctx context.Context, w jetstream.KeyWatcher) {
	_ = jskv.Follow(ctx, w, func() { c.ready.Store(true) }, c.apply)
}
