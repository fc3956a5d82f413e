package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/provision"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// The event-sourced part of the shop, end to end: cart and sales (with
// catalog, inventory, payments and orders where orders are placed) run as
// the programs `go build` makes of them, several instances each, against
// an embedded NATS server. The test plays the platform's part
// (fntest.Platform: it provisions what they declare), so no `yard up`.

// procs runs function binaries against one server.
type procs struct {
	t   *testing.T
	bin string // the binaries, by function name
	url string
	nc  *nats.Conn
	mu  sync.Mutex
	out map[string][]*natstest.Buffer // each instance's output, by function
}

// startProcs starts a server with the platform in the test, and builds
// the functions.
func startProcs(t *testing.T, names ...string) *procs {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./functions/"+n)
	}
	build := exec.Command("go", args...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := natstest.Run(t)
	nc := natstest.Connect(t, s)
	fntest.Platform(t, nc)
	return &procs{t: t, bin: bin, url: s.ClientURL(), nc: nc, out: map[string][]*natstest.Buffer{}}
}

// run starts n instances of a function and waits until all serve.
func (p *procs) run(name string, n int) {
	p.t.Helper()
	env := []string{wire.EnvNATSURL + "=" + p.url}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "YARD_") {
			env = append(env, kv)
		}
	}
	for range n {
		p.mu.Lock()
		k := len(p.out[name])
		out := &natstest.Buffer{}
		p.out[name] = append(p.out[name], out)
		p.mu.Unlock()
		cmd := exec.Command(filepath.Join(p.bin, name))
		cmd.Env = append(env, wire.EnvInstance+"="+name+"-"+strconv.Itoa(k))
		cmd.Dir = p.t.TempDir() // no .yard/admin.creds to pick up
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			p.t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		p.t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			if p.t.Failed() {
				p.t.Logf("%s-%d output (last 4 KiB):\n%s", name, k, tail(out.String(), 4<<10))
			}
		})
	}
	want := len(p.out[name])
	natstest.WaitFor(p.t, time.Minute, fmt.Sprintf("%d instances of %s to serve", want, name), func() bool {
		pings, _ := fleet.Ping(p.nc, name, 200*time.Millisecond)
		return len(pings) == want
	})
}

// output is what every instance of a function wrote.
func (p *procs) output(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, o := range p.out[name] {
		b.WriteString(o.String())
	}
	return b.String()
}

// request calls a function over NATS; a function's error comes back as
// *wire.Error.
func (p *procs) request(name string, in, out any) error {
	data, _ := json.Marshal(in)
	msg, err := p.nc.Request("fn."+name, data, 30*time.Second)
	if err != nil {
		return err
	}
	if we := wire.ReplyError(msg.Header, msg.Data); we != nil {
		return we
	}
	return json.Unmarshal(msg.Data, out)
}

type cartOut struct {
	CartID   string `json:"cart_id"`
	Status   string `json:"status"`
	Items    []line `json:"items"`
	Version  uint64 `json:"version"`
	Checkout *struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
		Total   *money `json:"total"`
	} `json:"checkout"`
}

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

var conflictsRe = regexp.MustCompile(`conflicts=(\d+)`)

// TestEventSourcedCart: three instances of cart take 90 adds to one cart
// at once. Every add is exactly one event of the cart (none lost, none
// twice), the versions the adds answered are those events, and the
// version conflicts the race causes were decided again.
func TestEventSourcedCart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the cart")
	}
	p := startProcs(t, "cart")
	p.run("cart", 3)
	const adds = 90
	skus := []string{"TEA-0001", "COF-0001", "EQP-0001"}
	versions := make([]uint64, adds)
	errs := make([]error, adds)
	var wg sync.WaitGroup
	for k := range adds {
		wg.Go(func() {
			var c cartOut
			errs[k] = p.request("cart", map[string]any{"op": "add", "cart_id": "shared", "sku": skus[k%len(skus)]}, &c)
			versions[k] = c.Version
		})
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("add %d: %v", k, err)
		}
	}
	// The cart's events, as the stream holds them.
	type tally struct {
		events map[uint64]string
		qty    map[string]int
	}
	ctx, cancel := context.WithTimeout(fn.WithConn(context.Background(), p.nc), 30*time.Second)
	defer cancel()
	got, version, err := fn.Load(ctx, "cart.shared", func(s tally, ev fn.Event) (tally, error) {
		if s.events == nil {
			s.events, s.qty = map[uint64]string{}, map[string]int{}
		}
		var add struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		}
		if ev.Type != "ItemAdded" || ev.Decode(&add) != nil {
			return s, fmt.Errorf("event %d: %s %s", ev.Seq, ev.Type, ev.Data)
		}
		s.events[ev.Seq] = add.SKU
		s.qty[add.SKU] += add.Quantity
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.events) != adds {
		t.Errorf("%d adds made %d events", adds, len(got.events))
	}
	answered := map[uint64]bool{}
	for k, v := range versions {
		if answered[v] {
			t.Errorf("two adds answered version %d", v)
		}
		answered[v] = true
		if got.events[v] != skus[k%len(skus)] {
			t.Errorf("add %d of %s answered version %d, which is event %q", k, skus[k%len(skus)], v, got.events[v])
		}
	}
	for _, sku := range skus {
		if got.qty[sku] != adds/len(skus) {
			t.Errorf("%s: %d in the cart, want %d", sku, got.qty[sku], adds/len(skus))
		}
	}
	if version != slices.Max(versions) {
		t.Errorf("the cart's version is %d, the last add answered %d", version, slices.Max(versions))
	}
	// The cart's own view agrees.
	var c cartOut
	if err := p.request("cart", map[string]any{"op": "get", "cart_id": "shared"}, &c); err != nil || c.Version != version || len(c.Items) != len(skus) {
		t.Errorf("get: %+v %v", c, err)
	}
	conflicts := 0
	for _, m := range conflictsRe.FindAllStringSubmatch(p.output("cart"), -1) {
		n, _ := strconv.Atoi(m[1])
		conflicts += n
	}
	perInstance := []int{}
	stats, _ := fleet.Stats(p.nc, "cart", 300*time.Millisecond)
	for _, st := range stats {
		for _, ep := range st.Endpoints {
			if ep.Name == "invoke" {
				perInstance = append(perInstance, ep.NumRequests)
			}
		}
	}
	t.Logf("%d concurrent adds to one cart, %d events; %d version conflicts decided again; requests per instance %v",
		adds, len(got.events), conflicts, perInstance)
	if conflicts == 0 {
		t.Error("no add met a version conflict: the adds did not race")
	}
}

