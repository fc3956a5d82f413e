package wire

import "time"

// How long a platform connection (gateway, agent, instance) waits on a
// NATS server that stopped answering: a ping every PingInterval, and after
// MaxPingsOut unanswered it counts the server as gone and moves to another
// node of the cluster, in three to four seconds where nats.go's defaults
// (2 minutes, 2 pings) take minutes. Pass them as nats.PingInterval and
// nats.MaxPingsOutstanding.
const (
	PingInterval = time.Second
	MaxPingsOut  = 3
)
