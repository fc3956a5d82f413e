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

func TestInboxReply(t *testing.T) {
	for reply, want := range map[string]bool{
		"_INBOX.abc.1": true, "_INBOX_yard.admin.x": true, "_INBOX_c.ada.9": true,
		"_INBOX": false, "_INBOX.": false, "_INBOX_": false, "_INBOX_.x": false, "_INBOX_c.ada.>": false,
		"_INBOX.*": false, "_INBOX.a..b": false, "fn.orders": false, "$JS.ACK.S.c.1": false, "": false,
		"_INBOX.a*b": true, // a literal token
	} {
		if got := InboxReply(reply); got != want {
			t.Errorf("InboxReply(%q) = %v, want %v", reply, got, want)
		}
	}
}

func FuzzInboxReply(f *testing.F) {
	for _, s := range []string{"_INBOX.abc", "_INBOX_c.x.>", "fn.a", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		if !InboxReply(reply) {
			return
		}
		if !strings.HasPrefix(reply, "_INBOX") || strings.Contains(reply, "..") || strings.HasSuffix(reply, ".") {
			t.Fatalf("%q taken for an inbox", reply)
		}
		for _, tok := range strings.Split(reply, ".") {
			if tok == "*" || tok == ">" {
				t.Fatalf("%q has a wildcard token", reply)
			}
		}
	})
}
