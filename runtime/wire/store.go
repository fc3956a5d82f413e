package wire

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
)

// AsyncConsumer is the durable consumer of YARD_ASYNC that a function's
// instances share: fn-<name>. Agents read its backlog to scale.
func AsyncConsumer(name string) string { return "fn-" + name }
