// Package execlog is how the crash and chaos tests count executions: their
// function appends the input's number to a file of its own per process,
// and the test counts the lines of all of them.
package execlog

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Open opens this process's log in dir for appending. One small write per
// execution (Record) is atomic with O_APPEND, so lines of several
// processes, or of a killed one, never interleave.
func Open(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, fmt.Sprintf("exec-%d.log", os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// Record writes one execution of input n.
func Record(f *os.File, n int) error {
	_, err := fmt.Fprintf(f, "%d\n", n)
	return err
}

// Count reads every log in dir: input number → executions.
func Count(dir string) (map[int]int, error) {
	counts := map[int]int{}
	files, err := filepath.Glob(filepath.Join(dir, "exec-*.log"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				counts[n]++
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return counts, nil
}
