package wire

import "strings"

// Header names carried on NATS messages. Ours use the Yard- prefix in
// canonical MIME case so that they pass through HTTP unchanged.
const (
	HeaderRequestID    = "Yard-Request-Id"
	HeaderDeadline     = "Yard-Deadline" // RFC 3339 with nanoseconds
	HeaderInvocationID = "Yard-Invocation-Id"
	HeaderAttempt      = "Yard-Attempt"
	HeaderCallbackURL  = "Yard-Callback-Url"
	// HeaderSchemaHash: the schema hash (registry.Spec.SchemaHash) of the
	// spec the gateway checked a request on yard.gw.<name> against.
	HeaderSchemaHash  = "Yard-Schema-Hash"
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	HeaderMsgID       = "Nats-Msg-Id"
	// HeaderEventType names the type of an event appended to an entity
	// stream (fn.Append).
	HeaderEventType = "Yard-Event-Type"

	// The micro error headers: a reply carrying them is an error reply.
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"
)

// DeadlineFormat is the layout of HeaderDeadline.
const DeadlineFormat = "2006-01-02T15:04:05.999999999Z07:00"

// MaxRequestIDLen is the longest Yard-Request-Id accepted.
const MaxRequestIDLen = 128

// ValidateRequestID checks a caller's Yard-Request-Id: at most 128 of
// A-Z a-z 0-9 - _ . : (it goes into logs, records and headers as it is).
// The gateway and instances apply the same rule, so HTTP and NATS callers
// are held to one.
func ValidateRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return errRequestIDLong
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return errRequestIDChars
		}
	}
	return nil
}

var (
	errRequestIDLong  = Errorf(CodeInvalidArgument, "Yard-Request-Id is longer than %d characters", MaxRequestIDLen)
	errRequestIDChars = Errorf(CodeInvalidArgument, "Yard-Request-Id may hold only A-Z a-z 0-9 - _ . :")
)

// InboxReply reports whether reply is an inbox: its first token is _INBOX
// or starts with _INBOX_ (a private prefix). Requesters choose reply
// subjects freely, so a responder that may publish elsewhere (into a
// key-value bucket, a stream, another function's subject) must answer
// only inboxes, or a request could make it write there; and a message a
// JetStream push consumer delivered (reply $JS.ACK…, to any subject its
// creator named) is no request at all.
//
// An inbox has a token after its prefix, and no wildcard token: an answer
// goes to one requester, not to every subscriber of a pattern.
func InboxReply(reply string) bool {
	first, rest, _ := strings.Cut(reply, ".")
	if first != "_INBOX" && (!strings.HasPrefix(first, "_INBOX_") || first == "_INBOX_") || rest == "" {
		return false
	}
	for t := range strings.SplitSeq(rest, ".") {
		if t == "" || t == "*" || t == ">" {
			return false
		}
	}
	return true
}
