package fleet

import (
	"context"
	"sync"
	"time"
)

// ActivationGap is how long the outcome of an activation started by
// Activating stands: until then, callers on the same connection get that
// activation again instead of a new one. An activation may cost an agent
// a registry read, a scale write and pings until an instance serves;
// callers that still meet no responders in the gap poll on their own (an
// instance the agents called ready may not be reachable yet: on a cluster
// its subscription reaches other servers a few milliseconds later).
const ActivationGap = 100 * time.Millisecond

// Activation is one activation request (see Activate), shared by every
// caller on one connection that waits for an instance of the same
// function.
type Activation struct {
	done chan struct{}
	err  error
}

// Done is closed once the agents have answered, or the activation's
// deadline has passed.
func (a *Activation) Done() <-chan struct{} { return a.done }

// Err waits for Done and returns what Activate returned: nil once an
// instance serves.
func (a *Activation) Err() error {
	<-a.done
	return a.err
}

type activationKey struct {
	nc   Requester
	name string
}

// activations holds each connection's activation of each function, from
// its start until ActivationGap after its end.
var activations struct {
	mu sync.Mutex
	m  map[activationKey]*Activation
}

// Activating returns the activation of name on nc that is in flight or
// ended less than ActivationGap ago, or else starts one that asks until
// deadline. However many requests meet no responders at once, the agents
// get at most one activation at a time per function from each connection
// (a gateway's, say). The activation outlives the caller that started it:
// others may be waiting on it. nc is a map key, compared by identity:
// pass the connection itself (a *nats.Conn).
func Activating(nc Requester, name string, deadline time.Time) *Activation {
	key := activationKey{nc: nc, name: name}
	activations.mu.Lock()
	defer activations.mu.Unlock()
	if a := activations.m[key]; a != nil {
		return a
	}
	if activations.m == nil {
		activations.m = map[activationKey]*Activation{}
	}
	a := &Activation{done: make(chan struct{})}
	activations.m[key] = a
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		a.err = Activate(ctx, nc, name, deadline)
		cancel()
		close(a.done)
		time.AfterFunc(ActivationGap, func() {
			activations.mu.Lock()
			if activations.m[key] == a {
				delete(activations.m, key)
			}
			activations.mu.Unlock()
		})
	}()
	return a
}
