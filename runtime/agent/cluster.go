package agent

import (
	"context"
	"hash/fnv"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nuid"
	"github.com/switchyard-dev/switchyard/internal/jskv"
)

// Key-value buckets the agents share. Agents coordinate through NATS only:
// each announces itself in yard_agents (keys expire when it stops
// announcing), and the wanted instance count of every function lives in
// yard_scale, so whichever agent decides, all of them agree.
const (
	BucketAgents = "yard_agents"
	BucketScale  = "yard_scale"
)

// cluster is this agent's view of all agents.
type cluster struct {
	id     string
	ttl    time.Duration
	agents jetstream.KeyValue
	scale  jetstream.KeyValue

	mu      sync.Mutex
	members []string // live agent ids, sorted
}

// openClusterBuckets opens yard_agents and yard_scale, creating them when
// missing.
func openClusterBuckets(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (agents, scale jetstream.KeyValue, err error) {
	agents, err = jskv.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketAgents, Description: "Switchyard: live agents", TTL: ttl, History: 1, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return nil, nil, err
	}
	scale, err = jskv.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketScale, Description: "Switchyard: wanted instances per function", History: 1, Storage: jetstream.FileStorage,
	})
	return agents, scale, err
}

// EnsureStores creates what the agents keep in JetStream (yard_agents,
// yard_scale, YARD_LOGS, YARD_HELD) when missing.
func EnsureStores(ctx context.Context, js jetstream.JetStream) error {
	if _, _, err := openClusterBuckets(ctx, js, defaultPresenceTTL); err != nil {
		return err
	}
	if err := ensureLogStream(ctx, js); err != nil {
		return err
	}
	return ensureHeldStream(ctx, js, DefaultHeldPerFunction, 2*time.Minute)
}

func newCluster(ctx context.Context, js jetstream.JetStream, id string, ttl time.Duration) (*cluster, error) {
	agents, scale, err := openClusterBuckets(ctx, js, ttl)
	if err != nil {
		return nil, err
	}
	c := &cluster{id: id, ttl: ttl, agents: agents, scale: scale}
	if err := c.announce(ctx); err != nil {
		return nil, err
	}
	c.refresh(ctx)
	return c, nil
}

func (c *cluster) announce(ctx context.Context) error {
	_, err := c.agents.Put(ctx, c.id, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// refresh reads the live agents; it reports whether they changed.
func (c *cluster) refresh(ctx context.Context) bool {
	lister, err := c.agents.ListKeys(ctx)
	if err != nil {
		return false
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	if !slices.Contains(ids, c.id) {
		ids = append(ids, c.id) // we are alive, whatever the bucket says
	}
	slices.Sort(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := !slices.Equal(ids, c.members)
	c.members = ids
	return changed
}

// run announces this agent every third of the TTL and calls changed when
// the set of agents changes (one joined, or one stopped announcing).
func (c *cluster) run(ctx context.Context, changed func()) {
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = c.announce(ctx)
		if c.refresh(ctx) {
			changed()
		}
	}
}

// leave removes this agent at once, so others take over its share without
// waiting for the TTL.
func (c *cluster) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.agents.Delete(ctx, c.id)
}

// slotOwner is the index among members that runs instance slot j of a
// function: slots go round the agents from a place that depends on the
// function, so functions with one instance spread over the agents too.
func slotOwner(name string, j, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return (int(h.Sum32()%uint32(n)) + j) % n
}

// share is how many of want instances of a function this agent runs.
func (c *cluster) share(name string, want int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.members)
	me := slices.Index(c.members, c.id)
	if n == 0 || me < 0 {
		return want
	}
	count := 0
	for j := range want {
		if slotOwner(name, j, n) == me {
			count++
		}
	}
	return count
}

// leads reports whether this agent makes the scaling decisions of a
// function: the owner of its first slot.
func (c *cluster) leads(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.members)
	me := slices.Index(c.members, c.id)
	return n == 0 || me < 0 || slotOwner(name, 0, n) == me
}

// wantScale records a function's wanted instance count for all agents.
func (c *cluster) wantScale(ctx context.Context, name string, n int) error {
	_, err := c.scale.Put(ctx, name, []byte(strconv.Itoa(n)))
	return err
}

// defaultID names an agent after its host, plus a random part so two
// agents on one host differ.
func defaultID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	id := nuid.Next()
	if b.Len() == 0 {
		return "agent-" + id[len(id)-8:]
	}
	return b.String() + "-" + id[len(id)-8:]
}
