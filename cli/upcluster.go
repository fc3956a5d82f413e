package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/internal/childproc"
	"github.com/switchyard-dev/switchyard/internal/devtls"
	"github.com/switchyard-dev/switchyard/internal/platform"
	"github.com/switchyard-dev/switchyard/internal/server"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// clusterPortOffset puts a node's route port this far above its client
// port: 4222 → 6222, the ports nats-server users know.
const clusterPortOffset = 2000

// nodeSet runs and supervises the `yard server` processes of
// `yard up --cluster N`: a node that exits is started again, as the
// agent restarts instances, so that SIGKILLing one shows the cluster
// riding it out and the node catching up.
type nodeSet struct {
	nodes []*node
	url   string // every node's client URL, comma-separated
	log   *slog.Logger

	stopping chan struct{}
	wg       sync.WaitGroup
}

type node struct {
	name string
	args []string
	out  io.Writer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// clusterPorts are the client and route addresses of node k (0-based).
func (s *serverFlags) clusterPorts(k int) (client, route string) {
	return net.JoinHostPort(s.host, strconv.Itoa(s.port+k)), net.JoinHostPort(s.host, strconv.Itoa(s.port+k+clusterPortOffset))
}

// startCluster starts n nodes on this machine, each with its data in
// <data>/cluster/n<k>, sharing <data>/trust and the credentials in
// <data>, and returns once every node has joined and answers.
func (o *upOptions) startCluster(ctx context.Context, n int, logs io.Writer, log *slog.Logger, progress io.Writer) (*nodeSet, error) {
	s := &o.sf
	if n < 3 || n > 9 {
		return nil, usageError("--cluster %d: want 3 to 9 nodes (a majority must outlive a node)", n)
	}
	offset := clusterPortOffset
	if s.leaf != "off" {
		offset = max(offset, server.LeafPortOffset)
	}
	if s.port+n-1+offset > 65535 {
		return nil, usageError("--nats-port %d: too high for %d nodes", s.port, n)
	}
	if s.leaf != "" && s.leaf != "off" {
		return nil, usageError("--nats-leaf with --cluster: each node takes leaf nodes on its client port + %d; say --nats-leaf off or nothing", server.LeafPortOffset)
	}
	var routes []string
	for k := range n {
		client, route := s.clusterPorts(k)
		addrs := []string{client, route}
		if s.leaf == "" {
			addrs = append(addrs, net.JoinHostPort(s.host, strconv.Itoa(s.port+k+server.LeafPortOffset)))
		}
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return nil, fmt.Errorf("cluster node n%d: address %s is already in use (another yard up?); pick other ports with --nats-port", k+1, a)
			}
			ln.Close()
		}
		routes = append(routes, "nats://"+route)
	}
	trustDir := filepath.Join(s.data, "trust")
	if err := platform.WriteCredsFiles(s.data, trustDir); err != nil {
		return nil, err
	}
	cert, key := s.tlsCert, s.tlsKey
	if s.tls {
		paths, err := devtls.Ensure(s.tlsDir(), devtls.DefaultHosts)
		if err != nil {
			return nil, err
		}
		cert, key = paths.Cert, paths.Key
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ns := &nodeSet{log: log, stopping: make(chan struct{})}
	scheme, urls := "nats://", []string{}
	if cert != "" {
		scheme = "tls://"
	}
	for k := range n {
		client, route := s.clusterPorts(k)
		name := "n" + strconv.Itoa(k+1)
		args := []string{"server", "--data", filepath.Join(s.data, "cluster", name), "--trust", trustDir, "--creds-dir", s.data,
			"--server-name", name, "--nats-host", s.host, "--nats-port", strconv.Itoa(s.port + k),
			"--cluster", route, "--routes", strings.Join(routes, ","), "--allow-anonymous", "--sync", s.sync,
			"--log-level", o.f.logLevel, "--parent-pid", strconv.Itoa(os.Getpid())}
		if s.leaf == "off" {
			args = append(args, "--nats-leaf", "off")
		}
		if cert != "" {
			args = append(args, "--tls-cert", cert, "--tls-key", key)
		}
		if o.replicas > 0 {
			args = append(args, "--replicas", strconv.Itoa(o.replicas))
		}
		if s.monitor != "" {
			host, port, _ := net.SplitHostPort(s.monitor)
			if p, err := strconv.Atoi(port); err == nil && p > 0 {
				args = append(args, "--nats-monitor", net.JoinHostPort(host, strconv.Itoa(p+k)))
			}
		}
		ns.nodes = append(ns.nodes, &node{name: name, args: append([]string{exe}, args...), out: &prefixWriter{w: logs, prefix: name + " | "}})
		urls = append(urls, scheme+client)
	}
	ns.url = strings.Join(urls, ",")
	for _, nd := range ns.nodes {
		ns.wg.Add(1)
		go ns.supervise(nd)
	}
	if err := ns.waitReady(ctx, o, n, progress); err != nil {
		ns.stop()
		return nil, err
	}
	return ns, nil
}

