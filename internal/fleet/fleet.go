// Package fleet asks the running side of Switchyard about a function:
// which instances answer (micro PING), how loaded they are (micro STATS),
// and, when none runs, asks the agents to start one (yard.activate.<name>).
// The gateway, the CLI, the SDK and the agents all ask the same way.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
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

// StatsEach is Stats of each named function, all asked at once and
// collected for one wait, each on its own subject ($SRV.STATS.<name>):
// only the per-name subject, which an instance may subscribe to for its
// own name alone, keeps one function from answering as another. Each
// reply comes to a reply subject of its request's own, so it counts for
// the function asked; one naming another service is dropped.
func StatsEach(nc *nats.Conn, names []string, wait time.Duration) map[string][]micro.Stats {
	return askEach(nc, "STATS", names, wait, func(name string, data []byte) (micro.Stats, bool) {
		var st micro.Stats
		return st, json.Unmarshal(data, &st) == nil && st.Name == name
	})
}

// PingEach counts the instances of each named function that answer a
// PING on $SRV.PING.<name> within wait (see StatsEach).
func PingEach(nc *nats.Conn, names []string, wait time.Duration) map[string]int {
	pings := askEach(nc, "PING", names, wait, func(name string, data []byte) (micro.Ping, bool) {
		var p micro.Ping
		return p, json.Unmarshal(data, &p) == nil && p.Name == name
	})
	out := make(map[string]int, len(pings))
	for name, p := range pings {
		out[name] = len(p)
	}
	return out
}

// askEach sends $SRV.<verb>.<name> for every name, each with the reply
// subject <inbox>.<index>, and decodes what comes back within wait. One
// subscription and one wait serve any number of functions.
func askEach[T any](nc *nats.Conn, verb string, names []string, wait time.Duration, decode func(name string, data []byte) (T, bool)) map[string][]T {
	out := make(map[string][]T, len(names))
	for _, name := range names {
		out[name] = nil
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox + ".*")
	if err != nil {
		return out
	}
	defer sub.Unsubscribe()
	for i, name := range names {
		if err := nc.PublishRequest("$SRV."+verb+"."+name, inbox+"."+strconv.Itoa(i), nil); err != nil {
			return out
		}
	}
	deadline := time.Now().Add(wait)
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if errors.Is(err, nats.ErrNoResponders) {
			continue // a function with no instance: the server says so
		}
		if err != nil {
			return out // the wait is over
		}
		i, err := strconv.Atoi(strings.TrimPrefix(msg.Subject, inbox+"."))
		if err != nil || i < 0 || i >= len(names) {
			continue
		}
		if v, ok := decode(names[i], msg.Data); ok {
			out[names[i]] = append(out[names[i]], v)
		}
	}
}
