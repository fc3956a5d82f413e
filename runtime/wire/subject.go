package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Subject prefixes. Every subject a client builds from user input goes
// through a builder below, which validates each token first.
const (
	FnPrefix       = "fn."
	AsyncPrefix    = "yard.async."
	ResultsPrefix  = "yard.results."
	DLQPrefix      = "yard.dlq."
	LogsPrefix     = "yard.logs."
	ActivatePrefix = "yard.activate."
	// SchedulesPrefix holds schedule messages and TicksPrefix their ticks,
	// both in stream YARD_SCHEDULES (the server's scheduler fires only into
	// the stream holding the schedule); YARD_ASYNC sources the ticks as
	// yard.async.<name>.
	SchedulesPrefix = "yard.schedules."
	TicksPrefix     = "yard.ticks."
	// CallbacksPrefix: yard.callbacks.<name> holds the callbacks of a
	// function's finished async invocations, delivered by the platform.
	CallbacksPrefix = "yard.callbacks."
	// RegisterPrefix: an instance run without a deploy asks the platform
	// on yard.register.<name> to register and provision its function, and
	// tells it on yard.unregister.<name> that it stops.
	RegisterPrefix   = "yard.register."
	UnregisterPrefix = "yard.unregister."
)

// RegisterQueue is the queue group of the platform components that answer
// yard.register.* and yard.unregister.*.
const RegisterQueue = "yard.register"

// FnSubject is the request-reply subject of a function's live version:
// fn.<name>. Instances listen on it in queue group QueueGroup(name).
func FnSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return FnPrefix + name, nil
}

// FnVersionSubject pins a request to version n of a function: fn.<name>.v<n>.
func FnVersionSubject(name string, version int) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if version < 1 {
		return "", fmt.Errorf("invalid version %d: versions start at 1", version)
	}
	return FnPrefix + name + ".v" + strconv.Itoa(version), nil
}

// GatewayPrefix: yard.gw.<name> carries requests the gateway has already
// checked against the function's input schema. Only gateways may publish
// there (the NATS server enforces it), so instances serving it skip their
// own input validation; everyone else calls fn.<name>.
const GatewayPrefix = "yard.gw."

// GatewaySubject is yard.gw.<name>.
func GatewaySubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return GatewayPrefix + name, nil
}

// QueueGroup is the queue group every instance of a function joins, so that
// each request reaches exactly one instance.
func QueueGroup(name string) string { return FnPrefix + name }

// AsyncSubject is where asynchronous invocations of a function are published.
func AsyncSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return AsyncPrefix + name, nil
}

// SchedulesSubject holds one schedule of a function:
// yard.schedules.<name>.<id>; its ticks go to TicksSubject(name, id).
func SchedulesSubject(name, id string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateToken(id); err != nil {
		return "", err
	}
	return SchedulesPrefix + name + "." + id, nil
}

// TicksSubject receives the ticks of one schedule of a function:
// yard.ticks.<name>.<id>; YARD_ASYNC sources them as AsyncSubject(name).
func TicksSubject(name, id string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateToken(id); err != nil {
		return "", err
	}
	return TicksPrefix + name + "." + id, nil
}

// ResultsSubject carries the completion event of one async invocation.
func ResultsSubject(name, id string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateToken(id); err != nil {
		return "", fmt.Errorf("invalid invocation id: %w", err)
	}
	return ResultsPrefix + name + "." + id, nil
}

// DLQSubject is where invocations of a function that exhausted their
// attempts are kept.
func DLQSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return DLQPrefix + name, nil
}

// LogsSubject carries the log lines of one instance of a function.
func LogsSubject(name, instance string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateToken(instance); err != nil {
		return "", fmt.Errorf("invalid instance id: %w", err)
	}
	return LogsPrefix + name + "." + instance, nil
}

// ActivateSubject asks an agent to start an instance of a function.
func ActivateSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return ActivatePrefix + name, nil
}

// ValidateToken checks that s is usable as one NATS subject token: not empty,
// printable ASCII, and none of '.', '*', '>'.
func ValidateToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject token")
	}
	if len(s) > 255 {
		return fmt.Errorf("subject token %d bytes long, the limit is 255", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return fmt.Errorf("subject token %s has %s at byte %d", quote(s), describeByte(s, i), i)
		}
	}
	return nil
}

// NameFromSubject returns the function name of a fn.<name> or
// fn.<name>.v<N> subject, and false for any other subject.
func NameFromSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, FnPrefix)
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, ".")
	if ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// CallbacksSubject holds the callbacks of a function: yard.callbacks.<name>.
func CallbacksSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return CallbacksPrefix + name, nil
}

// RegisterSubject is where an undeployed instance of name registers.
func RegisterSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return RegisterPrefix + name, nil
}

// UnregisterSubject is where an undeployed instance of name says it stops.
func UnregisterSubject(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return UnregisterPrefix + name, nil
}

// InboxPrefix is the reply-inbox prefix of a function's instances:
// _INBOX_fn.<name>. A prefix of its own lets a function's credential
// receive only its own replies, never another's.
func InboxPrefix(name string) string { return "_INBOX_fn." + name }
