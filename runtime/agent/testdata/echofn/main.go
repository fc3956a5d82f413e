// Command echofn is the agent tests' function: it answers with its
// deployed version and the GREETING from its environment.
package main

import (
	"context"
	"os"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

type In struct {
	Name string `json:"name"`
}

type Out struct {
	Version  string `json:"version"`
	Greeting string `json:"greeting"`
	PID      int    `json:"pid"`
}

func main() {
	// ECHO_START_DELAY makes the instance slow to start (a Go duration).
	if d, err := time.ParseDuration(os.Getenv("ECHO_START_DELAY")); err == nil {
		time.Sleep(d)
	}
	fn.Main(fn.Config{Name: "echo"}, fn.Handle(func(ctx context.Context, in In) (Out, error) {
		return Out{Version: os.Getenv("YARD_VERSION"), Greeting: os.Getenv("GREETING") + ", " + in.Name, PID: os.Getpid()}, nil
	}))
}
