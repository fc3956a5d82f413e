// Command yard runs and talks to Switchyard. See `yard --help`.
package main

import (
	"os"

	"github.com/switchyard-dev/switchyard/cli"
)

func main() { os.Exit(cli.Main()) }
