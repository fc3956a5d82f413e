package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// TestConnectionFlood: a yard up process whose open-file limit is 768
// takes 1,000 idle HTTP connections and 1,000 idle NATS connections. The
// gateway holds at most a quarter of the limit and closes the rest at
// once, NATS refuses connections past half of it; meanwhile JetStream
// keeps writing (API keys are created), nothing but the accept loops
// logs "too many open files", and once the flood ends /readyz says ready
// and new clients get in.
func TestConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs yard up")
	}
	const nofile, flood = 768, 1000
	dir := t.TempDir()
	bin := filepath.Join(dir, "yard")
	if out, err := exec.Command("go", "build", "-o", bin, "./yard").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	natsPort, httpAddr := natstest.FreePort(t), "127.0.0.1:"+strconv.Itoa(natstest.FreePort(t))
	// sh's ulimit -n sets both limits, so Go cannot raise the soft one.
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), bin,
		"up", "--data", data, "--nats-port", strconv.Itoa(natsPort), "--http", httpAddr, "--no-functions")
	cmd.Dir = dir
	var stderr natstest.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	natstest.WaitFor(t, 2*time.Minute, "yard up to start", func() bool {
		select {
		case <-exited:
			t.Fatalf("yard up exited: %s", stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), "Ctrl-C stops")
	})

	// A connection made before the flood, to write through during it.
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	nc, err := nats.Connect(natsURL, nats.UserCredentials(filepath.Join(data, "admin.creds")), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// The flood, from several loopback addresses so that the per-address
	// cap is not what stops it, at both doors: HTTP and NATS.
	var conns, natsConns []net.Conn
	defer func() {
		for _, c := range append(conns, natsConns...) {
			c.Close()
		}
	}()
	dial := func(i int, addr string) net.Conn {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%5))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			d.LocalAddr = nil // 127.0.0.2-5 may not be usable here
			if c, err = d.Dial("tcp", addr); err != nil {
				t.Fatalf("connection %d to %s: %v", i, addr, err)
			}
		}
		return c
	}
	for i := range flood {
		conns = append(conns, dial(i, httpAddr))
		natsConns = append(natsConns, dial(i, "127.0.0.1:"+strconv.Itoa(natsPort)))
	}
	// Each connection is either closed by the gateway or left waiting.
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1)
			}
		})
	}
	wg.Wait()
	if n := open.Load(); n == 0 || n > nofile/4 {
		t.Fatalf("the gateway holds %d of %d connections; want 1 to %d", n, flood, nofile/4)
	}
	t.Logf("the gateway holds %d of %d connections", open.Load(), flood)

	// JetStream still writes (API keys are key-value puts).
	ctx := context.Background()
	for i := range 20 {
		if _, _, err := apikeys.Create(ctx, js, "flood-"+strconv.Itoa(i), []string{"greet"}, ""); err != nil {
			t.Fatalf("an API key during the flood: %v\nyard up: %s", err, stderr.String())
		}
	}
	// The NATS server accepts a connection before it finds its cap
	// reached, and closes it a moment later: a burst of connects can take
	// the process to its limit for milliseconds, and the accept loops of
	// both doors then back off by themselves ("Temporary Client Accept
	// Error", "http: Accept error"; about one run in three on 2 cores).
	// Anything else out of descriptors (a JetStream file, an agent, a
	// client of the platform) fails the test.
	accepts := 0
	for line := range strings.Lines(stderr.String()) {
		if !strings.Contains(strings.ToLower(line), "too many open files") {
			continue
		}
		if strings.Contains(line, "Temporary Client Accept Error") || strings.Contains(line, "http: Accept error") {
			accepts++
			continue
		}
		t.Fatalf("yard up ran out of descriptors: %s", line)
	}
	t.Logf("the accept loops backed off %d times", accepts)

	for _, c := range append(conns, natsConns...) {
		c.Close()
	}
	conns, natsConns = nil, nil
	// Once it ends, new clients get in and see what was written.
	env := map[string]string{"NATS_URL": natsURL, "NATS_CREDS": filepath.Join(data, "admin.creds")}
	natstest.WaitFor(t, 10*time.Second, "yard keys ls to list the keys made during the flood", func() bool {
		r := yard(t, env, "", "keys", "ls", "--json")
		return r.code == 0 && strings.Count(r.stdout, `"flood-`) == 20
	})
	natstest.WaitFor(t, 10*time.Second, "/readyz to answer ready once the flood ends", func() bool {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
