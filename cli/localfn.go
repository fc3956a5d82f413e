package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// localFunctions builds the function folders under src and runs each as
// its own process against natsURL, restarting crashed ones with backoff.
// It is how `yard up` runs the bundled examples: real processes, as a
// deployed function runs, not goroutines in yard's own address space.
type localFunctions struct {
	src     string // folder whose subfolders are function main packages
	binDir  string
	natsURL string
	env     []string // extra environment for every function
	log     *slog.Logger
	stderr  io.Writer
}

// discover lists the function folders: subfolders of src holding Go files.
func (l *localFunctions) discover() ([]string, error) {
	entries, err := os.ReadDir(l.src)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(l.src, e.Name(), "*.go")); len(m) > 0 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// build compiles every function with one `go build`, which shares the
// compile cache and parallelises across packages.
func (l *localFunctions) build(ctx context.Context, names []string) error {
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("the go command is not on PATH, so the example functions cannot be built")
	}
	if err := os.MkdirAll(l.binDir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-o", l.binDir + string(filepath.Separator)}
	for _, n := range names {
		pkg := filepath.Join(l.src, n)
		if !filepath.IsAbs(pkg) {
			pkg = "." + string(filepath.Separator) + pkg // a relative path, not an import path
		}
		args = append(args, pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// run supervises one process per function until ctx ends, then stops them
// with SIGTERM (they drain) and waits.
func (l *localFunctions) run(ctx context.Context, names []string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.supervise(ctx, n)
		}()
	}
	return &wg
}

func (l *localFunctions) supervise(ctx context.Context, name string) {
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		err := l.runOnce(ctx, name)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		l.log.Warn("function exited; restarting", "fn", name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (l *localFunctions) runOnce(ctx context.Context, name string) error {
	cmd := exec.Command(filepath.Join(l.binDir, name))
	cmd.Env = append(append(os.Environ(), "NATS_URL="+l.natsURL), l.env...)
	pw := &prefixWriter{prefix: name + " | ", w: l.stderr}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(35 * time.Second): // past the function's drain timeout
		_ = cmd.Process.Kill()
		return <-done
	}
}

// prefixWriter writes each line with a prefix, so interleaved function
// logs stay readable.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := indexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		w := bufio.NewWriter(p.w)
		w.WriteString(p.prefix)
		w.Write(p.buf[:i+1])
		w.Flush()
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
