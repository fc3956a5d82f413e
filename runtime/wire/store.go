package wire

import (
	"hash/fnv"
	"strconv"
)

// Names of the JetStream streams, key-value buckets and object stores that
// make up a Switchyard installation.
const (
	BucketFunctions = "yard_functions"
	BucketVersions  = "yard_versions"
	BucketResults   = "yard_results"
	StoreArtifacts  = "yard_artifacts"

	StreamAsync     = "YARD_ASYNC"
	StreamSchedules = "YARD_SCHEDULES"
	StreamDLQ       = "YARD_DLQ"
	StreamLogs      = "YARD_LOGS"
	// StreamCallbacks holds the async callbacks still to deliver
	// (yard.callbacks.<name>); the gateways deliver them.
	StreamCallbacks = "YARD_CALLBACKS"
	// CallbacksConsumer is the durable consumer the gateways share.
	CallbacksConsumer = "yard-callbacks"

	// BucketKeys holds the gateway's API keys, hashed, one key per key id;
	// written by admins, read and watched by gateways.
	BucketKeys = "yard_keys"
	// BucketSecrets holds function secrets under <name>.<KEY>; written by
	// admins, read only by agents, which pass them to instances.
	BucketSecrets = "yard_secrets"
	// BucketCreds records the NATS credentials minted for callers
	// (<user public key>) and their revocations; the trust service keeps
	// the account's revocation list in step with it.
	BucketCreds = "yard_creds"
	// StreamAudit keeps who did what, when, with which outcome, on
	// yard.audit.<kind>, for 90 days.
	StreamAudit = "YARD_AUDIT"
	AuditPrefix = "yard.audit."
	// StreamProbe keeps the last readiness write, on yard.probe.<who>:
	// /readyz is ready only when JetStream stores it.
	StreamProbe = "YARD_PROBE"
	ProbePrefix = "yard.probe."
	// StreamHeld keeps, on yard.held.<name>, the requests the activator
	// holds for a function with no instance serving it, until an agent
	// forwards them (a work queue kept in memory, bounded per function).
	StreamHeld = "YARD_HELD"
	HeldPrefix = "yard.held."
	// HeldConsumer is the durable consumer of YARD_HELD the agents share.
	HeldConsumer = "yard-activator"
)

// AsyncConsumer is the durable consumer of YARD_ASYNC that a function's
// instances share: fn-<name>. Agents read its backlog to scale.
func AsyncConsumer(name string) string { return "fn-" + name }

// EventConsumer is the durable consumer through which a function's
// instances receive the events on subject: on-<name>-<hash of subject>.
func EventConsumer(name, subject string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return "on-" + name + "-" + strconv.FormatUint(uint64(h.Sum32()), 16)
}

// ResultKey is the key of an async invocation's record in yard_results:
// <name>.<id>, so a function's rights can be scoped to its own records.
func ResultKey(name, id string) string { return name + "." + id }

// Message size limits shared by the gateway and the NATS server, so that a
// body the gateway accepts always fits in a NATS message and a NATS caller
// cannot send an instance more than an HTTP caller can.
const (
	// MaxBodyBytes is the largest request body (and function output).
	MaxBodyBytes = 1 << 20
	// EnvelopeBytes is room for headers and a record's JSON around a body.
	EnvelopeBytes = 64 << 10
	// MaxPayload is the NATS server's max_payload.
	MaxPayload = MaxBodyBytes + EnvelopeBytes
)
