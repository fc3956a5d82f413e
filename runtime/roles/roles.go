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
	// DenyPublish narrows Publish: what matches it is refused even when
	// Publish allows it. DenySubscribe narrows Subscribe (and All) alike.
	DenyPublish   []string
	DenySubscribe []string
	Responses     bool
	// All grants everything (the admin role) but DenySubscribe; the other
	// fields are unused.
	All bool
	// Leaf says the identity connects as a leaf node and as nothing else
	// (the activator); every other identity may connect only as a client
	// (plain, websocket or in-process), never as a leaf node. For a leaf
	// node, Subscribe is what the server may send it and Publish what it
	// may send the server.
	Leaf bool
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
		Subscribe: []string{
			wire.FnPrefix + n, wire.FnPrefix + n + ".>", // its subjects, in its queue group
			wire.GatewayPrefix + n,                                                      // what the gateway validated
			"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.*." + n, "$SRV.*." + n + ".>", // discovery
			wire.InboxPrefix(n) + ".>", // its replies, JetStream's included
		},
		Publish: append(slices.Clone(ReplyInboxes), // its answers, to its callers
			wire.RegisterPrefix+n, wire.UnregisterPrefix+n,
			// Its async work: bind to and pull from its consumer, ack.
			"$JS.API.CONSUMER.INFO."+wire.StreamAsync+"."+async,
			"$JS.API.CONSUMER.MSG.NEXT."+wire.StreamAsync+"."+async,
			"$JS.ACK."+wire.StreamAsync+"."+async+".>",
			// Its own invocation records, result events, dead letters and
			// callbacks, and its schedule's last tick.
			"$KV."+wire.BucketResults+"."+n+".>",
			"$JS.API.DIRECT.GET."+results+".$KV."+wire.BucketResults+"."+n+".>",
			wire.ResultsPrefix+n+".>",
			wire.DLQPrefix+n,
			wire.CallbacksPrefix+n,
			"$JS.API.DIRECT.GET."+wire.StreamSchedules+"."+wire.TicksPrefix+n+".>",
		),
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
	// An entity stream: append to its subjects, read them back by direct
	// gets, and keep its own snapshots (<function>.<subject>) in the
	// stream's snapshot bucket, which other declarers share.
	for _, st := range spec.Streams {
		if st.Entity {
			snap := registry.SnapshotBucket(st.Name)
			r.Publish = append(r.Publish, st.Subjects...)
			r.Publish = append(r.Publish, "$JS.API.DIRECT.GET."+st.Name, "$JS.API.STREAM.INFO."+st.Name,
				"$JS.API.STREAM.INFO.KV_"+snap, "$KV."+snap+"."+n+".>",
				"$JS.API.DIRECT.GET.KV_"+snap+".$KV."+snap+"."+n+".>")
		}
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
// request them (and wake them), queue async work for them and read its
// records by id (through the trust service, which takes literal ids only:
// a direct get of the bucket would take a wildcard and hand out the
// newest record of anyone), discover services, and read the replies to
// its inbox prefix.
func Caller(inboxPrefix string, functions ...string) Rights {
	r := Rights{Subscribe: []string{inboxPrefix + ".>"}, Publish: []string{"$SRV.>"}}
	for _, f := range functions {
		r.Publish = append(r.Publish, wire.FnPrefix+f, wire.FnPrefix+f+".*", wire.ActivatePrefix+f, wire.AsyncPrefix+f,
			TrustRecords+f+".*")
	}
	return r
}

// Admin returns the rights of the admin: everything, except reading the
// default inbox prefix _INBOX, which anonymous callers share and read: the
// admin's replies (credentials minted, secrets, records) go to AdminInbox,
// and a client that forgets it is refused rather than overheard.
func Admin() Rights { return Rights{All: true, DenySubscribe: []string{"_INBOX.>"}} }

// ReplyInboxes are where a function's instances may answer: every inbox
// prefix a caller can have (anonymous callers' _INBOX, the platform's
// _INBOX_yard.*, callers' _INBOX_c.*, functions' _INBOX_fn.*), and
// nothing else. An explicit list rather than the server's "allow
// responses", which lets a reply go to any subject the requester names:
// an anonymous request could otherwise make an instance write into the
// registry.
var ReplyInboxes = []string{"_INBOX.>", "_INBOX_yard.>", "_INBOX_c.>", "_INBOX_fn.>"}

// Inbox prefixes of the platform's components and the admin: each reads
// only the replies addressed to it.
const (
	AdminInbox   = "_INBOX_yard.admin"
	GatewayInbox = "_INBOX_yard.gateway"
	AgentInbox   = "_INBOX_yard.agent"
	TrustInbox   = "_INBOX_yard.trust"
)

// CallerInbox is the inbox prefix of a NATS caller credential's holder:
// _INBOX_c.<name>.
func CallerInbox(name string) string { return "_INBOX_c." + name }

// TrustPrefix: the trust service answers yard.trust.instance.<name>
// (agents asking for an instance's credential) and yard.trust.creds
// (admins minting a caller's credential).
const (
	TrustPrefix   = "yard.trust."
	TrustInstance = TrustPrefix + "instance."
	// TrustActivator: an agent asks for its activator's leaf credential.
	TrustActivator = TrustPrefix + "activator"
	TrustCreds     = TrustPrefix + "creds"
	// TrustRecords: yard.trust.records.<function>.<id> answers a NATS
	// caller the record of one async invocation it knows the id of.
	TrustRecords = TrustPrefix + "records."
	TrustQueue   = "yard.trust"
	AuditDenied  = wire.AuditPrefix + "denied"
	AuditCreds   = wire.AuditPrefix + "creds"
	AuditOps     = wire.AuditPrefix + "ops"
)

// PlatformStreams are the streams behind the platform's state. No role but
// the admin may purge, delete or reconfigure them (the agents may update
// YARD_SCHEDULES, whose schedule messages they keep).
var PlatformStreams = []string{
	"KV_" + wire.BucketFunctions, "KV_" + wire.BucketVersions, "KV_" + wire.BucketResults,
	"KV_" + wire.BucketKeys, "KV_" + wire.BucketSecrets, "KV_" + wire.BucketCreds,
	"KV_yard_agents", "KV_yard_scale", "OBJ_" + wire.StoreArtifacts,
	wire.StreamAsync, wire.StreamDLQ, wire.StreamLogs, wire.StreamCallbacks, wire.StreamAudit, wire.StreamSchedules,
	wire.StreamProbe, wire.StreamHeld,
}

// readKV is what reading and watching a key-value bucket takes: stream
// info, direct gets, and the ephemeral ordered consumers of watches and key
// listings (delivered to the reader's inbox; flow control answered).
func readKV(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		"$JS.API.STREAM.INFO." + s, "$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>", "$JS.API.STREAM.MSG.GET." + s,
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>", "$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>",
	}
}

