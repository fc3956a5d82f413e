package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"
)

func TestHash(t *testing.T) {
	base := Hash([]byte(`{"type":"object","properties":{"a":{"type":"string"},"b":{"enum":[1,2]}}}`))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(base) {
		t.Fatalf("Hash = %q, want sha256:<64 hex digits>", base)
	}
	same := []string{
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"enum":[1,2]}}}`,
		`{"properties":{"b":{"enum":[1,2]},"a":{"type":"string"}},"type":"object"}`,
		" {\n  \"type\": \"object\",\n  \"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"enum\": [1, 2]}}\n}\n",
		`{"type":"object","properties":{"a":{"type":"\u0073tring"},"b":{"enum":[1,2]}}}`,
	}
	for _, s := range same {
		if got := Hash([]byte(s)); got != base {
			t.Errorf("Hash(%s) = %s, want %s", s, got, base)
		}
	}
	different := []string{
		`{"type":"object","properties":{"a":{"type":"integer"},"b":{"enum":[1,2]}}}`,
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"enum":[2,1]}}}`,
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"enum":[1.0,2]}}}`,
		`{"type":"object","properties":{"a":{"type":"string"}}}`,
	}
	for _, s := range different {
		if got := Hash([]byte(s)); got == base {
			t.Errorf("Hash(%s) equals the base hash", s)
		}
	}
}

func TestHashOfInvalidJSONIsOfTheBytes(t *testing.T) {
	for _, raw := range []string{``, `{`, `{"a":1,"a":1}`, `{} {}`, "\"\xff\""} {
		sum := sha256.Sum256([]byte(raw))
		if got, want := Hash([]byte(raw)), "sha256:"+hex.EncodeToString(sum[:]); got != want {
			t.Errorf("Hash(%q) = %s, want %s", raw, got, want)
		}
	}
}

func TestHashKeepsHTMLCharacters(t *testing.T) {
	// The canonical form is the plain text, not encoding/json's HTML-safe
	// escapes, so a pattern hashes as its author wrote it.
	sum := sha256.Sum256([]byte(`{"pattern":"<a&b>"}`))
	if got, want := Hash([]byte(`{ "pattern": "<a&b>" }`)), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
