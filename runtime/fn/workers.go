package fn

import "sync"

// workers runs jobs on long-lived goroutines, most recently idle first. A
// handler's goroutine grows its stack while it validates (the validator
// recurses); a fresh goroutine per request grows it again every time, a
// reused one keeps it. Profiles put that regrowth at 7% of a request's CPU.
type workers struct {
	mu      sync.Mutex
	idle    []chan func()
	stopped bool
}

// run hands job to an idle worker, or starts one. The instance's slots
// bound how many jobs run at once, and so how many workers exist.
func (w *workers) run(job func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		ch := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- job
		return
	}
	w.mu.Unlock()
	ch := make(chan func(), 1)
	go func() {
		for job != nil {
			job()
			w.mu.Lock()
			if w.stopped {
				// The job's own bookkeeping may let stop run before
				// the worker gets here: it must not wait for ever.
				w.mu.Unlock()
				return
			}
			w.idle = append(w.idle, ch)
			w.mu.Unlock()
			job = <-ch
		}
	}()
}

// stop ends the idle workers; call it once no job can be handed out.
func (w *workers) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
}
