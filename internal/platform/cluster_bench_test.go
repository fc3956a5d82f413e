package platform_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// BenchmarkAccept measures how fast async invocations are accepted
// (stored in YARD_ASYNC and acknowledged) by one server, R1, and by a
// three-node cluster, R3, in the same process: the ratio is the cost of
// replication. 16 submitters, as many gateways' requests would be.
//
//	go test ./internal/platform -run '^$' -bench Accept -benchtime 5000x
func BenchmarkAccept(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var dir string
			var urls []string
			if n == 1 {
				p := startOne(b)
				dir, urls = p.dir, []string{p.NS.ClientURL()}
			} else {
				_, dir, urls = startCluster(b, n)
			}
			nc := natstest.ConnectURL(b, strings.Join(urls, ","), nats.UserCredentials(platform.CredsFile(dir, platform.RoleAdmin)),
				nats.CustomInboxPrefix(roles.AdminInbox))
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			deadline := time.Now().Add(time.Minute)
			for { // the keeper raises YARD_ASYNC to R3 shortly after the start
				if err := settled(ctx, js, n); err == nil {
					break
				} else if time.Now().After(deadline) {
					b.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			store, err := invocation.Open(ctx, js, invocation.Config{})
			if err != nil {
				b.Fatal(err)
			}
			for range 500 { // warm up
				if _, _, err := store.Submit(ctx, invocation.Submission{Function: "bench", Body: []byte(`{}`)}); err != nil {
					b.Fatal(err)
				}
			}
			const submitters = 16
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			next := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			for range submitters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						if _, _, err := store.Submit(ctx, invocation.Submission{Function: "bench", Body: []byte(`{"n":1}`)}); err != nil {
							mu.Lock()
							failed = err
							mu.Unlock()
						}
					}
				}()
			}
			for range b.N {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepts/s")
		})
	}
}

// settled reports (nil) whether YARD_ASYNC has n replicas, a leader, and
// every follower caught up: no election or catch-up in the measurement.
func settled(ctx context.Context, js jetstream.JetStream, n int) error {
	st, err := js.Stream(ctx, wire.StreamAsync)
	if err != nil {
		return err
	}
	info := st.CachedInfo()
	if info.Config.Replicas != n {
		return fmt.Errorf("YARD_ASYNC at R%d, want R%d", info.Config.Replicas, n)
	}
	if n == 1 {
		return nil
	}
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != n-1 {
		return fmt.Errorf("YARD_ASYNC not settled: %+v", info.Cluster)
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current {
			return fmt.Errorf("YARD_ASYNC replica %s behind", r.Name)
		}
	}
	return nil
}

// onePlatform is a single server's platform and its data directory.
type onePlatform struct {
	*platform.Platform
	dir string
}

func startOne(tb testing.TB) onePlatform {
	tb.Helper()
	dir := tb.TempDir()
	p, err := platform.Start(context.Background(), platform.Config{
		Server: server.Config{Port: -1, StoreDir: dir + "/jetstream"}, Dir: dir,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return onePlatform{p, dir}
}
