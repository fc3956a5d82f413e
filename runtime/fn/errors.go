package fn

import (
	"errors"
	"fmt"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Code is a platform error code (invalid_argument, not_found, …).
type Code = wire.Code

// Error is an error that reaches the caller with its code, reason and
// message.
type Error = wire.Error

// FieldError names one offending field by JSON pointer.
type FieldError = wire.FieldError

// Error codes a handler may return.
const (
	CodeInvalidArgument   = wire.CodeInvalidArgument
	CodeNotFound          = wire.CodeNotFound
	CodeConflict          = wire.CodeConflict
	CodePermissionDenied  = wire.CodePermissionDenied
	CodeResourceExhausted = wire.CodeResourceExhausted
	CodeUnavailable       = wire.CodeUnavailable
	CodeDeadlineExceeded  = wire.CodeDeadlineExceeded
	CodeInternal          = wire.CodeInternal
)

// Errorf returns an error that reaches the caller with code and message.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NotFound is Errorf(CodeNotFound, …).
func NotFound(format string, args ...any) error {
	return Errorf(CodeNotFound, format, args...)
}

// InvalidArgument reports a bad value at a JSON pointer of the input.
func InvalidArgument(pointer, message string) error {
	return &Error{
		Code:    CodeInvalidArgument,
		Message: "invalid input",
		Errors:  []FieldError{{Pointer: pointer, Message: message}},
	}
}

// WithReason gives the *Error in err a reason: a stable, machine-readable
// refinement of its code in the function's own terms, such as
// "card_declined" or "out_of_stock", that callers read with ReasonOf
// instead of matching message text. A reason is ^[a-z][a-z0-9_]{0,63}$;
// any other is dropped (callers would drop it too). err is returned as it
// is when it holds no *Error: a reason needs a code. The result is a copy
// of the *Error (still Permanent when err was), so a shared error value is
// never changed.
//
//	return Out{}, fn.WithReason(fn.Errorf(fn.CodeConflict, "no %s left", sku), "out_of_stock")
func WithReason(err error, reason string) error {
	var pe *permanentError
	if errors.As(err, &pe) {
		return Permanent(WithReason(pe.err, reason))
	}
	var e *Error
	if !errors.As(err, &e) || !wire.ValidReason(reason) {
		return err
	}
	c := *e
	c.Reason = reason
	return &c
}

// ReasonOf is the reason of the *Error in err (as Invoke returns it), or
// "" when it has none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) && wire.ValidReason(e.Reason) {
		return e.Reason
	}
	return ""
}

// Permanent marks err as not worth retrying: an asynchronous invocation
// that fails with it goes to the dead-letter queue at once. Client errors
// (invalid_argument, not_found, conflict, permission_denied, …) are
// permanent without it; internal, unavailable, deadline_exceeded and
// resource_exhausted are retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }

func permanentCode(c Code) bool {
	switch c {
	case wire.CodeInternal, wire.CodeUnavailable, wire.CodeDeadlineExceeded, wire.CodeResourceExhausted:
		return false
	}
	return true
}
