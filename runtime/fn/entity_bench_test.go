package fn_test

// Event sourcing: append and load, each against raw JetStream in the same
// run (docs/performance.md, "Event sourcing: append and load"):
//
//	go test ./runtime/fn -run '^$' -bench 'Append|Load' -benchmem -count 3
//
// Append: fn.Append to one entity, with and without ExpectVersion (each
// append expecting the version the previous one returned), against
// jetstream.JetStream.Publish of the same bytes to the same stream; then
// the same from 16 goroutines, each on an entity of its own.
//
// Load: an entity of 10, 1,000 or 100,000 events (for 1,000 and 100,000,
// the last 5 appended after its snapshot was kept), read and folded by
// fn.Load, by fn.Load with Snapshot(1000), and by a JetStream ordered
// consumer filtered on the entity's subject, read until NumPending is 0
// and folded with the same fold. -short skips the 100,000-event entity.
//
// The fn side runs in a handler's context, as functions call it: a
// function declaring the CARTS stream holds one invocation open and lends
// the benchmark its context. (From a WithConn context, Append and Load
// first ask the server which stream holds the subject: append-withconn.)
//
// Every server is embedded in the test process, so allocs/op counts the
// server's allocations too: compare them between rows, not with zero.
// Nothing here asserts a time.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// benchEntityIDs keeps the entities of every benchmark run apart.
var benchEntityIDs atomic.Int64

func benchSubject(prefix string) string {
	return fmt.Sprintf("cart.%s%d", prefix, benchEntityIDs.Add(1))
}

type benchHold struct {
	N int `json:"n"`
}

// entityBench is a server with the CARTS entity stream provisioned as the
// platform does it (entityServer, for a benchmark).
type entityBench struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	raw context.Context // for the raw side: no fn values, an hour's deadline
	fn  context.Context // a handler's context: its function declares CARTS
}

func newEntityBench(b *testing.B) *entityBench {
	b.Helper()
	s := natstest.Run(b)
	nc := natstest.Connect(b, s)
	fntest.Platform(b, nc)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	p, err := provision.New(context.Background(), js, nil)
	if err != nil {
		b.Fatal(err)
	}
	spec := &registry.Spec{Name: "carts", Streams: []registry.Stream{{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true}}}
	if err := p.Apply(context.Background(), spec); err != nil {
		b.Fatal(err)
	}
	raw, cancel := context.WithTimeout(context.Background(), time.Hour)
	b.Cleanup(cancel)

	// A handler that lends out its context until the benchmark ends.
	lent := make(chan context.Context, 1)
	release := make(chan struct{})
	hold := fn.Handle(func(ctx context.Context, in benchHold) (benchHold, error) {
		lent <- ctx
		select {
		case <-release:
		case <-ctx.Done():
		}
		return in, nil
	}, fn.WithTimeout(time.Hour))
	inst, err := fn.Start(context.Background(), nc, fn.Config{Name: "cartbench", Streams: []fn.Stream{cartStream}}, hold)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = inst.Stop(context.Background()) })
	go func() { _, _ = fn.Invoke[benchHold](fn.WithConn(raw, nc), "cartbench", benchHold{}) }()
	b.Cleanup(func() { close(release) }) // runs before inst.Stop
	select {
	case ctx := <-lent:
		return &entityBench{nc: nc, js: js, raw: raw, fn: ctx}
	case <-time.After(30 * time.Second):
		b.Fatal("the holding handler did not start")
		return nil
	}
}

// reportRate adds what per second the benchmark did, n per op.
func reportRate(b *testing.B, n int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/s, unit)
	}
}

func BenchmarkAppend(b *testing.B) {
	e := newEntityBench(b)
	ev := itemAdded{SKU: "tea", Qty: 1}
	data, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("raw-publish", func(b *testing.B) {
		subj := benchSubject("raw")
		for b.Loop() {
			if _, err := e.js.Publish(e.raw, subj, data); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "appends/s")
	})
	b.Run("append", func(b *testing.B) {
		subj := benchSubject("plain")
		for b.Loop() {
			if _, err := fn.Append(e.fn, subj, ev); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "appends/s")
	})
	b.Run("append-expect", func(b *testing.B) {
		subj := benchSubject("expect")
		var v uint64
		for b.Loop() {
			if v, err = fn.Append(e.fn, subj, ev, fn.ExpectVersion(v)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "appends/s")
	})
	b.Run("append-withconn", func(b *testing.B) {
		ctx := fn.WithConn(e.raw, e.nc)
		subj := benchSubject("conn")
		for b.Loop() {
			if _, err := fn.Append(ctx, subj, ev); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, 1, "appends/s")
	})

	// 16 goroutines on 2 cores, each on an entity of its own.
	const parallelism = 8
	b.Run("parallel-raw-publish", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			subj := benchSubject("praw")
			for pb.Next() {
				if _, err := e.js.Publish(e.raw, subj, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, 1, "appends/s")
	})
	b.Run("parallel-append", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			subj := benchSubject("pplain")
			for pb.Next() {
				if _, err := fn.Append(e.fn, subj, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, 1, "appends/s")
	})
	b.Run("parallel-append-expect", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			subj := benchSubject("pexpect")
			var v uint64
			var err error
			for pb.Next() {
				if v, err = fn.Append(e.fn, subj, ev, fn.ExpectVersion(v)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b, 1, "appends/s")
	})
}

// afterSnapshot is how many events the loaded entities have beyond their
// snapshot.
const afterSnapshot = 5

func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			if n > 1_000 && testing.Short() {
				b.Skip("-short: no 100,000-event entity")
			}
			benchLoad(b, n)
		})
	}
}

