// Package fleet asks the running side of Switchyard about a function:
// which instances answer (micro PING), how loaded they are (micro STATS),
// and, when none runs, asks the agents to start one (yard.activate.<name>).
// The gateway, the CLI, the SDK and the agents all ask the same way.
package fleet

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// collect sends one request on subject and hands every reply that arrives
// within wait to each. Replies keep coming for as long as instances answer,
// so the wait is the only end there is.
func collect(nc *nats.Conn, subject string, wait time.Duration, each func(*nats.Msg)) error {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return nil // the wait is over
		}
		each(msg)
	}
}

// Ping returns the identity of every micro service instance that answers
// within wait: of one function, or of all when name is empty.
func Ping(nc *nats.Conn, name string, wait time.Duration) ([]micro.Ping, error) {
	subject := "$SRV.PING"
	if name != "" {
		subject += "." + name
	}
	var out []micro.Ping
	err := collect(nc, subject, wait, func(m *nats.Msg) {
		var p micro.Ping
		if json.Unmarshal(m.Data, &p) == nil && p.Name != "" {
			out = append(out, p)
		}
	})
	return out, err
}

// Stats returns the micro STATS of every instance of a function that
// answers within wait, or of every service when name is empty.
func Stats(nc *nats.Conn, name string, wait time.Duration) ([]micro.Stats, error) {
	subject := "$SRV.STATS"
	if name != "" {
		subject += "." + name
	}
	var out []micro.Stats
	err := collect(nc, subject, wait, func(m *nats.Msg) {
		var st micro.Stats
		if json.Unmarshal(m.Data, &st) == nil {
			out = append(out, st)
		}
	})
	return out, err
}

// Requester is the one method Activate needs of a NATS connection.
type Requester interface {
	RequestMsgWithContext(ctx context.Context, msg *nats.Msg) (*nats.Msg, error)
}

// Activate asks the agents to start an instance of a function that has
// none and returns once one serves, or with the agents' error, or when
// ctx ends. deadline travels as Yard-Deadline, so the agent stops waiting
// when the caller does.
func Activate(ctx context.Context, nc Requester, name string, deadline time.Time) error {
	subject, err := wire.ActivateSubject(name)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subject, Header: nats.Header{wire.HeaderDeadline: {deadline.UTC().Format(time.RFC3339Nano)}}}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return err
	}
	if e := wire.ReplyError(reply.Header, reply.Data); e != nil {
		return e
	}
	return nil
}

// atOnce bounds the discovery requests StatsEach and PingEach have out at
// a time.
const atOnce = 64

// StatsEach is Stats of each named function, asked many at a time, each
// on its own subject ($SRV.STATS.<name>): only the per-name subject, which
// an instance may subscribe to for its own name alone, keeps one function
// from answering as another. Replies naming another service are dropped.
func StatsEach(nc *nats.Conn, names []string, wait time.Duration) map[string][]micro.Stats {
	return each(names, func(name string) []micro.Stats {
		stats, _ := Stats(nc, name, wait)
		return slices.DeleteFunc(stats, func(st micro.Stats) bool { return st.Name != name })
	})
}

// PingEach counts the instances of each named function that answer a
// PING on $SRV.PING.<name> within wait (see StatsEach).
func PingEach(nc *nats.Conn, names []string, wait time.Duration) map[string]int {
	pings := each(names, func(name string) []micro.Ping {
		p, _ := Ping(nc, name, wait)
		return slices.DeleteFunc(p, func(p micro.Ping) bool { return p.Name != name })
	})
	out := make(map[string]int, len(pings))
	for name, p := range pings {
		out[name] = len(p)
	}
	return out
}

func each[T any](names []string, ask func(string) []T) map[string][]T {
	out := make(map[string][]T, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, atOnce)
	for _, name := range names {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			got := ask(name)
			mu.Lock()
			out[name] = got
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
