// Package roles says, as NATS subject permissions, what each identity on a
// Switchyard system may do: docs/architecture.md has the same table in
// prose. A function instance gets exactly the rights of its spec: its own
// subjects, consumers, records and declarations, nothing of another
// function's and nothing of the platform's state.
package roles

import (
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Rights are subject permissions: what an identity may publish to and
// subscribe to. Responses says it may answer requests it receives (the
// server allows one reply to each reply subject it was sent).
type Rights struct {
	Publish   []string
	Subscribe []string
	Responses bool
}

// Function returns the rights of an instance of spec's function. The
// instance must connect with the inbox prefix wire.InboxPrefix(name) (as
// fn.Main does). A spec whose name or declarations are invalid gets none:
// its declarations could reach into another function's or the platform's
// subjects.
func Function(spec *registry.Spec) (Rights, error) {
	if err := wire.ValidateName(spec.Name); err != nil {
		return Rights{}, err
	}
	if err := errors.Join(spec.ValidateDeclarations()...); err != nil {
		return Rights{}, fmt.Errorf("roles: %s: %w", spec.Name, err)
	}
	n := spec.Name
	async := wire.AsyncConsumer(n)
	results := "KV_" + wire.BucketResults
	r := Rights{
		Responses: true,
		Subscribe: []string{
			wire.FnPrefix + n, wire.FnPrefix + n + ".>", // its subjects, in its queue group
			"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.*." + n, "$SRV.*." + n + ".>", // discovery
			wire.InboxPrefix(n) + ".>", // its replies, JetStream's included
		},
		Publish: []string{
			wire.RegisterPrefix + n, wire.UnregisterPrefix + n,
			// Its async work: bind to and pull from its consumer, ack.
			"$JS.API.CONSUMER.INFO." + wire.StreamAsync + "." + async,
			"$JS.API.CONSUMER.MSG.NEXT." + wire.StreamAsync + "." + async,
			"$JS.ACK." + wire.StreamAsync + "." + async + ".>",
			// Its own invocation records, result events, dead letters and
			// callbacks, and its schedule's last tick.
			"$KV." + wire.BucketResults + "." + n + ".>",
			"$JS.API.DIRECT.GET." + results + ".$KV." + wire.BucketResults + "." + n + ".>",
			wire.ResultsPrefix + n + ".>",
			wire.DLQPrefix + n,
			wire.CallbacksPrefix + n,
			"$JS.API.DIRECT.GET." + wire.StreamSchedules + "." + wire.TicksPrefix + n + ".>",
		},
	}
	for _, c := range spec.Calls {
		r.Publish = append(r.Publish, wire.FnPrefix+c, wire.ActivatePrefix+c)
	}
	r.Publish = append(r.Publish, spec.Publishes...)
	if len(spec.Events) > 0 {
		r.Publish = append(r.Publish, "$JS.API.STREAM.NAMES")
	}
	for _, subject := range spec.Events {
		c := wire.EventConsumer(n, subject)
		r.Publish = append(r.Publish, "$JS.API.CONSUMER.INFO.*."+c, "$JS.API.CONSUMER.MSG.NEXT.*."+c, "$JS.ACK.*."+c+".>")
	}
	for _, b := range spec.Buckets {
		kv := "KV_" + b
		r.Publish = append(r.Publish, "$JS.API.STREAM.INFO."+kv, "$KV."+b+".>", "$JS.API.DIRECT.GET."+kv+".>",
			// Keys and watches read through consumers of their own.
			"$JS.API.CONSUMER.CREATE."+kv, "$JS.API.CONSUMER.CREATE."+kv+".>", "$JS.API.CONSUMER.DELETE."+kv+".>")
	}
	r.Publish = slices.Compact(r.Publish)
	return r, nil
}

// Caller returns the rights of a plain NATS caller of the named functions:
// request them (and wake them) and read the replies to its inbox prefix.
func Caller(inboxPrefix string, functions ...string) Rights {
	r := Rights{Subscribe: []string{inboxPrefix + ".>"}}
	for _, f := range functions {
		r.Publish = append(r.Publish, wire.FnPrefix+f, wire.ActivatePrefix+f)
	}
	return r
}
