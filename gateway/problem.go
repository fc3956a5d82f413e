package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ProblemTypePrefix starts the "type" of every problem document; the code
// follows it, so clients can switch on either field.
const ProblemTypePrefix = "urn:switchyard:error:"

// Problem is an RFC 9457 problem document carrying a Switchyard error.
// Reason is the function's own refinement of the code (card_declined),
// when it gave one; the type stays per code.
type Problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail,omitempty"`
	Code      wire.Code         `json:"code"`
	Reason    string            `json:"reason,omitempty"`
	Errors    []wire.FieldError `json:"errors,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
}

// httpError is an error the gateway renders as a problem document. Handlers
// return it (or any error, which becomes internal) and writeError renders it:
// the only place a problem is written.
type httpError struct {
	e          *wire.Error
	retryAfter time.Duration
	allow      string // for 405
	wwwAuth    string // WWW-Authenticate, for 401
	// denied is set by the gateway's own access checks (the outcome, as
	// unauthenticated, permission_denied or rate_limited): such answers
	// are audited. A function's own 401 or 403 is not.
	denied string
	// keysUnavailable: a 401 because the token provider's keys could not
	// be had, which does not count against the caller's address.
	keysUnavailable bool
}

func (h *httpError) Error() string { return h.e.Error() }

func errorf(code wire.Code, format string, args ...any) *httpError {
	return &httpError{e: wire.Errorf(code, format, args...)}
}

func invalid(pointer, message, summary string) *httpError {
	return &httpError{e: &wire.Error{
		Code:    wire.CodeInvalidArgument,
		Message: summary,
		Errors:  []wire.FieldError{{Pointer: pointer, Message: message}},
	}}
}

func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, reqID string, err error) {
	he, ok := err.(*httpError)
	if !ok {
		g.log.Error("request failed", logKeyRequestID, reqID, logKeyErr, err, "path", r.URL.Path)
		he = errorf(wire.CodeInternal, "internal error")
	}
	status := he.e.Code.HTTPStatus()
	p := Problem{
		Type:      ProblemTypePrefix + string(he.e.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    he.e.Message,
		Code:      he.e.Code,
		Reason:    he.e.Reason,
		Errors:    he.e.Errors,
		RequestID: reqID,
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if he.retryAfter > 0 {
		secs := int(he.retryAfter.Round(time.Second) / time.Second)
		h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if he.allow != "" {
		h.Set("Allow", he.allow)
	}
	if he.wwwAuth != "" {
		h.Set("WWW-Authenticate", he.wwwAuth)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
