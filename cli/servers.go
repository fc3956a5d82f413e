package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// serverRow is one node in `yard servers`, and its --json form: what the
// node said, or, for a node the meta leader knows that did not answer,
// its name alone with Answering false.
type serverRow struct {
	wire.ServerInfo
	Answering bool `json:"answering"`
	// State is the meta leader's view: current, behind, offline, or
	// unknown (no meta leader answered).
	State string `json:"state"`
}

func newServersCmd(f *factory) *cobra.Command {
	var asJSON bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "servers",
		Short: "List the NATS servers of the platform and what each leads",
		Long: `List the platform's NATS servers (one, or the nodes of a cluster): name,
process id, client URL, and what each leads: "meta" for the node that places
streams, and the streams (KV_ and OBJ_ ones included) whose writes go
through it. Each node answers on yard.servers (admins only); a node the
cluster knows that does not answer within --wait is listed as not
answering, with the meta leader's view of it (offline, behind).`,
		Example: `  yard servers
  yard servers --json | jq -r '.[] | select(.leads | index("YARD_ASYNC")) | .pid'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := f.connect("yard servers")
			if err != nil {
				return err
			}
			defer nc.Close()
			rows, err := gatherServers(cmd.Context(), nc, wait)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(f, rows)
			}
			return printServers(f, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.Flags().DurationVar(&wait, "wait", 500*time.Millisecond, "how long to collect the nodes' answers")
	return cmd
}

// gatherServers asks every node and waits up to wait for their answers.
func gatherServers(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]serverRow, error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(wire.SubjectServers, inbox, nil); err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	var rows []serverRow
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		m, err := sub.NextMsg(left)
		if err != nil {
			break
		}
		var info wire.ServerInfo
		if json.Unmarshal(m.Data, &info) != nil || info.Name == "" {
			continue
		}
		rows = append(rows, serverRow{ServerInfo: info, Answering: true})
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
		return nil, fmt.Errorf("cannot list the servers: %w (this needs the admin's credential: --creds .yard/admin.creds)", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("no server answered on " + wire.SubjectServers + " (is this a Switchyard server, yard up or yard server, and the admin's credential?)")
	}
	return mergePeers(rows), nil
}

// mergePeers adds the meta leader's view of each node, and a row for each
// node it knows that did not answer; sorted by name.
func mergePeers(rows []serverRow) []serverRow {
	var leader *wire.ServerInfo
	for i := range rows {
		if rows[i].MetaLeader && len(rows[i].Peers) > 0 {
			leader = &rows[i].ServerInfo
		}
	}
	state := map[string]string{}
	if leader != nil {
		state[leader.Name] = "current"
		for _, p := range leader.Peers {
			switch {
			case p.Offline:
				state[p.Name] = "offline"
			case p.Current:
				state[p.Name] = "current"
			default:
				state[p.Name] = "behind"
			}
		}
	}
	seen := map[string]bool{}
	for i := range rows {
		seen[rows[i].Name] = true
		rows[i].State = "unknown"
		if s, ok := state[rows[i].Name]; ok {
			rows[i].State = s
		} else if rows[i].Cluster == "" {
			rows[i].State = "current" // alone: nobody to be behind
		}
	}
	if leader != nil {
		for _, p := range leader.Peers {
			if !seen[p.Name] {
				rows = append(rows, serverRow{ServerInfo: wire.ServerInfo{Name: p.Name, Leads: []string{}}, State: state[p.Name]})
			}
		}
	}
	slices.SortFunc(rows, func(a, b serverRow) int { return strings.Compare(a.Name, b.Name) })
	return rows
}

func printServers(f *factory, rows []serverRow) error {
	tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tCLIENT URL\tSTATE\tLEADS")
	for _, r := range rows {
		if !r.Answering {
			fmt.Fprintf(tw, "%s\t-\t-\tnot answering (%s)\t-\n", r.Name, r.State)
			continue
		}
		var leads []string
		if r.MetaLeader && r.Cluster != "" {
			leads = append(leads, "meta")
		}
		leads = append(leads, r.Leads...)
		l := strings.Join(leads, ", ")
		if l == "" {
			l = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Name, r.PID, r.ClientURL, r.State, l)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	clustered, leader := false, false
	for _, r := range rows {
		clustered = clustered || r.Cluster != ""
		leader = leader || len(r.Peers) > 0
	}
	if clustered && !leader {
		fmt.Fprintln(f.io.ErrOut, "no meta leader answered (an election may be under way): nodes that did not answer are not listed")
	}
	return nil
}
