package schemas

import (
	"errors"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// InvalidJSON is the invalid_argument error for a body Decode refused,
// naming the pointer where reading failed (summary is the message).
func InvalidJSON(summary string, err error) *wire.Error {
	e := &wire.Error{Code: wire.CodeInvalidArgument, Message: summary}
	var de *DecodeError
	if errors.As(err, &de) {
		e.Errors = []wire.FieldError{{Pointer: de.Pointer, Message: de.Message}}
	} else {
		e.Errors = []wire.FieldError{{Pointer: "", Message: err.Error()}}
	}
	return e
}

// InvalidInput is the invalid_argument error for the violations Validate
// found, one field error each (capped by wire.Error.LimitErrors).
func InvalidInput(summary string, v []Violation) *wire.Error {
	e := &wire.Error{Code: wire.CodeInvalidArgument, Message: summary, Errors: make([]wire.FieldError, len(v))}
	for k, x := range v {
		e.Errors[k] = wire.FieldError{Pointer: x.Pointer, Message: x.Message}
	}
	return e.LimitErrors()
}