// readStream is reading a stream's messages one get at a time: no
// consumer, so nothing can be delivered elsewhere.
func readStream(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream, "$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream, "$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// writeKV adds puts and deletes of a bucket's keys to readKV.
func writeKV(bucket string) []string { return append(readKV(bucket), "$KV."+bucket+".>") }

// denyPlatform is what no component may do to the platform's streams.
func denyPlatform(except ...string) []string {
	deny := []string{"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.MSG.DELETE.>",
		"$JS.API.ACCOUNT.PURGE.>", "$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.SNAPSHOT.>"}
	for _, s := range PlatformStreams {
		if !slices.Contains(except, s) {
			deny = append(deny, "$JS.API.STREAM.UPDATE."+s, "$JS.API.STREAM.CREATE."+s)
		}
	}
	return deny
}

// Gateway returns the rights of a gateway: request any function (it
// enforces the access policy for HTTP callers itself), queue async work,
// read the registry, keys, records and queue, deliver callbacks, report
// denials, and for operator keys read the logs and dead letters and
// requeue a dead letter. It writes the "queued" record of an async
// invocation accepted with an Idempotency-Key, which makes a repeat of
// the key find the first; NATS cannot tell that write from others, so it
// may write any record of yard_results. It cannot write the registry,
// nor touch a stream's configuration.
func Gateway() Rights {
	r := Rights{
		Subscribe: []string{GatewayInbox + ".>"},
		Publish: []string{
			wire.FnPrefix + ">", wire.GatewayPrefix + ">", wire.ActivatePrefix + ">", wire.AsyncPrefix + ">",
			"$SRV.>", "$JS.API.INFO", "$JS.FC.>", AuditDenied, wire.ProbePrefix + "gateway", "$JS.API.STREAM.INFO." + wire.StreamProbe,
			"$JS.API.STREAM.INFO." + wire.StreamAsync, "$JS.API.DIRECT.GET." + wire.StreamAsync, "$JS.API.DIRECT.GET." + wire.StreamAsync + ".>",
			"$JS.API.STREAM.MSG.GET." + wire.StreamAsync,
			"$JS.API.STREAM.INFO." + wire.StreamDLQ, "$JS.API.STREAM.INFO." + wire.StreamSchedules,
			// Callback delivery through the one durable consumer.
			"$JS.API.STREAM.INFO." + wire.StreamCallbacks,
			"$JS.API.CONSUMER.CREATE." + wire.StreamCallbacks + "." + wire.CallbacksConsumer,
			"$JS.API.CONSUMER.CREATE." + wire.StreamCallbacks + "." + wire.CallbacksConsumer + ".>",
			"$JS.API.CONSUMER.DURABLE.CREATE." + wire.StreamCallbacks + "." + wire.CallbacksConsumer,
			"$JS.API.CONSUMER.INFO." + wire.StreamCallbacks + "." + wire.CallbacksConsumer,
			"$JS.API.CONSUMER.MSG.NEXT." + wire.StreamCallbacks + "." + wire.CallbacksConsumer,
			"$JS.ACK." + wire.StreamCallbacks + "." + wire.CallbacksConsumer + ".>",
			// The /ops routes of operator keys: read the logs and dead
			// letters, and send a dead letter back to the work queue.
			"$JS.API.STREAM.MSG.DELETE." + wire.StreamDLQ, AuditOps,
			// Records of keyed async invocations (invocation.Store.Submit).
			"$KV." + wire.BucketResults + ".>",
		},
		// Removing a dead letter it has requeued is the one delete.
		DenyPublish: slices.DeleteFunc(denyPlatform(), func(s string) bool { return s == "$JS.API.STREAM.MSG.DELETE.>" }),
	}
	for _, s := range []string{wire.StreamLogs, wire.StreamDLQ, wire.StreamSchedules} {
		r.Publish = append(r.Publish, readStream(s)...)
	}
	// A function's versions, for the same routes (its recent records are
	// read from yard_results, above).
	r.Publish = append(r.Publish, readKV(wire.BucketVersions)...)
	for _, b := range []string{wire.BucketFunctions, wire.BucketResults, wire.BucketKeys} {
		r.Publish = append(r.Publish, readKV(b)...)
	}
	return r
}

// Agent returns the rights of an agent: follow the registry and fetch
// artifacts, register functions run without a deploy, provision (consumers,
// event streams, function buckets, schedules), ask the trust service for
// its instances' and its activator's credentials, read their secrets, ship
// their logs, keep its presence and the agreed scale, and hold requests
// for functions with no instance (YARD_HELD) and forward them to fn.<name>
// once one serves. It cannot purge, delete or reconfigure a platform
// stream other than YARD_SCHEDULES.
func Agent() Rights {
	r := Rights{
		Subscribe: []string{AgentInbox + ".>", wire.ActivatePrefix + "*", wire.RegisterPrefix + "*", wire.UnregisterPrefix + "*"},
		Publish: []string{
			// Answers to activations and registrations: inboxes only (the
			// agent checks that too, since it may write yard_functions).
			"_INBOX.>", "_INBOX_yard.>", "_INBOX_c.>", "_INBOX_fn.>",
			wire.LogsPrefix + ">", "$SRV.>", TrustInstance + "*", TrustActivator, "$JS.API.INFO", "$JS.FC.>",
			// The activator: keep held requests, take them back, forward
			// them with their callers' reply subjects.
			wire.HeldPrefix + "*", wire.FnPrefix + "*",
			"$JS.API.CONSUMER.MSG.NEXT." + wire.StreamHeld + "." + wire.HeldConsumer,
			"$JS.ACK." + wire.StreamHeld + "." + wire.HeldConsumer + ".>",
			// Provisioning.
			"$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*",
			"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>", "$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.DELETE.>",
			"$JS.API.CONSUMER.NAMES.>", "$JS.API.CONSUMER.LIST.>",
			wire.SchedulesPrefix + ">", "$JS.API.STREAM.PURGE." + wire.StreamSchedules,
			"$JS.API.DIRECT.GET." + wire.StreamSchedules, "$JS.API.DIRECT.GET." + wire.StreamSchedules + ".>",
			"$JS.API.STREAM.MSG.GET." + wire.StreamSchedules,
			// Artifacts: the object store's info, metadata and chunks.
			"$JS.API.STREAM.INFO.OBJ_" + wire.StoreArtifacts, "$JS.API.DIRECT.GET.OBJ_" + wire.StoreArtifacts,
			"$JS.API.DIRECT.GET.OBJ_" + wire.StoreArtifacts + ".>", "$JS.API.STREAM.MSG.GET.OBJ_" + wire.StoreArtifacts,
		},
	}
	for _, b := range []string{wire.BucketFunctions, "yard_agents", "yard_scale"} {
		r.Publish = append(r.Publish, writeKV(b)...)
	}
	for _, b := range []string{wire.BucketVersions, wire.BucketSecrets} {
		r.Publish = append(r.Publish, readKV(b)...)
	}
	r.DenyPublish = append(denyPlatform(wire.StreamSchedules), "$JS.API.STREAM.PURGE."+wire.StreamAsync)
	// Purge of YARD_SCHEDULES (a schedule's messages) is the one purge it may do.
	r.DenyPublish = slices.DeleteFunc(r.DenyPublish, func(s string) bool { return s == "$JS.API.STREAM.PURGE.>" })
	for _, s := range PlatformStreams {
		if s != wire.StreamSchedules {
			r.DenyPublish = append(r.DenyPublish, "$JS.API.STREAM.PURGE."+s)
		}
	}
	r.DenyPublish = slices.Compact(r.DenyPublish)
	return r
}

// Activator returns the rights of an agent's activator: a leaf node
// connection that receives the requests to fn.<name> no instance can take
// (the server sends a leaf node a queue group's messages only when no
// member of the group is connected as a client) and sends nothing back:
// its agent keeps, forwards and answers them on its own connection.
func Activator() Rights {
	return Rights{Leaf: true, Subscribe: []string{wire.FnPrefix + "*"}}
}

// Trust returns the rights of the trust service: answer yard.trust.>,
// read the registry, keep the caller credentials' records, audit them.
func Trust() Rights {
	r := Rights{
		Subscribe: []string{TrustInbox + ".>", TrustPrefix + ">"},
		// Answers go to the admin's, agents' and callers' inboxes only,
		// never the shared _INBOX.
		Publish: []string{"$JS.API.INFO", "$JS.FC.>", AuditCreds, "_INBOX_yard.>", "_INBOX_c.>"},
	}
	r.Publish = append(r.Publish, readKV(wire.BucketFunctions)...)
	r.Publish = append(r.Publish, readKV(wire.BucketResults)...)
	r.Publish = append(r.Publish, writeKV(wire.BucketCreds)...)
	r.DenyPublish = denyPlatform()
	return r
}

// Anonymous returns the rights of a connection without credentials: call
// the public functions and discover services (nats micro ls, info, stats).
// Anonymous callers share the default inbox prefix _INBOX, so they can
// read each other's replies: they only ever call public functions.
func Anonymous(public ...string) Rights {
	r := Rights{Subscribe: []string{"_INBOX.>"}, Publish: []string{"$SRV.>"}}
	for _, f := range public {
		r.Publish = append(r.Publish, wire.FnPrefix+f, wire.FnPrefix+f+".*", wire.ActivatePrefix+f)
	}
	return r
}
