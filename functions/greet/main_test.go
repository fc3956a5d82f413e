package main

import (
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func TestGreet(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Greet))
	tests := []struct {
		in   Input
		want string
	}{
		{Input{Name: "Ada"}, "Hello, Ada!"},
		{Input{Name: "Ada", Language: "fr"}, "Bonjour, Ada!"},
		{Input{Name: "  Grace "}, "Hello, Grace!"},
	}
	for _, tt := range tests {
		t.Run(tt.in.Name+tt.in.Language, func(t *testing.T) {
			out, err := fntest.Invoke[Output](t, h, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if out.Message != tt.want {
				t.Errorf("got %q, want %q", out.Message, tt.want)
			}
		})
	}
}

func TestGreetRejects(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Greet))
	tests := []struct {
		name, body, pointer string
	}{
		{"missing name", `{}`, "/name"},
		{"empty name", `{"name":""}`, "/name"},
		{"blank name", `{"name":"   "}`, "/name"},
		{"unknown language", `{"name":"Ada","language":"xx"}`, "/language"},
		{"unknown field", `{"name":"Ada","nmae":"x"}`, "/nmae"},
		{"wrong type", `{"name":42}`, "/name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, we := h.Request(t, []byte(tt.body))
			if we == nil || we.Code != wire.CodeInvalidArgument {
				t.Fatalf("got %v, want invalid_argument", we)
			}
			if len(we.Errors) == 0 || we.Errors[0].Pointer != tt.pointer {
				t.Errorf("errors %+v, want pointer %s", we.Errors, tt.pointer)
			}
		})
	}
}
