package fn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ErrUndeclared is wrapped by every error for a call, publish or bucket
// that the function did not declare in its Config.
var ErrUndeclared = errors.New("not declared")

// declarations is what a handler's context says its function may use.
type declarations struct {
	name      string
	calls     []string
	publishes []string
	buckets   []string
}

func declarationsOf(cfg Config) *declarations {
	return &declarations{name: cfg.Name, calls: cfg.Calls, publishes: cfg.Publishes, buckets: cfg.Buckets}
}

// declared returns the declarations of ctx's function; ok is false for a
// context from WithConn, which belongs to no function and is bounded only
// by its connection's NATS permissions.
func declared(ctx context.Context) (d *declarations, ok bool) {
	d, ok = ctx.Value(keyDecl).(*declarations)
	return d, ok
}

func checkCall(ctx context.Context, target string) error {
	d, ok := declared(ctx)
	if !ok || slices.Contains(d.calls, target) {
		return nil
	}
	return fmt.Errorf("fn %s calls %s, which it does not declare: add %q to Config.Calls: %w", d.name, target, target, ErrUndeclared)
}

func checkPublish(ctx context.Context, subject string) error {
	d, ok := declared(ctx)
	if !ok || slices.ContainsFunc(d.publishes, func(p string) bool { return subjectMatches(p, subject) }) {
		return nil
	}
	return fmt.Errorf("fn %s publishes on %s, which it does not declare: add it (or a pattern) to Config.Publishes: %w", d.name, subject, ErrUndeclared)
}

func checkBucket(ctx context.Context, bucket string) error {
	d, ok := declared(ctx)
	if !ok || slices.Contains(d.buckets, bucket) {
		return nil
	}
	return fmt.Errorf("fn %s uses bucket %s, which it does not declare: add %q to Config.Buckets: %w", d.name, bucket, bucket, ErrUndeclared)
}

// validateDeclarations checks the declarations' syntax, so a typo fails at
// start rather than at the first call.
func validateDeclarations(cfg Config) []error {
	var errs []error
	for _, c := range cfg.Calls {
		if err := wire.ValidateName(c); err != nil {
			errs = append(errs, fmt.Errorf("calls: %w", err))
		}
	}
	for _, p := range cfg.Publishes {
		if !validSubject(p, true) || strings.HasPrefix(p, "yard.") || strings.HasPrefix(p, "$") || strings.HasPrefix(p, wire.FnPrefix) || strings.HasPrefix(p, "_INBOX") {
			errs = append(errs, fmt.Errorf("publishes: %q is not an event subject (tokens separated by dots, * and > as wildcards, not under fn., yard., $ or _INBOX)", p))
		}
	}
	for _, b := range cfg.Buckets {
		if !bucketNameRe.MatchString(b) || strings.HasPrefix(b, "yard_") {
			errs = append(errs, fmt.Errorf("buckets: %q is not a bucket name of a function (letters, digits, - and _, not starting yard_)", b))
		}
	}
	for _, st := range cfg.Streams {
		if st.Name == "" || strings.ContainsAny(st.Name, ".*> \t") || strings.HasPrefix(st.Name, "YARD_") || strings.HasPrefix(st.Name, "KV_") || strings.HasPrefix(st.Name, "OBJ_") {
			errs = append(errs, fmt.Errorf("streams: %q is not a stream name of a function", st.Name))
		}
		for _, subj := range st.Subjects {
			if !validSubject(subj, true) || strings.HasPrefix(subj, "yard.") || strings.HasPrefix(subj, "$") || strings.HasPrefix(subj, wire.FnPrefix) {
				errs = append(errs, fmt.Errorf("streams: %s: %q is not an event subject", st.Name, subj))
			}
		}
	}
	for _, sub := range cfg.Events {
		if !validSubject(sub.subject, true) {
			errs = append(errs, fmt.Errorf("events: %q is not a subject", sub.subject))
		}
	}
	return errs
}

// validSubject reports whether s is a NATS subject: non-empty tokens
// without whitespace; with wildcards, * as a whole token and > last.
func validSubject(s string, wildcards bool) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	toks := strings.Split(s, ".")
	for k, t := range toks {
		switch {
		case t == "":
			return false
		case t == "*" || t == ">":
			if !wildcards || (t == ">" && k != len(toks)-1) {
				return false
			}
		case strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}
