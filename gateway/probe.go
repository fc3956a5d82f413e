package gateway

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// probeSubject is where /readyz writes to find out whether JetStream
// stores: account information is answered even when a stream's writes
// fail, so readiness takes a real write.
const probeSubject = wire.ProbePrefix + "gateway"

var probeStream = jetstream.StreamConfig{
	Name:              wire.StreamProbe,
	Description:       "Switchyard readiness probe: the gateways' last readiness write",
	Subjects:          []string{wire.ProbePrefix + ">"},
	Storage:           jetstream.FileStorage,
	MaxMsgsPerSubject: 1,
	MaxAge:            time.Hour,
	Discard:           jetstream.DiscardOld,
}

// EnsureProbe creates YARD_PROBE, the stream /readyz writes to, when it is
// missing. The platform makes it with its other streams.
func EnsureProbe(ctx context.Context, js jetstream.JetStream) error {
	_, err := jskv.EnsureStream(ctx, js, probeStream)
	return err
}
