package agent

import (
	"maps"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzHeldHeaders: a caller's headers survive being held, but for the
// activator's own (Yard-Held-*, which a caller cannot set), and while held
// none is one JetStream acts on (Nats-*).
func FuzzHeldHeaders(f *testing.F) {
	for _, k := range []string{"Nats-Msg-Id", "nats-expected-stream", "Yard-Held-Reply", "yard-held-caller", "Yard-Held-Orig-Nats-Msg-Id", "Yard-Deadline", "X"} {
		f.Add(k, "v", "Nats-Rollup", "all")
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := nats.Header{k1: {v1}, k2: {v2}}
		held := heldHeaders(in)
		for k := range held {
			if hasPrefixFold(k, "Nats-") {
				t.Fatalf("held with %q", k)
			}
		}
		want := nats.Header{}
		for k, v := range in {
			if !hasPrefixFold(k, heldPrefix) {
				want[k] = v
			}
		}
		if got := callerHeaders(held); !maps.EqualFunc(got, want, func(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }) {
			t.Fatalf("%v came back as %v", want, got)
		}
	})
}
