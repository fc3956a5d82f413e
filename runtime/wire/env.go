package wire

// The contract between an agent and a function instance it starts: the
// environment it sets and the flag that asks a binary for its manifest.
// Deploy settings (`yard deploy --timeout …` or yard.json) override what the
// binary's own fn.Handle options say, so one binary serves under the
// settings it was deployed with.
const (
	EnvNATSURL     = "NATS_URL"          // the NATS server to connect to
	EnvNATSCreds   = "NATS_CREDS"        // credentials file for that connection
	EnvNATSCA      = "NATS_CA"           // CA file that signed the server's TLS certificate
	EnvVersion     = "YARD_VERSION"      // deployed version N: serves fn.<name>.v<N> too
	EnvInstance    = "YARD_INSTANCE"     // instance id, for logs
	EnvReadyFile   = "YARD_READY_FILE"   // created once the instance serves, so its agent knows
	EnvTimeout     = "YARD_TIMEOUT"      // e.g. 10s
	EnvConcurrency = "YARD_CONCURRENCY"  // e.g. 32
	EnvMaxAttempts = "YARD_MAX_ATTEMPTS" // e.g. 3
	EnvBackoff     = "YARD_BACKOFF"      // e.g. 1s,10s,1m
)

// ManifestFlag makes a function binary print its manifest (name, schemas,
// declarations and defaults as JSON) and exit, so tools learn about a
// function without running it against NATS.
const ManifestFlag = "--yard-manifest"

// MetaInstance is the micro service metadata key holding the instance id
// the agent gave (EnvInstance), so `yard describe` and `nats micro info`
// name an instance as ps, yard up and yard logs do.
const MetaInstance = "yard.instance"
