package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// MaxAutoReplicas is the replica count of platform streams on a cluster
// of that many JetStream nodes or more: one node may fail (or be
// restarted) without losing a write or the majority each stream needs.
const MaxAutoReplicas = 3

// replicasInterval is how often the meta leader checks that every stream
// has the replicas the cluster calls for: streams made since (a
// function's bucket or event stream) and streams of a cluster that grew.
const replicasInterval = 5 * time.Second

// waitJetStream returns once the account's JetStream answers. A cluster
// node starting alone waits here until a majority of the nodes has
// elected a meta leader; it says so every few seconds.
func waitJetStream(ctx context.Context, js jetstream.JetStream, log *slog.Logger) error {
	start, said := time.Now(), time.Now()
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("platform: JetStream not ready: %w", err)
		}
		if time.Since(said) >= 5*time.Second {
			said = time.Now()
			log.Warn("waiting for JetStream: a cluster needs a majority of its nodes up to elect a meta leader",
				"waited", time.Since(start).Round(time.Second), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// replicasFor is the replica count platform streams should have: want
// when set, else MaxAutoReplicas on a cluster that large, else the
// cluster's size. 1 when not clustered.
func replicasFor(ns *natsserver.Server, want int) int {
	if !ns.JetStreamIsClustered() {
		return 1
	}
	jsz, err := ns.Jsz(&natsserver.JSzOptions{})
	if err != nil || jsz.Meta == nil {
		return 1
	}
	if want > 0 {
		// More replicas than nodes can never be placed.
		return max(1, min(want, jsz.Meta.Size))
	}
	return max(1, min(MaxAutoReplicas, jsz.Meta.Size))
}

// MetaReplicas is the stream metadata key that opts a stream out of the
// replicas keeper: "manual" leaves its replica count to the operator.
const MetaReplicas = "switchyard.replicas"

// keepReplicas raises every stream of the account below the replica
// count target gives, now and every replicasInterval, on the passes
// target says this process should (an embedded node: while it leads the
// meta group). It never lowers one: an operator may have chosen more.
func keepReplicas(ctx context.Context, target func(context.Context) (n int, now bool), js jetstream.JetStream, log *slog.Logger) {
	t := time.NewTicker(replicasInterval)
	defer t.Stop()
	failing := map[string]string{} // stream → the error last logged
	for {
		if n, now := target(ctx); now {
			raiseReplicas(ctx, js, n, failing, log)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// raiseReplicas sets every stream below n replicas to n, but those an
// operator marked manual (MetaReplicas). One that cannot be raised now (a
// node is down) is tried again on the next pass; failing keeps the error
// last logged for each, so a lasting one is logged once, not every pass.
func raiseReplicas(ctx context.Context, js jetstream.JetStream, n int, failing map[string]string, log *slog.Logger) (raised []string) {
	if n <= 1 {
		return nil
	}
	var low []jetstream.StreamConfig
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		if info.Config.Replicas < n && info.Config.Metadata[MetaReplicas] != "manual" {
			low = append(low, info.Config)
		}
	}
	if err := streams.Err(); err != nil {
		log.Debug("replicas: list streams", "err", err)
	}
	for _, cfg := range low {
		from := cfg.Replicas
		cfg.Replicas = n
		uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := js.UpdateStream(uctx, cfg)
		cancel()
		if err != nil {
			if failing[cfg.Name] != err.Error() {
				log.Warn("replicas: cannot raise a stream now; trying again every few seconds", "stream", cfg.Name, "replicas", n, "err", err)
				failing[cfg.Name] = err.Error()
			}
			continue
		}
		delete(failing, cfg.Name)
		log.Info("replicas: stream raised", "stream", cfg.Name, "from", max(from, 1), "to", n)
		raised = append(raised, cfg.Name)
	}
	return raised
}

// serveServers answers SubjectServers with this node's ServerInfo.
func (p *Platform) serveServers(nc *nats.Conn, account string) error {
	started := time.Now().UTC()
	_, err := nc.Subscribe(wire.SubjectServers, func(m *nats.Msg) {
		b, _ := json.Marshal(p.serverInfo(account, started))
		_ = m.Respond(b)
	})
	return err
}

func (p *Platform) serverInfo(account string, started time.Time) wire.ServerInfo {
	ns := p.NS
	info := wire.ServerInfo{Name: ns.Name(), PID: os.Getpid(), ClientURL: ns.ClientURL(), Routes: ns.NumRoutes(),
		Version: natsserver.VERSION, Started: started, Leads: []string{}}
	clustered := ns.JetStreamIsClustered()
	if clustered {
		info.Cluster = ns.ClusterName()
		info.MetaLeader = ns.JetStreamIsLeader()
	} else {
		info.MetaLeader = true
	}
	jsz, err := ns.Jsz(&natsserver.JSzOptions{Account: account, Accounts: true, Streams: true})
	if err != nil {
		return info
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if !clustered || (st.Cluster != nil && st.Cluster.Leader == info.Name) {
				info.Leads = append(info.Leads, st.Name)
			}
		}
	}
	slices.Sort(info.Leads)
	if info.MetaLeader && jsz.Meta != nil {
		for _, r := range jsz.Meta.Replicas {
			info.Peers = append(info.Peers, wire.ServerPeer{Name: r.Name, Current: r.Current, Offline: r.Offline, Active: r.Active})
		}
	}
	return info
}
