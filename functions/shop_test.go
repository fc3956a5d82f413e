// Package functions_test runs the example shop end to end, as a user runs
// it: `yard up` (a real process, with every function a process of its own
// under its agent), HTTP through the gateway, `yard deploy` and `yard rm`.
package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// shop is a running `yard up` with the example functions.
type shop struct {
	t        *testing.T
	yard     string // the yard binary
	root     string // repository root
	natsURL  string
	httpBase string
	// adminCreds is the credential yard up wrote for the admin; NATS
	// clients need one since yard up runs with authentication on.
	adminCreds string
	nc         *nats.Conn
	client     *http.Client
}

func startShop(t *testing.T) *shop { t.Helper(); return startShopEnv(t, nil) }

// startShopEnv is startShop with variables added to yard up's environment.
func startShopEnv(t *testing.T, env []string) *shop {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	yardBin := filepath.Join(dir, "yard")
	build := exec.Command("go", "build", "-o", yardBin, "./cli/yard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build yard: %v\n%s", err, out)
	}
	natsPort, httpPort := natstest.FreePort(t), natstest.FreePort(t)
	up := exec.Command(yardBin, "up", "--data", filepath.Join(dir, "data"), "--nats-port", strconv.Itoa(natsPort),
		"--http", "127.0.0.1:"+strconv.Itoa(httpPort), "--functions", filepath.Join(root, "functions"), "--log-level", "warn")
	up.Dir = dir
	if env != nil {
		up.Env = append(os.Environ(), env...)
	}
	var out natstest.Buffer
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- up.Wait() }()
	t.Cleanup(func() {
		_ = up.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = up.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("yard up output (last 8 KiB):\n%s", tail(out.String(), 8<<10))
		}
	})
	natstest.WaitFor(t, 4*time.Minute, "yard up to print its banner", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("yard up exited: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "Switchyard is up")
	})
	s := &shop{
		t: t, yard: yardBin, root: root,
		natsURL:    "nats://127.0.0.1:" + strconv.Itoa(natsPort),
		httpBase:   "http://127.0.0.1:" + strconv.Itoa(httpPort),
		client:     &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		adminCreds: filepath.Join(dir, "data", "admin.creds"),
	}
	nc, err := nats.Connect(s.natsURL, nats.UserCredentials(s.adminCreds), nats.CustomInboxPrefix(roles.AdminInbox))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	for _, name := range []string{"catalog", "inventory", "payments", "orders", "notify"} {
		s.waitServing(name, "")
	}
	s.useKey()
	return s
}

