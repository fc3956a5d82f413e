package registry

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

var bucketRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// eventTypeRe: an event type's name, as fn.Append sets it (a Go type's
// name by default).
var eventTypeRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// ValidEventType reports whether name may name an event type.
func ValidEventType(name string) bool { return eventTypeRe.MatchString(name) }

// reservedFirstTokens are the subject spaces of the platform and of NATS
// itself: no event subject, stream subject or publish declaration may
// reach into them, or a function could capture requests to other functions
// (a stream on fn.*) or read the platform's state (an event consumer on
// $KV.yard_results.>).
func reservedFirstToken(tok string) bool {
	return tok == "fn" || tok == "yard" || strings.HasPrefix(tok, "$") || strings.HasPrefix(tok, "_INBOX")
}

// eventSubject reports whether s may be declared as an event subject: NATS
// subject syntax, a literal first token outside the reserved spaces, * only
// as a whole token and > only last.
func eventSubject(s string) bool {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	toks := strings.Split(s, ".")
	if toks[0] == "*" || toks[0] == ">" || reservedFirstToken(toks[0]) {
		return false
	}
	for k, t := range toks {
		switch {
		case t == "":
			return false
		case t == "*" || t == ">":
			if t == ">" && k != len(toks)-1 {
				return false
			}
		case strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}

// ValidateDeclarations checks what a spec declares it uses, so that the
// platform provisions and grants nothing outside a function's own space,
// whoever wrote the spec (a deploy, or any client registering on
// yard.register.<name>).
func (s *Spec) ValidateDeclarations() []error {
	var errs []error
	for _, c := range s.Calls {
		if err := wire.ValidateName(c); err != nil {
			errs = append(errs, fmt.Errorf("calls: %w", err))
		}
	}
	for _, p := range s.Publishes {
		if !eventSubject(p) {
			errs = append(errs, fmt.Errorf("publishes: %q is not an event subject (dot-separated tokens, * and > as wildcards after a literal first token, not under fn., yard., $ or _INBOX)", p))
		}
	}
	for _, e := range s.Events {
		if !eventSubject(e) {
			errs = append(errs, fmt.Errorf("events: %q is not an event subject (dot-separated tokens, * and > as wildcards after a literal first token, not under fn., yard., $ or _INBOX)", e))
		}
	}
	for _, b := range s.Buckets {
		if !bucketRe.MatchString(b) || strings.HasPrefix(b, "yard_") || strings.HasPrefix(b, SnapshotPrefix) {
			errs = append(errs, fmt.Errorf("buckets: %q is not a function's bucket name (letters, digits, - and _, not starting yard_ or %s)", b, SnapshotPrefix))
		}
	}
	for _, st := range s.Streams {
		if !bucketRe.MatchString(st.Name) || strings.HasPrefix(st.Name, "YARD_") || strings.HasPrefix(st.Name, "KV_") || strings.HasPrefix(st.Name, "OBJ_") {
			errs = append(errs, fmt.Errorf("streams: %q is not a function's stream name (letters, digits, - and _, not starting YARD_, KV_ or OBJ_)", st.Name))
		}
		if len(st.Subjects) == 0 {
			errs = append(errs, fmt.Errorf("streams: %s has no subjects", st.Name))
		}
		for _, subj := range st.Subjects {
			if !eventSubject(subj) {
				errs = append(errs, fmt.Errorf("streams: %s: %q is not an event subject", st.Name, subj))
			}
		}
		if len(st.EventSchemas) > 0 && !st.Entity {
			errs = append(errs, fmt.Errorf("streams: %s: event schemas are for entity streams", st.Name))
		}
		for t, sc := range st.EventSchemas {
			if !eventTypeRe.MatchString(t) || !json.Valid(sc) {
				errs = append(errs, fmt.Errorf("streams: %s: event type %q needs a name (letters, digits, _ . -) and a JSON schema", st.Name, t))
			}
		}
	}
	for subject, o := range s.EventOptions {
		if !slices.Contains(s.Events, subject) {
			errs = append(errs, fmt.Errorf("event_options: %q is not one of the events", subject))
		}
		if _, err := ParseEventStart(o.From); err != nil {
			errs = append(errs, fmt.Errorf("event_options: %s: %w", subject, err))
		}
	}
	return errs
}
