package invocation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// recentWindow bounds the updates of yard_results Recent looks back
// through: every function's records share the bucket, each invocation
// writes its record two or three times, and each update of this
// function's among them is one get.
const recentWindow = 5000

// Recent returns up to limit of function name's most recently updated
// records, newest first, as the last recentWindow updates of yard_results
// hold them. The bucket keeps no index by time, so an invocation updated
// before those is not among them.
func Recent(ctx context.Context, js jetstream.JetStream, name string, limit int) ([]*Record, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "KV_"+wire.BucketResults)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return []*Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invocation: %w", err)
	}
	type seen struct {
		seq uint64
		rec *Record
	}
	prefix := "$KV." + wire.BucketResults + "." + wire.ResultKey(name, "")
	latest := map[string]seen{}
	_, err = jskv.Window(ctx, stream, prefix+"*", 0, recentWindow, func(msg *jetstream.RawStreamMsg) bool {
		id := strings.TrimPrefix(msg.Subject, prefix)
		if op := msg.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			delete(latest, id)
			return true
		}
		if rec, err := decodeRecord(id, msg.Data); err == nil {
			latest[id] = seen{msg.Sequence, rec}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("invocation: recent records of %s: %w", name, err)
	}
	all := make([]seen, 0, len(latest))
	for _, s := range latest {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b seen) int { return cmp.Compare(b.seq, a.seq) })
	out := make([]*Record, 0, min(limit, len(all)))
	for _, s := range all[:min(limit, len(all))] {
		out = append(out, s.rec)
	}
	return out, nil
}