func benchLoad(b *testing.B, n int) {
	e := newEntityBench(b)
	subj := benchSubject("load")
	// n events, the last afterSnapshot of them appended after a snapshot:
	// the steady state of an entity loaded with Snapshot(1000), which
	// keeps one every 1,000 events folded. Its snapshot is taken here at
	// n-afterSnapshot (Snapshot(1) writes the same snapshot sooner). An
	// entity of 10 events never has one under Snapshot(1000): its row is
	// what the option costs an entity too short for it.
	fillEntity(b, e.js, subj, 0, n-afterSnapshot)
	if n >= 1000 {
		if _, _, err := fn.Load(e.fn, subj, foldCart, fn.Snapshot(1)); err != nil {
			b.Fatal(err)
		}
	}
	fillEntity(b, e.js, subj, n-afterSnapshot, n)
	info, err := e.js.Stream(e.raw, "CARTS")
	if err != nil {
		b.Fatal(err)
	}
	version := info.CachedInfo().State.LastSeq

	var folded int
	count := func(s cartState, ev fn.Event) (cartState, error) {
		folded++
		return foldCart(s, ev)
	}
	check := func(b *testing.B, st cartState, v uint64) {
		if st.Events != n || v != version {
			b.Fatalf("loaded %d events at version %d, want %d at %d", st.Events, v, n, version)
		}
	}
	report := func(b *testing.B) {
		reportRate(b, n, "events/s")
		b.ReportMetric(float64(folded)/float64(b.N), "folded/op")
	}

	b.Run("raw-ordered-consumer", func(b *testing.B) {
		folded = 0
		var names []string
		for i := 0; i < b.N; i++ {
			st, v, name, err := readOrdered(e.raw, e.js, subj, count)
			if err != nil {
				b.Fatal(err)
			}
			check(b, st, v)
			// Ordered consumers outlive their reader (InactiveThreshold, 5
			// minutes): delete them, outside the timed part, so they do not
			// pile up on the server.
			if names = append(names, name); len(names) == 100 || i == b.N-1 {
				b.StopTimer()
				for _, name := range names {
					_ = e.js.DeleteConsumer(e.raw, "CARTS", name)
				}
				names = names[:0]
				b.StartTimer()
			}
		}
		report(b)
	})
	b.Run("load", func(b *testing.B) {
		folded = 0
		for b.Loop() {
			st, v, err := fn.Load(e.fn, subj, count)
			if err != nil {
				b.Fatal(err)
			}
			check(b, st, v)
		}
		report(b)
	})
	b.Run("load-snapshot", func(b *testing.B) {
		folded = 0
		for b.Loop() {
			st, v, err := fn.Load(e.fn, subj, count, fn.Snapshot(1000))
			if err != nil {
				b.Fatal(err)
			}
			check(b, st, v)
		}
		report(b)
	})
}

// fillEntity appends events from to to of the entity at subj, as
// fn.Append would write itemAdded events.
func fillEntity(b *testing.B, js jetstream.JetStream, subj string, from, to int) {
	b.Helper()
	for k := from; k < to; k++ {
		m := &nats.Msg{Subject: subj, Data: fmt.Appendf(nil, `{"sku":"s%d","qty":1}`, k%7),
			Header: nats.Header{fn.HeaderEventType: {"itemAdded"}}}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		b.Fatal("events not acknowledged")
	}
}

// readOrdered reads the events of subj the way a NATS user reads one
// subject: an ordered consumer filtered on it, until NumPending is 0. It
// folds them with fold, as fn.Load does, and returns the consumer's name.
func readOrdered(ctx context.Context, js jetstream.JetStream, subj string, fold func(cartState, fn.Event) (cartState, error)) (cartState, uint64, string, error) {
	var st cartState
	cons, err := js.OrderedConsumer(ctx, "CARTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return st, 0, "", err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return st, 0, "", err
	}
	defer it.Stop()
	var v uint64
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return st, 0, "", err
		}
		meta, err := m.Metadata()
		if err != nil {
			return st, 0, "", err
		}
		ev := fn.Event{Subject: subj, Type: m.Headers().Get(fn.HeaderEventType), Seq: meta.Sequence.Stream, Time: meta.Timestamp, Data: m.Data()}
		if st, err = fold(st, ev); err != nil {
			return st, 0, "", err
		}
		v = meta.Sequence.Stream
		if meta.NumPending == 0 {
			return st, v, cons.CachedInfo().Name, nil
		}
	}
}