// TestEventSourcedSalesReplay places orders through the shop (orders
// directly, and carts checked out; and publishes some of earlier days on
// orders.placed directly), lets sales (two instances) catch up
// with orders.placed, keeps its bucket, deletes every key of it, replays
// the subscription from the start and checks that the projection comes
// back identical; a second replay, over a projection that is complete,
// writes nothing.
func TestEventSourcedSalesReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the shop")
	}
	p := startProcs(t, "catalog", "inventory", "payments", "orders", "cart", "sales")
	for _, name := range []string{"catalog", "inventory", "payments", "orders", "cart"} {
		p.run(name, 1)
	}
	p.run("sales", 2)

	// 30 orders and 8 carts from 8 clients; one order in five is declined.
	const orders, carts = 30, 8
	currencies := []string{"EUR", "USD", "GBP"}
	type result struct {
		paid  bool
		total money
	}
	results := make([]result, orders+carts)
	jobs := make(chan int)
	var wg sync.WaitGroup
	failed := make(chan error, orders+carts)
	for range 8 {
		wg.Go(func() {
			for k := range jobs {
				card := "4242424242424242"
				if k%5 == 0 {
					card = "4000000000000002"
				}
				cur := currencies[k%len(currencies)]
				if k < orders {
					items := []line{{"TEA-0001", 1 + k%3}}
					if k%4 == 0 {
						items = append(items, line{"COF-0001", 1})
					}
					if k%7 == 0 {
						items = append(items, line{"TEA-0001", 1}) // a SKU twice
					}
					var o struct {
						Status string `json:"status"`
						Total  money  `json:"total"`
					}
					err := p.request("orders", map[string]any{"order_id": fmt.Sprintf("es-%03d", k), "items": items,
						"card": card, "email": "es@example.com", "currency": cur}, &o)
					if err != nil {
						failed <- fmt.Errorf("order %d: %w", k, err)
					}
					results[k] = result{o.Status == "paid", o.Total}
					continue
				}
				cart := fmt.Sprintf("es-cart-%d", k)
				for _, it := range []line{{"EQP-0001", 1}, {"TEA-0001", 2}, {"COF-0001", 1}} {
					var c cartOut
					if err := p.request("cart", map[string]any{"op": "add", "cart_id": cart, "sku": it.SKU, "quantity": it.Quantity}, &c); err != nil {
						failed <- fmt.Errorf("cart %s: %w", cart, err)
					}
				}
				var c cartOut
				err := p.request("cart", map[string]any{"op": "checkout", "cart_id": cart, "card": card,
					"email": "es@example.com", "currency": cur}, &c)
				if err != nil || c.Checkout == nil {
					failed <- fmt.Errorf("checkout %s: %+v %w", cart, c, err)
					continue
				}
				if c.Checkout.Status == "paid" {
					results[k] = result{true, *c.Checkout.Total}
				}
			}
		})
	}
	// Meanwhile, the orders of the past four days, published on
	// orders.placed as orders published them (this shop has run for a
	// moment only), so the projection has more than one day.
	const past = 12
	skuPrices := map[string]int64{"TEA-0001": 1250, "COF-0001": 1890, "EQP-0001": 7900}
	pastSKUs := slices.Sorted(maps.Keys(skuPrices))
	pastRevenue := map[string]int64{}
	wg.Go(func() {
		ctx := fn.WithConn(context.Background(), p.nc)
		for k := range past {
			sku := pastSKUs[k%len(pastSKUs)]
			qty := 1 + k%2
			amount := skuPrices[sku] * int64(qty)
			unit := map[string]any{"amount": skuPrices[sku], "currency": "EUR"}
			total := map[string]any{"amount": amount, "currency": "EUR"}
			ev := map[string]any{"order_id": fmt.Sprintf("past-%02d", k), "email": "es@example.com", "total": total,
				"items":     []map[string]any{{"sku": sku, "name": sku, "quantity": qty, "unit_price": unit, "line_total": total}},
				"placed_at": time.Now().UTC().AddDate(0, 0, -1-k%4)}
			if err := fn.Publish(ctx, "orders.placed", ev, fn.WithEventID(fmt.Sprintf("past-%02d", k))); err != nil {
				failed <- err
				return
			}
			pastRevenue["EUR"] += amount
		}
	})
	for k := range orders + carts {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatal(err)
	}
	paid := past
	revenue := maps.Clone(pastRevenue)
	for _, r := range results {
		if r.paid {
			paid++
			revenue[r.total.Currency] += r.total.Amount
		}
	}

	js, _ := jetstream.New(p.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, "SHOP_ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != uint64(paid) {
		t.Fatalf("SHOP_ORDERS holds %d events for %d paid orders (%v)", info.State.Msgs, paid, err)
	}
	last := info.State.LastSeq
	caughtUp := func(what string) {
		t.Helper()
		natstest.WaitFor(t, time.Minute, what, func() bool {
			c, err := js.Consumer(ctx, "SHOP_ORDERS", wire.EventConsumer("sales", "orders.placed"))
			if err != nil {
				return false
			}
			ci, err := c.Info(ctx)
			return err == nil && ci.AckFloor.Stream == last && ci.NumPending == 0 && ci.NumAckPending == 0
		})
	}
	caughtUp("sales to catch up with the orders")

	type entry struct {
		value string
		rev   uint64
	}
	kv, err := js.KeyValue(ctx, "shop_sales")
	if err != nil {
		t.Fatal(err)
	}
	bucket := func() map[string]entry {
		t.Helper()
		keys, err := kv.Keys(ctx)
		if err != nil && err != jetstream.ErrNoKeysFound {
			t.Fatal(err)
		}
		m := map[string]entry{}
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			m[k] = entry{string(e.Value()), e.Revision()}
		}
		return m
	}
	report := func() string {
		t.Helper()
		var rep json.RawMessage
		if err := p.request("sales", map[string]any{}, &rep); err != nil {
			t.Fatal(err)
		}
		return string(rep)
	}
	original, originalReport := bucket(), report()

	// The projection against the orders' answers: every paid order's
	// revenue, in its currency.
	var rep struct {
		Days []struct {
			Revenue []money `json:"revenue"`
		} `json:"days"`
	}
	_ = json.Unmarshal([]byte(originalReport), &rep)
	projected := map[string]int64{}
	for _, d := range rep.Days {
		for _, m := range d.Revenue {
			projected[m.Currency] += m.Amount
		}
	}
	if !maps.Equal(projected, revenue) || len(original) == 0 {
		t.Fatalf("sales has revenue %v in %d tallies; the paid orders make %v", projected, len(original), revenue)
	}

	// The projection is rebuilt: its state goes, while the subscription
	// is paused, and comes back from the events.
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := reg.Get(ctx, "sales")
	if err != nil {
		t.Fatal(err)
	}
	replay := func(clear func(context.Context) error) {
		t.Helper()
		r, err := provision.Rebuild(ctx, js, spec, "orders.placed", registry.EventStart{All: true}, clear)
		if err != nil || len(r) != 1 || r[0].Pending != uint64(paid) {
			t.Fatalf("replay: %+v %v", r, err)
		}
		caughtUp("sales to replay every event")
	}
	deleteAll := func(ctx context.Context) error {
		// What yard events replay --clear-bucket does.
		st, err := js.Stream(ctx, "KV_shop_sales")
		if err != nil {
			return err
		}
		if err := st.Purge(ctx); err != nil {
			return err
		}
		if got := report(); got != `{"days":[]}` {
			return fmt.Errorf("after deleting every key: %s", got)
		}
		return nil
	}
	began := time.Now()
	replay(deleteAll)
	t.Logf("%d orders placed (%d paid, %d through carts), %d of past days published; sales rebuilt %d tallies from %d events in %v",
		orders+carts, paid-past, carts, past, len(original), paid, time.Since(began).Round(time.Millisecond))
	rebuilt := bucket()
	if len(rebuilt) != len(original) {
		t.Errorf("%d tallies rebuilt, there were %d", len(rebuilt), len(original))
	}
	for k, e := range original {
		if rebuilt[k].value != e.value {
			t.Errorf("%s rebuilt as %s, was %s", k, rebuilt[k].value, e.value)
		}
	}
	if got := report(); got != originalReport {
		t.Errorf("report after the replay:\n%s\nwas\n%s", got, originalReport)
	}
	// Replayed over a complete projection, every event is skipped.
	replay(nil)
	for k, e := range bucket() {
		if e.rev != rebuilt[k].rev {
			t.Errorf("%s written again by a replay of applied events (revision %d, was %d)", k, e.rev, rebuilt[k].rev)
		}
	}
}
