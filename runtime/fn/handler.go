package fn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/schemas"
)

// Defaults of a handler, overridable with options.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultConcurrency = 64
)

// Handler is a typed function ready to serve: its schemas, its limits and
// the adapter that turns bytes into In and Out back into bytes.
type Handler struct {
	inSchema, outSchema []byte
	schemaErr           error
	call                func(ctx context.Context, input []byte) (any, error)
	timeout             time.Duration
	concurrency         int
	maxAttempts         int
	backoff             []time.Duration
}

// Option tunes a Handler.
type Option func(*Handler)

// WithTimeout bounds how long one invocation may run. A caller's own
// deadline (Yard-Deadline) can only shorten it.
func WithTimeout(d time.Duration) Option { return func(h *Handler) { h.timeout = d } }

// WithConcurrency sets how many invocations one instance runs at once.
// Requests beyond it wait in the instance's subscription until a slot frees.
func WithConcurrency(n int) Option { return func(h *Handler) { h.concurrency = n } }

// WithRetry sets how often an asynchronous invocation is attempted before
// it is dead-lettered, and the waits between attempts (the last wait
// repeats). The default is 5 attempts with waits of 1s, 5s, 30s, 2m.
func WithRetry(maxAttempts int, backoff ...time.Duration) Option {
	return func(h *Handler) {
		h.maxAttempts = maxAttempts
		if len(backoff) > 0 {
			h.backoff = backoff
		}
	}
}

// Handle wraps a typed handler. The JSON Schemas of In and Out are derived
// from their Go types (see package schemas for the tags that refine them).
func Handle[In, Out any](f func(context.Context, In) (Out, error), opts ...Option) *Handler {
	h := &Handler{timeout: DefaultTimeout, concurrency: DefaultConcurrency,
		maxAttempts: invocation.DefaultMaxAttempts, backoff: invocation.DefaultBackoff}
	var errIn, errOut error
	h.inSchema, errIn = schemas.For[In]()
	h.outSchema, errOut = schemas.For[Out]()
	if errIn != nil {
		h.schemaErr = fmt.Errorf("input schema: %w", errIn)
	} else if errOut != nil {
		h.schemaErr = fmt.Errorf("output schema: %w", errOut)
	}
	h.call = func(ctx context.Context, input []byte) (any, error) {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			// The input passed the schema, so this is a gap between JSON
			// Schema and Go: 1.0 or 1e2 are integers to the schema but not
			// to encoding/json. Write such numbers as integers and retry.
			var in2 In
			if fixed, ok := integralNumbers(input); !ok || json.Unmarshal(fixed, &in2) != nil {
				return nil, &Error{Code: CodeInvalidArgument, Message: "input does not fit the function's Go types"}
			}
			in = in2
		}
		return f(ctx, in)
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *Handler) validate() error {
	if h == nil || h.call == nil {
		return fmt.Errorf("handler is nil; build it with fn.Handle")
	}
	if h.schemaErr != nil {
		return h.schemaErr
	}
	if h.timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %s", h.timeout)
	}
	if h.concurrency < 1 {
		return fmt.Errorf("concurrency must be at least 1, got %d", h.concurrency)
	}
	if h.maxAttempts < 1 {
		return fmt.Errorf("max attempts must be at least 1, got %d", h.maxAttempts)
	}
	for _, d := range h.backoff {
		if d < 0 {
			return fmt.Errorf("backoff must not be negative, got %s", d)
		}
	}
	return nil
}

// integralNumbers rewrites numbers with a zero fraction (1.0, 1e2) as
// integers, so they decode into Go integer fields. It reports false when
// nothing changed.
func integralNumbers(input []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return nil, false
	}
	changed := false
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case json.Number:
			s := string(x)
			if !strings.ContainsAny(s, ".eE") {
				return x
			}
			r, ok := new(big.Rat).SetString(s)
			if ok && r.IsInt() {
				changed = true
				return json.Number(r.Num().String())
			}
		}
		return v
	}
	doc = walk(doc)
	if !changed {
		return nil, false
	}
	out, err := json.Marshal(doc)
	return out, err == nil
}
