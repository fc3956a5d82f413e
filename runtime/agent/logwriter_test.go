package agent

import (
	"bytes"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestLogWriterFlush: a line a process left unfinished when it died ends
// there, and is not glued to the next run's first line.
func TestLogWriterFlush(t *testing.T) {
	var out bytes.Buffer
	l := &logWriter{nc: natstest.Connect(t, natstest.Run(t)), subject: "yard.logs.echo.x", prefix: "echo/x: ", out: &out}
	_, _ = l.Write([]byte("panic: half a line"))
	l.flush()
	l.flush() // nothing left: no empty line
	_, _ = l.Write([]byte("serving\n"))
	if got, want := out.String(), "echo/x: panic: half a line\necho/x: serving\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
