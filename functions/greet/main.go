// Command greet is Switchyard's hello world: it greets someone by name, in
// one of a few languages.
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Input is what greet accepts.
type Input struct {
	Name     string `json:"name" jsonschema:"minLength=1,maxLength=100,description=who to greet"`
	Language string `json:"language,omitempty" jsonschema:"enum=en,enum=fr,enum=de,enum=es,default=en,description=language of the greeting"`
}

// Output is what greet answers.
type Output struct {
	Message string `json:"message"`
}

var greetings = map[string]string{"en": "Hello", "fr": "Bonjour", "de": "Hallo", "es": "Hola"}

// Greet builds the greeting.
func Greet(ctx context.Context, in Input) (Output, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return Output{}, fn.InvalidArgument("/name", "must not be blank")
	}
	lang := in.Language
	if lang == "" {
		lang = "en"
	}
	return Output{Message: fmt.Sprintf("%s, %s!", greetings[lang], name)}, nil
}

// Config is greet's identity.
var Config = fn.Config{Name: "greet", Description: "Says hello", Access: "public"}

func main() { fn.Main(Config, fn.Handle(Greet)) }
