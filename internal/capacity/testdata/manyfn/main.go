// Command manyfn is the capacity benchmark's function: greet's handler
// under the name in MANYFN_NAME, so one binary is deployed under many
// names (a binary's name is otherwise compiled in).
package main

import (
	"context"
	"os"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

type Input struct {
	Name string `json:"name" jsonschema:"minLength=1,maxLength=100"`
}

type Output struct {
	Message string `json:"message"`
}

func main() {
	name := os.Getenv("MANYFN_NAME")
	if name == "" {
		name = "manyfn" // the manifest's; the deploy renames it
	}
	fn.Main(fn.Config{Name: name, Description: "Says hello under many names"},
		fn.Handle(func(_ context.Context, in Input) (Output, error) {
			return Output{Message: "Hello, " + in.Name + "!"}, nil
		}))
}
