package wire

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Liveness is how long a platform connection (gateway, agent, instance)
// waits on a NATS server that stopped answering: a ping every
// PingInterval, and after MaxPingsOut unanswered it counts the server as
// gone and moves to another node of the cluster, in three to four seconds
// where nats.go's defaults (2 minutes, 2 pings) take minutes.
const (
	PingInterval = time.Second
	MaxPingsOut  = 3
)

// Liveness returns the connection options that set it.
func Liveness() []nats.Option {
	return []nats.Option{nats.PingInterval(PingInterval), nats.MaxPingsOutstanding(MaxPingsOut)}
}