// supervise runs nd until stop, starting it again when it exits (or
// fails to start), after a backoff that grows while it keeps failing and
// resets once it ran a while.
func (ns *nodeSet) supervise(nd *node) {
	defer ns.wg.Done()
	backoff := time.Second
	for {
		cmd := exec.Command(nd.args[0], nd.args[1:]...)
		cmd.Stdout, cmd.Stderr = nd.out, nd.out
		// No node outlives yard up; and Ctrl-C in the terminal reaches
		// yard up alone, which stops the nodes last, after the gateway and
		// the agent, instead of seeing them all exit and restarting them.
		cmd.SysProcAttr = childproc.OwnGroup()
		// Start under the lock stop takes: a node is either started
		// before stop signals it, or not at all.
		nd.mu.Lock()
		select {
		case <-ns.stopping:
			nd.mu.Unlock()
			return
		default:
		}
		err := cmd.Start()
		if err == nil {
			nd.cmd = cmd
		}
		nd.mu.Unlock()
		started := time.Now()
		if err == nil {
			err = cmd.Wait()
		}
		select {
		case <-ns.stopping:
			return
		default:
		}
		if time.Since(started) > 30*time.Second {
			backoff = time.Second
		}
		ns.log.Warn("cluster node exited; starting it again", "node", nd.name, "err", err, "in", backoff)
		select {
		case <-ns.stopping:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// waitReady returns once all n nodes answer on yard.servers: each does
// once its streams are in place and its trust service runs.
func (ns *nodeSet) waitReady(ctx context.Context, o *upOptions, n int, progress io.Writer) error {
	opts := []nats.Option{nats.Name("yard up"), nats.UserCredentials(platform.CredsFile(o.sf.data, platform.RoleAdmin)),
		nats.CustomInboxPrefix(roles.AdminInbox), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1)}
	if ca := o.sf.caFile(); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	nc, err := nats.Connect(ns.url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	fmt.Fprintf(progress, "starting a %d-node NATS cluster (%s) …\n", n, ns.url)
	deadline := time.Now().Add(3 * time.Minute)
	last := -1
	for {
		up := 0
		if nc.IsConnected() {
			rows, _ := gatherServers(ctx, nc, 300*time.Millisecond)
			for _, r := range rows {
				if r.Answering {
					up++
				}
			}
		} else {
			time.Sleep(100 * time.Millisecond)
		}
		if up != last {
			fmt.Fprintf(progress, "  %d of %d nodes ready\n", up, n)
			last = up
		}
		if up >= n {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not form in 3m (%d of %d nodes ready): see the node logs above", up, n)
		}
	}
}

// stop ends every node: SIGTERM (and SIGCONT, for one stopped by hand),
// then SIGKILL for any still running after 20 s.
func (ns *nodeSet) stop() {
	close(ns.stopping)
	for _, nd := range ns.nodes {
		nd.mu.Lock()
		if nd.cmd != nil && nd.cmd.Process != nil {
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
			childproc.Continue(nd.cmd.Process)
		}
		nd.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { ns.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(20 * time.Second):
	}
	for _, nd := range ns.nodes {
		nd.mu.Lock()
		if nd.cmd != nil && nd.cmd.Process != nil {
			_ = nd.cmd.Process.Kill()
		}
		nd.mu.Unlock()
	}
	<-done
}

// prefixWriter writes whole lines to w, each after prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.prefix), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return len(b), nil // a log line lost is no reason to stop a node
		}
	}
	if len(p.buf) > 64<<10 { // a line that never ends: pass it on
		_, _ = p.w.Write(append([]byte(p.prefix), append(p.buf, '\n')...))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}
