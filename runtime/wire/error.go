package wire

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Code is a stable, machine-readable error code. Each code maps to exactly
// one HTTP status; the table below is the only place that mapping lives.
type Code string

// The error codes of the platform (docs/http-api.md lists them).
const (
	CodeInvalidArgument      Code = "invalid_argument"
	CodeUnauthenticated      Code = "unauthenticated"
	CodePermissionDenied     Code = "permission_denied"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeConflict             Code = "conflict"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	CodeResourceExhausted    Code = "resource_exhausted"
	CodeInternal             Code = "internal"
	CodeUnavailable          Code = "unavailable"
	CodeDeadlineExceeded     Code = "deadline_exceeded"
)

var codeStatus = map[Code]int{
	CodeInvalidArgument:      http.StatusBadRequest,
	CodeUnauthenticated:      http.StatusUnauthorized,
	CodePermissionDenied:     http.StatusForbidden,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeConflict:             http.StatusConflict,
	CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeResourceExhausted:    http.StatusTooManyRequests,
	CodeInternal:             http.StatusInternalServerError,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeDeadlineExceeded:     http.StatusGatewayTimeout,
}

var statusCode = func() map[int]Code {
	m := make(map[int]Code, len(codeStatus))
	for c, s := range codeStatus {
		m[s] = c
	}
	return m
}()

// Codes lists every code, for documentation and tests.
func Codes() []Code {
	return []Code{
		CodeInvalidArgument, CodeUnauthenticated, CodePermissionDenied, CodeNotFound,
		CodeMethodNotAllowed, CodeConflict, CodePayloadTooLarge, CodeUnsupportedMediaType,
		CodeResourceExhausted, CodeInternal, CodeUnavailable, CodeDeadlineExceeded,
	}
}

// HTTPStatus is the HTTP status of the code; unknown codes are 500.
func (c Code) HTTPStatus() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Known reports whether c is one of the platform's codes.
func (c Code) Known() bool {
	_, ok := codeStatus[c]
	return ok
}

// CodeForStatus is the inverse of HTTPStatus; unknown statuses map to internal
// (or invalid_argument for an unlisted 4xx).
func CodeForStatus(status int) Code {
	if c, ok := statusCode[status]; ok {
		return c
	}
	if status >= 400 && status < 500 {
		return CodeInvalidArgument
	}
	return CodeInternal
}

// FieldError names one offending field of a request by JSON pointer.
type FieldError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

// Error is the body of every error reply, on NATS and (wrapped in a problem
// document) over HTTP.
type Error struct {
	Code Code `json:"code"`
	// Reason refines the code for machines, in the replier's own terms
	// (card_declined, out_of_stock); see ValidReason. Decoding drops an
	// invalid one.
	Reason  string       `json:"reason,omitempty"`
	Message string       `json:"message"`
	Errors  []FieldError `json:"errors,omitempty"`
}

// MaxReasonLen bounds the length of a reason.
const MaxReasonLen = 64

// ValidReason reports whether s is a reason: ^[a-z][a-z0-9_]{0,63}$, so
// that callers may switch on it and it is safe to log and echo.
func ValidReason(s string) bool {
	if len(s) == 0 || len(s) > MaxReasonLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// UnmarshalJSON decodes an error body, dropping a reason that is not
// valid: bodies come from other processes, and what cannot be a reason is
// not passed on.
func (e *Error) UnmarshalJSON(data []byte) error {
	type plain Error
	if err := json.Unmarshal(data, (*plain)(e)); err != nil {
		return err
	}
	if !ValidReason(e.Reason) {
		e.Reason = ""
	}
	return nil
}

func (e *Error) Error() string {
	code := string(e.Code)
	if e.Reason != "" {
		code += " (" + e.Reason + ")"
	}
	if len(e.Errors) == 0 {
		return fmt.Sprintf("%s: %s", code, e.Message)
	}
	f := e.Errors[0]
	more := ""
	if len(e.Errors) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(e.Errors)-1)
	}
	ptr := f.Pointer
	if ptr == "" {
		ptr = "/"
	}
	return fmt.Sprintf("%s: %s: %s %s%s", code, e.Message, ptr, f.Message, more)
}

// MaxFieldErrors bounds how many field errors one reply lists: a body with
// a hundred thousand bad fields must not become a reply larger than the
// request (or than NATS allows).
const MaxFieldErrors = 100

// LimitErrors keeps at most MaxFieldErrors field errors, ending with one
// that says how many were left out.
func (e *Error) LimitErrors() *Error {
	if len(e.Errors) > MaxFieldErrors {
		left := len(e.Errors) - MaxFieldErrors
		e.Errors = append(e.Errors[:MaxFieldErrors:MaxFieldErrors],
			FieldError{Pointer: "", Message: fmt.Sprintf("and %d more errors", left)})
	}
	return e
}

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// DecodeErrorReply builds the *Error of a reply that carried the micro error
// headers. body is the reply's data: our JSON error body when the replier is
// a Switchyard instance, anything (often empty) from other micro services.
// An invalid reason in the body is dropped.
func DecodeErrorReply(serviceError, serviceErrorCode string, body []byte) *Error {
	var e Error
	if len(body) > 0 && json.Unmarshal(body, &e) == nil && e.Code.Known() {
		if e.Message == "" {
			e.Message = serviceError
		}
		return &e
	}
	status, err := strconv.Atoi(serviceErrorCode)
	if err != nil {
		status = http.StatusInternalServerError
	}
	msg := serviceError
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Code: CodeForStatus(status), Message: msg}
}

// Headers are the micro error headers that mark a reply as carrying e;
// its JSON encoding is the reply's body. (A nats.Header converts directly.)
func (e *Error) Headers() map[string][]string {
	return map[string][]string{
		HeaderServiceError:     {e.Message},
		HeaderServiceErrorCode: {strconv.Itoa(e.Code.HTTPStatus())},
	}
}

// ReplyError returns the error a reply carries, or nil when it is a success.
// h is the reply's header (a nats.Header converts directly).
func ReplyError(h map[string][]string, body []byte) *Error {
	desc, hasDesc := h[HeaderServiceError]
	code, hasCode := h[HeaderServiceErrorCode]
	if !hasDesc && !hasCode {
		return nil
	}
	return DecodeErrorReply(first(desc), first(code), body)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
