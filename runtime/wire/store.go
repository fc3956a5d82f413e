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
