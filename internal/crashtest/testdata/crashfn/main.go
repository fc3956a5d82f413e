// Command crashfn is the function the crash test kills: it records every
// execution by appending the input's number to a file, then answers.
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
	N int `json:"n" jsonschema:"minimum=0"`
}

type Output struct {
	N int `json:"n"`
}

var log *os.File

func work(ctx context.Context, in Input) (Output, error) {
	// A little work, so some invocations are in flight when SIGKILL comes.
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	if err := execlog.Record(log, in.N); err != nil {
		return Output{}, err
	}
	return Output{N: in.N}, nil
}

func main() {
	var err error
	log, err = execlog.Open(os.Getenv("CRASH_LOG_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fn.Main(fn.Config{Name: "crash", Access: "public"}, fn.Handle(work,
		fn.WithTimeout(2*time.Second), fn.WithConcurrency(32), fn.WithRetry(10, 100*time.Millisecond)))
}
