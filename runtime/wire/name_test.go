package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "greet", "catalog-v2", "a0", "a" + strings.Repeat("b", 62)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "Greet", "greet.v1", "fn.*", "*", ">", "a b", "a\r\nb", "%2E", "a%2Eb",
		"0abc", "-abc", "a_b", "grüß", "a" + strings.Repeat("b", 63), "a\x00", "a\t", "ａ"}
	for _, n := range bad {
		err := ValidateName(n)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func TestSubjectsRejectWildcards(t *testing.T) {
	for _, n := range []string{"a.b", "*", ">", "a b"} {
		if s, err := FnSubject(n); err == nil {
			t.Errorf("FnSubject(%q) = %q, want error", n, s)
		}
	}
	if _, err := ResultsSubject("greet", "a.b"); err == nil {
		t.Error("ResultsSubject accepted an id with a dot")
	}
	got, err := FnVersionSubject("greet", 3)
	if err != nil || got != "fn.greet.v3" {
		t.Errorf("FnVersionSubject = %q, %v", got, err)
	}
	if _, err := FnVersionSubject("greet", 0); err == nil {
		t.Error("FnVersionSubject accepted version 0")
	}
}

func TestNameFromSubject(t *testing.T) {
	tests := map[string]string{"fn.greet": "greet", "fn.greet.v2": "greet", "fn.Greet": "", "yard.x": "", "fn.": ""}
	for subj, want := range tests {
		got, ok := NameFromSubject(subj)
		if got != want || ok != (want != "") {
			t.Errorf("NameFromSubject(%q) = %q, %v; want %q", subj, got, ok, want)
		}
	}
}

func TestCodeStatusRoundTrip(t *testing.T) {
	for _, c := range Codes() {
		if got := CodeForStatus(c.HTTPStatus()); got != c {
			t.Errorf("CodeForStatus(%d) = %s, want %s", c.HTTPStatus(), got, c)
		}
	}
	if Code("bogus").HTTPStatus() != 500 {
		t.Error("unknown code must be 500")
	}
}

func TestDecodeErrorReply(t *testing.T) {
	e := DecodeErrorReply("bad", "400", []byte(`{"code":"invalid_argument","message":"bad","errors":[{"pointer":"/name","message":"required"}]}`))
	if e.Code != CodeInvalidArgument || len(e.Errors) != 1 || e.Errors[0].Pointer != "/name" {
		t.Errorf("got %+v", e)
	}
	e = DecodeErrorReply("boom", "503", nil)
	if e.Code != CodeUnavailable || e.Message != "boom" {
		t.Errorf("got %+v", e)
	}
	e = DecodeErrorReply("", "nonsense", []byte("not json"))
	if e.Code != CodeInternal {
		t.Errorf("got %+v", e)
	}
}

func TestLimitErrors(t *testing.T) {
	e := &Error{Code: CodeInvalidArgument}
	for range MaxFieldErrors + 50 {
		e.Errors = append(e.Errors, FieldError{Pointer: "/x", Message: "bad"})
	}
	e.LimitErrors()
	if len(e.Errors) != MaxFieldErrors+1 || e.Errors[MaxFieldErrors].Message != "and 50 more errors" {
		t.Fatalf("%d errors, last %+v", len(e.Errors), e.Errors[len(e.Errors)-1])
	}
	small := &Error{Errors: []FieldError{{Pointer: "/a"}}}
	if len(small.LimitErrors().Errors) != 1 {
		t.Fatal("a short list must stay as it is")
	}
}
