package wire

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidReason(t *testing.T) {
	good := []string{"a", "card_declined", "out_of_stock", "reservation_in_progress", "e404", "a_", "a" + strings.Repeat("b", 63)}
	for _, r := range good {
		if !ValidReason(r) {
			t.Errorf("ValidReason(%q) = false", r)
		}
	}
	bad := []string{"", "Card_declined", "card-declined", "card declined", "_a", "0a", "a.b", "a\n", "ä",
		"a" + strings.Repeat("b", 64), "<script>", "a\x00"}
	for _, r := range bad {
		if ValidReason(r) {
			t.Errorf("ValidReason(%q) = true", r)
		}
	}
}

// TestReasonTravels: a reason set by the replier reaches the caller of
// ReplyError and shows in the error's text; the headers do not carry it.
func TestReasonTravels(t *testing.T) {
	e := &Error{Code: CodeConflict, Reason: "out_of_stock", Message: "no tea left"}
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"code":"conflict","reason":"out_of_stock","message":"no tea left"}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
	got := ReplyError(e.Headers(), body)
	if got == nil || got.Code != CodeConflict || got.Reason != "out_of_stock" || got.Message != "no tea left" {
		t.Fatalf("ReplyError = %+v", got)
	}
	if s := got.Error(); s != "conflict (out_of_stock): no tea left" {
		t.Fatalf("Error() = %q", s)
	}
	if h := e.Headers(); len(h) != 2 || h[HeaderServiceErrorCode][0] != "409" {
		t.Fatalf("headers %v", h)
	}
	plain, _ := json.Marshal(&Error{Code: CodeNotFound, Message: "x"})
	if strings.Contains(string(plain), "reason") {
		t.Fatalf("an error without a reason encodes one: %s", plain)
	}
}

// TestInvalidReasonDropped: a reason that is not one is not passed on, and
// the rest of the body still counts.
func TestInvalidReasonDropped(t *testing.T) {
	h := map[string][]string{HeaderServiceError: {"no"}, HeaderServiceErrorCode: {"409"}}
	for _, r := range []string{"Out Of Stock", "<b>x</b>", strings.Repeat("a", 65), "a\r\nb"} {
		body, _ := json.Marshal(map[string]string{"code": "conflict", "reason": r, "message": "m"})
		got := ReplyError(h, body)
		if got == nil || got.Code != CodeConflict || got.Message != "m" || got.Reason != "" {
			t.Errorf("reason %q: ReplyError = %+v", r, got)
		}
	}
	// A reason that is not a string makes the body undecodable: the
	// headers alone say what happened.
	got := ReplyError(h, []byte(`{"code":"conflict","reason":7,"message":"m"}`))
	if got == nil || got.Code != CodeConflict || got.Reason != "" || got.Message != "no" {
		t.Fatalf("non-string reason: %+v", got)
	}
}

// FuzzReplyError: whatever a replier sends, ReplyError yields a known code
// and either no reason or a valid one, and what it yields survives
// encoding and decoding unchanged.
func FuzzReplyError(f *testing.F) {
	f.Add("409", `{"code":"conflict","reason":"out_of_stock","message":"m"}`)
	f.Add("409", `{"code":"conflict","reason":"Out-Of-Stock","message":"m"}`)
	f.Add("500", `{"code":"nope","reason":"x"}`)
	f.Add("abc", `not json`)
	f.Add("404", ``)
	f.Fuzz(func(t *testing.T, status, body string) {
		h := map[string][]string{HeaderServiceError: {"desc"}, HeaderServiceErrorCode: {status}}
		e := ReplyError(h, []byte(body))
		if e == nil {
			t.Fatal("an error reply decoded as success")
		}
		if !e.Code.Known() {
			t.Fatalf("unknown code %q", e.Code)
		}
		if e.Reason != "" && !ValidReason(e.Reason) {
			t.Fatalf("invalid reason %q passed on", e.Reason)
		}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var back Error
		if err := json.Unmarshal(data, &back); err != nil || back.Code != e.Code || back.Reason != e.Reason || back.Message != e.Message {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", e, data, back, err)
		}
	})
}
