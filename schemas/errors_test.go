package schemas_test

import (
	"errors"
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

func TestInvalidJSON(t *testing.T) {
	_, err := schemas.Decode([]byte(`{"a":1,"a":2}`), schemas.DecodeLimits{})
	e := schemas.InvalidJSON("body is not valid JSON", err)
	if e.Code != wire.CodeInvalidArgument || e.Message != "body is not valid JSON" || len(e.Errors) != 1 || e.Errors[0].Pointer != "/a" {
		t.Fatalf("decode error: %+v", e)
	}
	e = schemas.InvalidJSON("body is not valid JSON", errors.New("boom"))
	if len(e.Errors) != 1 || e.Errors[0].Pointer != "" || e.Errors[0].Message != "boom" {
		t.Fatalf("other error: %+v", e)
	}
}

func TestInvalidInput(t *testing.T) {
	v := make([]schemas.Violation, 150)
	for k := range v {
		v[k] = schemas.Violation{Pointer: "/x", Message: "bad"}
	}
	e := schemas.InvalidInput("input does not match", v[:2])
	if e.Code != wire.CodeInvalidArgument || len(e.Errors) != 2 || e.Errors[1] != (wire.FieldError{Pointer: "/x", Message: "bad"}) {
		t.Fatalf("%+v", e)
	}
	if e := schemas.InvalidInput("many", v); len(e.Errors) > 101 {
		t.Fatalf("%d field errors, want them capped", len(e.Errors))
	}
}