// useKey makes an API key for orders, which is authenticated over HTTP,
// and has the shop's HTTP client send it; it waits until the gateway
// knows the key. The key's rate is beyond what the test sends.
func (s *shop) useKey() {
	s.t.Helper()
	cmd := exec.Command(s.yard, "keys", "create", "shop-e2e", "--functions", "orders", "--rate", "100000/s", "--json",
		"-s", s.natsURL, "--creds", s.adminCreds)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var created struct {
		Key string `json:"key"`
	}
	if err != nil || json.Unmarshal(out, &created) != nil || created.Key == "" {
		s.t.Fatalf("yard keys create: %v\n%s%s", err, out, stderr.String())
	}
	s.client.Transport = bearer{key: created.Key, next: s.client.Transport}
	natstest.WaitFor(s.t, 10*time.Second, "the gateway to know the shop's key", func() bool {
		resp, err := s.client.Get(s.httpBase + "/fn/orders")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// bearer adds an Authorization header to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitServing waits until an instance of the function answers a micro
// PING, of the given micro version when one is given ("2.0.0").
func (s *shop) waitServing(name, version string) {
	s.t.Helper()
	natstest.WaitFor(s.t, 2*time.Minute, name+" "+version+" to serve", func() bool {
		pings, _ := fleet.Ping(s.nc, name, 200*time.Millisecond)
		for _, p := range pings {
			if version == "" || p.Version == version {
				return true
			}
		}
		return false
	})
}

// run runs the yard CLI against the shop's NATS server.
func (s *shop) run(args ...string) string {
	s.t.Helper()
	out, err := s.yardCmd(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// yardCmd is run for goroutines other than the test's.
func (s *shop) yardCmd(args ...string) (string, error) {
	cmd := exec.Command(s.yard, append(args, "-s", s.natsURL, "--creds", s.adminCreds)...)
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("yard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// request calls a function over plain NATS and decodes its reply.
func (s *shop) request(name string, in any, out any) error {
	data, _ := json.Marshal(in)
	msg, err := s.nc.Request("fn."+name, data, 10*time.Second)
	if err != nil {
		return err
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		return fmt.Errorf("%s: %s %s", name, code, msg.Data)
	}
	return json.Unmarshal(msg.Data, out)
}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type stockOut struct {
	Stock []struct {
		SKU       string `json:"sku"`
		Available int    `json:"available"`
	} `json:"stock"`
}

func (s *shop) stock() map[string]int {
	s.t.Helper()
	var out stockOut
	if err := s.request("inventory", map[string]any{"op": "get", "items": []line{{"TEA-0001", 1}, {"COF-0001", 1}, {"EQP-0001", 1}}}, &out); err != nil {
		s.t.Fatal(err)
	}
	m := map[string]int{}
	for _, st := range out.Stock {
		m[st.SKU] = st.Available
	}
	return m
}

// breakers reads the circuit each orders instance keeps for payments.
func (s *shop) breakers() []string {
	stats, _ := fleet.Stats(s.nc, "orders", 300*time.Millisecond)
	var states []string
	for _, st := range stats {
		for _, ep := range st.Endpoints {
			var data struct {
				Breakers map[string]string `json:"breakers"`
			}
			if ep.Name == "invoke" && json.Unmarshal(ep.Data, &data) == nil && data.Breakers["payments"] != "" {
				states = append(states, data.Breakers["payments"])
			}
		}
	}
	return states
}

type orderOut struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Items   []line `json:"items"`
}

// TestShop places 1,000 orders at once through the gateway while payments
// fails some charges, declines some cards, and goes away for a while, and
// inventory goes away for a moment; then checks the shop's books.
func TestShop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs yard up with the whole shop")
	}
	s := startShop(t)
	// Payments fails 10% of charges (deterministically by order id): a
	// rolling update to v2 with the fault switched on.
	s.run("deploy", "functions/payments", "--env", "PAYMENTS_FAIL_PERCENT=10")
	s.waitServing("payments", "2.0.0")
	// Reservations left held (a release that failed while inventory was
	// gone) are swept after 3s instead of 5m, so the books can close.
	s.run("deploy", "functions/inventory", "--env", "SHOP_RESERVATION_TTL=3s")
	s.waitServing("inventory", "2.0.0")
	// Tea and coffee never run out; the kettle (in every tenth order) does.
	initial := map[string]int{"TEA-0001": 2000, "COF-0001": 2000, "EQP-0001": 10}
	var restocked stockOut
	if err := s.request("inventory", map[string]any{"op": "restock", "items": []line{
		{"TEA-0001", initial["TEA-0001"]}, {"COF-0001", initial["COF-0001"]}, {"EQP-0001", initial["EQP-0001"]}}}, &restocked); err != nil {
		t.Fatal(err)
	}

	// 1,000 orders from 48 concurrent clients, fed at about 100 a second so
	// that the outage falls in the middle of the run.
	const orders = 1000
	const workers = 48
	skus := []string{"TEA-0001", "COF-0001", "EQP-0001"}
	statuses := make([]int, orders)
	dupStatuses := make([]int, orders)
	outage := make(chan struct{})
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				card := "4242424242424242"
				if k%9 == 0 {
					card = "4000000000000002" // declined
				}
				items := []line{{skus[k%2], 1 + k%3}}
				if k%10 == 0 {
					items = append(items, line{"EQP-0001", 1})
				}
				body, _ := json.Marshal(map[string]any{
					"order_id": fmt.Sprintf("e2e-%04d", k), "items": items,
					"card": card, "email": fmt.Sprintf("buyer%d@example.com", k),
				})
				post := func() int {
					resp, err := s.client.Post(s.httpBase+"/fn/orders", "application/json", bytes.NewReader(body))
					if err != nil {
						return 0
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return resp.StatusCode
				}
				if k%20 == 7 {
					// An impatient client: the same order twice at once.
					var twin sync.WaitGroup
					twin.Add(1)
					go func() { defer twin.Done(); dupStatuses[k] = post() }()
					statuses[k] = post()
					twin.Wait()
					continue
				}
				statuses[k] = post()
			}
		}()
	}
	// The outage: at order 300 payments is removed (its instances drain);
	// once the breaker has opened it is deployed again.
	type outageResult struct {
		opened bool
		err    error
	}
	outageDone := make(chan outageResult, 1)
	began := time.Now()
	go func() {
		<-outage
		t.Logf("%5.1fs: yard rm payments", time.Since(began).Seconds())
		if _, err := s.yardCmd("rm", "payments"); err != nil {
			outageDone <- outageResult{err: err}
			return
		}
		opened := false
		for deadline := time.Now().Add(time.Minute); !opened && time.Now().Before(deadline); {
			for _, st := range s.breakers() {
				opened = opened || st == "open"
			}
		}
		t.Logf("%5.1fs: breaker open: %v; deploying payments again", time.Since(began).Seconds(), opened)
		_, err := s.yardCmd("deploy", "functions/payments", "--env", "PAYMENTS_FAIL_PERCENT=10")
		t.Logf("%5.1fs: payments deployed", time.Since(began).Seconds())
		outageDone <- outageResult{opened, err}
	}()
	// A second, short outage: at order 850 inventory goes away for a
	// moment, catching orders between reserve, charge and commit.
	blipDone := make(chan error, 1)
	blip := make(chan struct{})
	go func() {
		<-blip
		t.Logf("%5.1fs: yard rm inventory", time.Since(began).Seconds())
		if _, err := s.yardCmd("rm", "inventory"); err != nil {
			blipDone <- err
			return
		}
		_, err := s.yardCmd("deploy", "functions/inventory", "--env", "SHOP_RESERVATION_TTL=3s")
		t.Logf("%5.1fs: inventory deployed", time.Since(began).Seconds())
		blipDone <- err
	}()
	pace := time.NewTicker(10 * time.Millisecond)
	for k := range orders {
		switch k {
		case 300:
			close(outage)
		case 850:
			close(blip)
		}
		<-pace.C
		next <- k
	}
	pace.Stop()
	close(next)
	wg.Wait()
	t.Logf("%5.1fs: all %d orders answered", time.Since(began).Seconds(), orders)
	answers := map[int]int{}
	for _, code := range statuses {
		answers[code]++
	}
	t.Logf("HTTP answers: %v", answers)
	// 200 (paid, declined, out of stock) or 503 (payments unavailable, with
	// the stock released); never an internal error or a timeout.
	for code, n := range answers {
		if code != http.StatusOK && code != http.StatusServiceUnavailable && code != http.StatusConflict {
			t.Errorf("%d orders answered %d", n, code)
		}
	}
	// The twin of a duplicated order: the same outcome, or 409 while the
	// first is being placed.
	twins := map[int]int{}
	for k, code := range dupStatuses {
		if k%20 == 7 {
			twins[code]++
		}
	}
	t.Logf("HTTP answers to the duplicates: %v", twins)
	for code, n := range twins {
		if code != http.StatusOK && code != http.StatusServiceUnavailable && code != http.StatusConflict {
			t.Errorf("%d duplicates answered %d", n, code)
		}
	}
	res := <-outageDone
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := <-blipDone; err != nil {
		t.Fatal(err)
	}
	s.waitServing("inventory", "")
	if !res.opened {
		t.Fatal("the breaker never opened while payments was gone")
	}
	// After the outage a probe closes the circuit: keep ordering (within a
	// bound) until every orders instance has it closed.
	s.waitServing("payments", "")
	extra := 0
	natstest.WaitFor(t, time.Minute, "the breaker to close after payments came back", func() bool {
		var o orderOut
		extra++
		_ = s.request("orders", map[string]any{"order_id": fmt.Sprintf("after-%04d", extra),
			"items": []line{{"TEA-0001", 1}}, "card": "4242424242424242", "email": "late@example.com"}, &o)
		states := s.breakers()
		for _, st := range states {
			if st != "closed" {
				return false
			}
		}
		return len(states) > 0
	})

	// The books. Every order that reached the shop has a final state.
	kv := func(bucket string) jetstream.KeyValue {
		js, _ := jetstream.New(s.nc)
		b, err := js.KeyValue(context.Background(), bucket)
		if err != nil {
			t.Fatalf("bucket %s: %v", bucket, err)
		}
		return b
	}
	ordersKV := kv("shop_orders")
	count := map[string]int{}
	paidQty := map[string]int{}
	var paid []string
	settle := func(id string) (orderOut, bool) {
		e, err := ordersKV.Get(context.Background(), "order."+id)
		if err != nil {
			return orderOut{}, false
		}
		var o orderOut
		if json.Unmarshal(e.Value(), &o) != nil {
			t.Fatalf("order %s: %s", id, e.Value())
		}
		return o, o.Status != "pending"
	}
	var byHundred [orders / 100]map[string]int
	for k := range byHundred {
		byHundred[k] = map[string]int{}
	}
	ids := make([]string, 0, orders+extra)
	for k := range orders {
		ids = append(ids, fmt.Sprintf("e2e-%04d", k))
	}
	for k := 1; k <= extra; k++ {
		ids = append(ids, fmt.Sprintf("after-%04d", k))
	}
	// An order whose charge could not be checked (payments unreachable
	// right after a timeout) stays pending, stock held, until orders'
	// reconcile settles it: the schedule runs every minute; here, as an
	// operator would, ask for it at once (it takes orders whose attempt
	// gave up or whose lease ran out).
	reconciled := 0
	lastReconcile := time.Time{}
	for k, id := range ids {
		var o orderOut
		var ok bool
		natstest.WaitFor(t, 45*time.Second, "order "+id+" to settle", func() bool {
			o, ok = settle(id)
			if !ok && o.OrderID != "" && time.Since(lastReconcile) > 2*time.Second {
				lastReconcile = time.Now()
				reconciled++
				var out json.RawMessage
				if err := s.request("orders", map[string]any{"op": "reconcile"}, &out); err != nil {
					t.Logf("reconcile: %v", err)
				}
				if e, err := ordersKV.Get(context.Background(), "order."+id); err == nil {
					t.Logf("order %s pending: %s", id, e.Value())
				}
			}
			return ok || o.OrderID == ""
		})
		if o.OrderID == "" {
			// Never reached orders: only possible if its HTTP request failed.
			if k < orders && statuses[k] != 0 && statuses[k] < 500 {
				t.Errorf("order %s answered %d but has no record", id, statuses[k])
			}
			continue
		}
		count[o.Status]++
		if k < orders {
			byHundred[k/100][o.Status]++
		}
		if k < orders && statuses[k] == http.StatusOK && o.Status != "paid" && o.Status != "declined" && o.Status != "out_of_stock" {
			t.Errorf("order %s answered 200 but is %s", id, o.Status)
		}
		if o.Status == "paid" {
			paid = append(paid, id)
			for _, it := range o.Items {
				paidQty[it.SKU] += it.Quantity
			}
		}
	}
	t.Logf("orders: %v (and %d placed after the outage); reconcile asked %d times", count, extra, reconciled)
	for k, c := range byHundred {
		t.Logf("orders %3d-%3d: %v", k*100, k*100+99, c)
	}
	if count["paid"] == 0 || count["declined"] == 0 || count["failed"] == 0 || count["out_of_stock"] == 0 {
		t.Errorf("the run should have paid, declined, failed and out-of-stock orders: %v", count)
	}
	// Reservations whose release failed while inventory was gone are
	// swept once they are older than the TTL (as the schedule would, every
	// minute): ask for sweeps until no stock is held.
	natstest.WaitFor(t, 30*time.Second, "every reservation to be committed or released", func() bool {
		var out struct {
			Held int `json:"held"`
		}
		err := s.request("inventory", map[string]any{"op": "sweep"}, &out)
		return err == nil && out.Held == 0
	})
	// Stock never went below zero, and only paid orders hold any: every
	// declined, failed or out-of-stock order gave back what it reserved.
	final := s.stock()
	for _, sku := range skus {
		if final[sku] < 0 || final[sku] != initial[sku]-paidQty[sku] {
			t.Errorf("%s: %d in stock, want %d - %d paid = %d", sku, final[sku], initial[sku], paidQty[sku], initial[sku]-paidQty[sku])
		}
	}
	// Money: every paid order has an approved charge (payments keeps one
	// per order id), and no order that is not paid holds one: a charge is
	// refunded or its order is paid.
	charges := kv("shop_payments")
	chargeKeys, _ := charges.Keys(context.Background())
	approved := map[string]bool{}
	for _, key := range chargeKeys {
		e, err := charges.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			OrderID string `json:"order_id"`
			Status  string `json:"status"`
		}
		if json.Unmarshal(e.Value(), &c) != nil {
			t.Fatalf("charge %s: %s", key, e.Value())
		}
		if c.Status == "approved" {
			approved[strings.TrimPrefix(key, "charge.")] = true
		}
	}
	exactlyPaid(t, paid, approved, "an approved charge")
	// Every paid order has exactly one notification; no other order has one.
	notes := kv("shop_notifications")
	natstest.WaitFor(t, time.Minute, "a notification for every paid order", func() bool {
		keys, _ := notes.Keys(context.Background())
		return len(keys) >= len(paid)
	})
	keys, _ := notes.Keys(context.Background())
	have := map[string]bool{}
	for _, k := range keys {
		have[strings.TrimPrefix(k, "notification.")] = true
	}
	exactlyPaid(t, paid, have, "a notification")
	// And orders.placed carried each paid order once.
	js, _ := jetstream.New(s.nc)
	st, err := js.Stream(context.Background(), "SHOP_ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("orders.placed"))
	if err != nil || info.State.Subjects["orders.placed"] != uint64(len(paid)) {
		t.Errorf("orders.placed holds %v events for %d paid orders (%v)", info.State.Subjects, len(paid), err)
	}
	if os.Getenv("SHOP_E2E_VERBOSE") != "" {
		t.Logf("final stock %v, paid quantities %v", final, paidQty)
	}
}

// exactlyPaid checks that the orders having something (a charge, a
// notification) are exactly the paid ones.
func exactlyPaid(t *testing.T, paid []string, having map[string]bool, what string) {
	t.Helper()
	for _, id := range paid {
		if !having[id] {
			t.Errorf("paid order %s has no %s", id, strings.TrimPrefix(strings.TrimPrefix(what, "an "), "a "))
		}
		delete(having, id)
	}
	if len(having) > 0 {
		t.Errorf("orders that are not paid have %s: %v", what, having)
	}
}
