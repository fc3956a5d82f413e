// Package jskv opens the key-value buckets and streams Switchyard keeps in
// JetStream, creating each on first use. Several processes (instances, gateways,
// agents) may start at once and race to create the same bucket; the loser
// opens the winner's.
package jskv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Open returns the bucket cfg.Bucket, creating it with cfg when missing.
// An existing bucket is used as it is: an operator may have tuned it.
func Open(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureStream returns the stream cfg.Name, creating it with cfg when
// missing. An existing stream is used as it is: an operator may have tuned
// it (replicas, limits), and that must not be undone.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// ErrWatchClosed is returned by Follow when the watch ends by itself.
var ErrWatchClosed = errors.New("key-value watch closed")

// Follow hands every update of w to apply until ctx ends (ctx.Err()) or
// the watch closes (ErrWatchClosed), then stops w. ready, when not nil, is
// called once, after the values that existed when the watch began.
func Follow(ctx context.Context, w jetstream.KeyWatcher, ready func(), apply func(jetstream.KeyValueEntry)) error {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return ErrWatchClosed
			case e == nil:
				if ready != nil {
					ready()
				}
			default:
				apply(e)
			}
		}
	}
}

// Window reads, oldest first, the messages of stream on subject filter
// among its newest window messages of any subject (window 0: from after+1),
// starting after sequence after, up to the newest there is when Window
// begins: a busy stream cannot keep one read going. each returns false to
// stop. It reports the sequence of the last message read (after when
// none was). A sequence past the stream's end (the stream was made anew)
// counts as 0.
//
// It reads with one get a message (next by subject), never through a
// consumer: a reader needs the right to get messages, not to create
// consumers, which could deliver the stream anywhere.
func Window(ctx context.Context, stream jetstream.Stream, filter string, after, window uint64, each func(*jetstream.RawStreamMsg) bool) (uint64, error) {
	last, err := stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return after, nil
	}
	if err != nil {
		return after, err
	}
	if after > 0 && last.Sequence <= after {
		if end := streamEnd(ctx, stream); end == 0 || after <= end {
			return after, nil
		}
		after = 0 // the stream ends before after: it was made anew
	}
	start := after + 1
	if window > 0 && last.Sequence >= window && last.Sequence-window+1 > start {
		start = last.Sequence - window + 1
	}
	seen := after
	for seq := start; seq <= last.Sequence; {
		if err := ctx.Err(); err != nil {
			return seen, err
		}
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return seen, err
		}
		if msg.Sequence > last.Sequence {
			break
		}
		seen = msg.Sequence
		if !each(msg) {
			break
		}
		seq = msg.Sequence + 1
	}
	return seen, nil
}

// streamEnd is the stream's last sequence, 0 when unknown.
func streamEnd(ctx context.Context, stream jetstream.Stream) uint64 {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}
