package wire

import "time"

// SubjectServers is where every platform NATS server answers who it is
// (`yard servers`): a request gathers one ServerInfo from each node that
// is up. Only admins may publish or subscribe to it.
const SubjectServers = "yard.servers"

// ServerInfo is one node's answer on SubjectServers.
type ServerInfo struct {
	Name      string    `json:"name"`
	PID       int       `json:"pid"`
	ClientURL string    `json:"client_url"`
	Cluster   string    `json:"cluster,omitempty"` // "" when not clustered
	Routes    int       `json:"routes"`            // routes to other nodes
	Version   string    `json:"version"`           // nats-server's
	Started   time.Time `json:"started"`
	// MetaLeader is set on the node that leads JetStream's placement of
	// streams (the meta group); every node when not clustered.
	MetaLeader bool `json:"meta_leader"`
	// Leads are the platform streams (KV_ and OBJ_ included) whose leader
	// is this node: it takes their writes.
	Leads []string `json:"leads"`
	// Peers are the JetStream nodes the meta leader knows, with their
	// state: only the meta leader of a cluster sends them.
	Peers []ServerPeer `json:"peers,omitempty"`
}

// ServerPeer is a JetStream node as the meta leader sees it.
type ServerPeer struct {
	Name    string        `json:"name"`
	Current bool          `json:"current"`
	Offline bool          `json:"offline"`
	Active  time.Duration `json:"active_ns"` // since last heard from
}
