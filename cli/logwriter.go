package cli

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// maxHeld bounds the log output a console keeps back while it holds;
// what comes beyond is counted and dropped (YARD_LOGS keeps it all).
const maxHeld = 1 << 20

// console is the one writer behind everything `yard up` prints, so no line
// is ever cut by another. Progress (the command's own messages) may come a
// piece at a time ("building greet … ", later "done"); log output (the
// functions', the agent's, the gateway's) comes in whole lines from many
// goroutines. Log lines wait, in order, while the console holds (from its
// creation until release: the startup progress) and while a progress line
// is unfinished, and follow once it is done.
type console struct {
	mu      sync.Mutex
	w       io.Writer
	holding bool
	open    bool // the last progress write did not end its line
	held    []byte
	dropped int // log lines not kept while holding
}

func newConsole(w io.Writer) *console { return &console{w: w, holding: true} }

// progress is the writer of the command's own messages: written as they
// come.
func (c *console) progress() io.Writer { return progressOut{c} }

// logs is the writer of log output. Every Write is one or more whole
// lines (as the agent's Output and slog handlers write); one without a
// final newline gets one, so a line never continues another's.
func (c *console) logs() io.Writer { return logOut{c} }

// release ends the hold: held lines follow at once, or once the
// unfinished progress line ends.
func (c *console) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if !c.open {
		c.flush()
	}
}

// close writes whatever is held, ending an unfinished progress line
// first; for the way out, when nothing will finish it.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open && (len(c.held) > 0 || c.dropped > 0) {
		_, _ = c.w.Write([]byte{'\n'})
		c.open = false
	}
	c.holding = false
	c.flush()
}

// flush writes the held lines (call with c.mu held).
func (c *console) flush() {
	if len(c.held) > 0 {
		_, _ = c.w.Write(c.held)
		c.held = nil
	}
	if c.dropped > 0 {
		fmt.Fprintf(c.w, "(%d more log lines not shown here; yard logs <function> has the functions' lines)\n", c.dropped)
		c.dropped = 0
	}
}

type progressOut struct{ c *console }

func (p progressOut) Write(b []byte) (int, error) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.w.Write(b)
	if len(b) > 0 {
		c.open = b[len(b)-1] != '\n'
	}
	if !c.open && !c.holding {
		c.flush()
	}
	return n, err
}

type logOut struct{ c *console }

func (l logOut) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	line := b
	if b[len(b)-1] != '\n' {
		line = append(bytes.Clone(b), '\n')
	}
	c := l.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding || c.open {
		// Once dropping starts, everything is dropped until the flush, so
		// the lines shown never have a silent hole between them.
		if c.dropped > 0 || len(c.held)+len(line) > maxHeld {
			c.dropped += bytes.Count(line, []byte{'\n'})
		} else {
			c.held = append(c.held, line...)
		}
		return len(b), nil
	}
	if _, err := c.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}
