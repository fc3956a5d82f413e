// Command chaosfn is the function the chaos test deploys: it records every
// execution of an async invocation by appending the input's number to a
// file of its own in $CHAOS_LOG_DIR, then answers. Sync requests (sync:
// true) only answer, so the log counts async executions alone.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/switchyard-dev/switchyard/internal/execlog"
	"github.com/switchyard-dev/switchyard/runtime/fn"
)

type Input struct {
	N    int  `json:"n" jsonschema:"minimum=0"`
	Sync bool `json:"sync,omitempty"`
}

type Output struct {
	N int `json:"n"`
}

var log *os.File

func work(ctx context.Context, in Input) (Output, error) {
	// A little work, so some invocations are in flight when a node dies.
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	if !in.Sync && log != nil {
		if err := execlog.Record(log, in.N); err != nil {
			return Output{}, err
		}
	}
	return Output{N: in.N}, nil
}

func main() {
	// Deployed, the spec's env names the folder. `yard deploy` also runs
	// the binary for its manifest, without it: no log then.
	if dir := os.Getenv("CHAOS_LOG_DIR"); dir != "" {
		var err error
		log, err = execlog.Open(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fn.Main(fn.Config{Name: "chaos", Description: "The chaos test's function", Access: "public"}, fn.Handle(work,
		fn.WithTimeout(5*time.Second), fn.WithConcurrency(32), fn.WithRetry(10, 200*time.Millisecond)))
}
