// Command greet (test version) adds a required field to greet's input: a
// breaking change yard deploy must refuse without --force.
package main

import (
	"context"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

type Input struct {
	Name  string `json:"name" jsonschema:"minLength=1"`
	Title string `json:"title"`
}

type Output struct {
	Message string `json:"message"`
}

func main() {
	fn.Main(fn.Config{Name: "greet", Description: "Says hello"}, fn.Handle(func(ctx context.Context, in Input) (Output, error) {
		return Output{Message: "Hello, " + in.Title + " " + in.Name + "!"}, nil
	}))
}
