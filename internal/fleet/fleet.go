// Package fleet asks the running side of Switchyard about a function:
// which instances answer (micro PING), how loaded they are (micro STATS),
// and, when none runs, asks the agents to start one (yard.activate.<name>).
// The gateway, the CLI, the SDK and the agents all ask the same way.
package fleet

import (
	"context"
	"encoding/json"
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
// answers within wait.
func Stats(nc *nats.Conn, name string, wait time.Duration) ([]micro.Stats, error) {
	var out []micro.Stats
	err := collect(nc, "$SRV.STATS."+name, wait, func(m *nats.Msg) {
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
