package fn

import (
	"sync"
	"testing"
)

func TestWorkersReuseAndStop(t *testing.T) {
	var w workers
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran := 0
	for range 200 {
		wg.Add(1)
		w.run(func() {
			defer wg.Done()
			mu.Lock()
			ran++
			mu.Unlock()
		})
	}
	wg.Wait()
	if ran != 200 {
		t.Fatalf("ran %d jobs, want 200", ran)
	}
	// Jobs that never overlapped reuse a few workers rather than one each.
	w.mu.Lock()
	idle := len(w.idle)
	w.mu.Unlock()
	if idle == 0 || idle > 200 {
		t.Fatalf("%d idle workers", idle)
	}
	w.stop()
	if len(w.idle) != 0 {
		t.Fatal("stop left idle workers")
	}
}
