package wire

import (
	"strings"
	"testing"
)

func TestValidateRequestID(t *testing.T) {
	for _, ok := range []string{"", "a", "req-1_2.3:4", strings.Repeat("x", MaxRequestIDLen)} {
		if err := ValidateRequestID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{strings.Repeat("x", MaxRequestIDLen+1), "a b", "a\nlevel=ERROR", "é", "a/b", "a\x00"} {
		if err := ValidateRequestID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzValidateRequestID(f *testing.F) {
	f.Add("req-1")
	f.Add("a\nb")
	f.Fuzz(func(t *testing.T, id string) {
		if ValidateRequestID(id) != nil {
			return
		}
		if len(id) > MaxRequestIDLen || strings.ContainsAny(id, " \n\r\t\"=/\\") {
			t.Fatalf("accepted %q", id)
		}
	})
}
