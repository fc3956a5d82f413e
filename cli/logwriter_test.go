package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestConsoleHoldsLogsUntilRelease: log lines written during the start
// come after its progress, each whole, in order, and none inside a
// progress line written a piece at a time.
func TestConsoleHoldsLogsUntilRelease(t *testing.T) {
	var out strings.Builder
	c := newConsole(&out)
	p, l := c.progress(), c.logs()
	fmt.Fprint(p, "building greet … ")
	fmt.Fprint(l, "greet/v1-aaaa: serving\n")
	fmt.Fprint(l, "time=now level=INFO msg=\"instance started\"") // no newline: gets one
	fmt.Fprint(p, "done\n")
	fmt.Fprint(p, "deployed greet v1\n")
	c.release()
	fmt.Fprint(p, "waiting … ")
	fmt.Fprint(l, "greet/v1-aaaa: later\n")
	if got, want := out.String(), "building greet … done\ndeployed greet v1\ngreet/v1-aaaa: serving\ntime=now level=INFO msg=\"instance started\"\nwaiting … "; got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	fmt.Fprint(p, "ok\n") // ends the line: the waiting log line follows
	fmt.Fprint(l, "greet/v1-aaaa: now\n")
	if !strings.HasSuffix(out.String(), "waiting … ok\ngreet/v1-aaaa: later\ngreet/v1-aaaa: now\n") {
		t.Fatalf("after the progress line: %q", out.String())
	}
}

// TestConsoleConcurrentLines: instances and progress writing at once never
// share a line, and every line keeps its instance prefix.
func TestConsoleConcurrentLines(t *testing.T) {
	var out strings.Builder
	c := newConsole(&out)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := c.logs()
			for i := range lines {
				// As the agent writes: prefix and line in one Write; now and
				// then two lines at once.
				if i%10 == 0 {
					fmt.Fprintf(l, "fn%d/v1-%04d: line %d\nfn%d/v1-%04d: line %d+\n", w, w, i, w, w, i)
				} else {
					fmt.Fprintf(l, "fn%d/v1-%04d: line %d\n", w, w, i)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := c.progress()
		for i := range lines {
			if i == lines/2 {
				c.release()
			}
			fmt.Fprintf(p, "step %d … ", i)
			fmt.Fprintf(p, "done %d\n", i)
		}
	}()
	wg.Wait()
	c.close()

	seen := map[string]bool{}
	for line := range strings.Lines(out.String()) {
		var w, x, i int
		var rest string
		switch {
		case strings.HasPrefix(line, "step "):
			if _, err := fmt.Sscanf(line, "step %d … done %d\n", &i, &x); err != nil || i != x {
				t.Fatalf("progress line cut: %q", line)
			}
		default:
			if _, err := fmt.Sscanf(line, "fn%d/v1-%04d: line %s\n", &w, &x, &rest); err != nil || w != x {
				t.Fatalf("log line cut or without its prefix: %q", line)
			}
		}
		if seen[line] {
			t.Fatalf("line twice: %q", line)
		}
		seen[line] = true
	}
	if want := writers*(lines+lines/10) + lines; len(seen) != want {
		t.Fatalf("%d lines, want %d", len(seen), want)
	}
}

// TestConsoleBoundsHeld: a start that logs without end keeps a bounded
// amount and says how much it left out.
func TestConsoleBoundsHeld(t *testing.T) {
	var out strings.Builder
	c := newConsole(&out)
	line := strings.Repeat("x", 1023) + "\n"
	for range maxHeld/len(line) + 5 {
		_, _ = io.WriteString(c.logs(), line)
	}
	// Once lines are dropped, a shorter one that would still fit is
	// dropped too: no silent hole between the lines shown.
	_, _ = io.WriteString(c.logs(), "short\n")
	c.release()
	if !strings.HasSuffix(out.String(), "x\n(6 more log lines not shown here; yard logs <function> has the functions' lines)\n") ||
		len(out.String()) > maxHeld+200 {
		t.Fatalf("%d bytes, ending %q", len(out.String()), out.String()[len(out.String())-120:])
	}
}
