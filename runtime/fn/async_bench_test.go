package fn_test

// Async throughput, against raw JetStream in the same run:
//
//	go test ./runtime -run '^$' -bench AsyncThroughput -benchtime 1x
//
// (a) raw: publish N payloads to a work-queue stream (async publish, acks
// awaited), one consumer acks each; (b) the platform: N invocations
// submitted the way the gateway does (record + publish, PubAck awaited, 64
// submitters), run by one instance of a trivial function, counted complete
// when their result events arrive. (c) raw again on a server with
// --sync always, for the cost of fsyncing every write.

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/invocation"
)

const benchInvocations = 20_000

var benchPayload = []byte(`{"n":7}`)

func BenchmarkAsyncThroughput(b *testing.B) {
	for range b.N {
		// Labels let a CPU profile tell the three apart: -tagfocus side=platform.
		var raw, platform, rawSync float64
		pprof.Do(context.Background(), pprof.Labels("side", "raw"), func(context.Context) { raw = rawJetStream(b, false) })
		pprof.Do(context.Background(), pprof.Labels("side", "platform"), func(context.Context) { platform = platformAsync(b) })
		pprof.Do(context.Background(), pprof.Labels("side", "raw-sync-always"), func(context.Context) { rawSync = rawJetStream(b, true) })
		b.ReportMetric(raw, "raw_per_s")
		b.ReportMetric(platform, "platform_per_s")
		b.ReportMetric(platform/raw, "platform/raw")
		b.ReportMetric(rawSync, "raw_sync_always_per_s")
		b.ReportMetric(rawSync/raw, "sync_always/default")
		fmt.Printf("async: raw JetStream %.0f msg/s; platform %.0f invocations/s (%.2f of raw); raw with sync always %.0f msg/s (%.2f of default)\n",
			raw, platform, platform/raw, rawSync, rawSync/raw)
	}
}

func benchServer(b *testing.B, syncAlways bool) *nats.Conn {
	ns, err := server.Start(server.Config{Port: -1, StoreDir: b.TempDir(), SyncAlways: syncAlways})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// rawJetStream returns messages per second published, consumed and acked.
func rawJetStream(b *testing.B, syncAlways bool) float64 {
	nc := benchServer(b, syncAlways)
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 64})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if acked.Add(1) == benchInvocations {
			close(done)
		}
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	start := time.Now()
	for range benchInvocations {
		if _, err := js.PublishAsync("raw.x", benchPayload, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishes not acknowledged")
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d acked", acked.Load(), benchInvocations)
	}
	return benchInvocations / time.Since(start).Seconds()
}

// platformAsync returns invocations per second, accepted to completed.
func platformAsync(b *testing.B) float64 {
	nc := benchServer(b, false)
	ctx := context.Background()
	fntest.Platform(b, nc)
	inst, err := fn.Start(ctx, nc, fn.Config{Name: "bench"}, fn.Handle(double, fn.WithConcurrency(256)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = inst.Stop(context.Background()) })
	events, err := nc.SubscribeSync("yard.results.bench.*")
	if err != nil {
		b.Fatal(err)
	}
	_ = events.SetPendingLimits(-1, -1)
	js, _ := jetstream.New(natstest.ConnectURL(b, nc.ConnectedUrl()))
	st, err := invocation.Open(ctx, js, invocation.Config{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= benchInvocations {
				if _, _, err := st.Submit(ctx, invocation.Submission{Function: "bench", Body: benchPayload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for n := 0; n < benchInvocations; n++ {
		if _, err := events.NextMsg(time.Minute); err != nil {
			b.Fatalf("%d of %d completed: %v", n, benchInvocations, err)
		}
	}
	elapsed := time.Since(start)
	wg.Wait()
	return benchInvocations / elapsed.Seconds()
}
