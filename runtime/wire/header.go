package wire

// Header names carried on NATS messages. Ours use the Yard- prefix in
// canonical MIME case so that they pass through HTTP unchanged.
const (
	HeaderRequestID    = "Yard-Request-Id"
	HeaderDeadline     = "Yard-Deadline" // RFC 3339 with nanoseconds
	HeaderInvocationID = "Yard-Invocation-Id"
	HeaderAttempt      = "Yard-Attempt"
	HeaderCallbackURL  = "Yard-Callback-Url"
	HeaderTraceparent  = "traceparent"
	HeaderTracestate   = "tracestate"
	HeaderMsgID        = "Nats-Msg-Id"

	// The micro error headers: a reply carrying them is an error reply.
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"
)

// DeadlineFormat is the layout of HeaderDeadline.
const DeadlineFormat = "2006-01-02T15:04:05.999999999Z07:00"
