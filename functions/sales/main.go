// Command sales is a projection of the example shop's orders: the revenue
// of each SKU per day, built from the orders.placed events into the KV
// bucket shop_sales. It follows orders.placed from the first event the
// stream keeps, one event at a time, and applies each event once however
// often it is delivered: `yard events replay sales` rebuilds it. Invoked,
// it returns the sales of a day, or of every day.
package main

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Bucket holds the projection: sales.<day>.<SKU> (day as 2006-01-02, UTC).
const Bucket = "shop_sales"

// SubjectPlaced is the event of a paid order (orders publishes it into
// the stream SHOP_ORDERS).
const SubjectPlaced = "orders.placed"

// OrderPlaced is the event, as far as sales reads it.
type OrderPlaced struct {
	OrderID  string    `json:"order_id"`
	Email    string    `json:"email"`
	Total    Money     `json:"total"`
	Items    []Line    `json:"items" jsonschema:"maxItems=20"`
	PlacedAt time.Time `json:"placed_at"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=0"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Line is one item of an order.
type Line struct {
	SKU       string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity" jsonschema:"minimum=1"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

// tally is sales.<day>.<SKU>: what the orders of the day sold of the SKU.
// LastSeq is the stream sequence of the last event applied to it: an
// event at or below it is applied already.
type tally struct {
	Day      string           `json:"day"`
	SKU      string           `json:"sku"`
	Quantity int              `json:"quantity"`
	Orders   int              `json:"orders"`
	Revenue  map[string]int64 `json:"revenue"` // by currency
	LastSeq  uint64           `json:"last_seq"`
}

func key(day, sku string) string { return "sales." + day + "." + sku }

var errApplied = errors.New("applied already")

// OnPlaced adds a paid order to the sales of its day. Each SKU's tally is
// written with the event's stream sequence, and an event at or below the
// sequence a tally holds is skipped: a redelivery (after a crash between
// two tallies, or an ack that got lost) or a replay changes nothing that
// was applied, and applies what was not.
func OnPlaced(ctx context.Context, ev OrderPlaced) error {
	meta, ok := fn.EventMeta(ctx)
	if !ok {
		return fn.Permanent(errors.New("sales: OnPlaced handles orders.placed events only"))
	}
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return err
	}
	day := cmp.Or(ev.PlacedAt, meta.Time).UTC().Format(time.DateOnly)
	// One write per SKU, though an order may list a SKU twice.
	type sold struct {
		qty     int
		revenue map[string]int64
	}
	bySKU := map[string]*sold{}
	for _, l := range ev.Items {
		s := bySKU[l.SKU]
		if s == nil {
			s = &sold{revenue: map[string]int64{}}
			bySKU[l.SKU] = s
		}
		s.qty += l.Quantity
		s.revenue[cmp.Or(l.LineTotal.Currency, ev.Total.Currency)] += l.LineTotal.Amount
	}
	skipped := 0
	for _, sku := range slices.Sorted(maps.Keys(bySKU)) {
		s := bySKU[sku]
		_, err := fn.UpdateJSON(ctx, kv, key(day, sku), func(t *tally, _ bool) error {
			if t.LastSeq >= meta.Seq {
				return errApplied
			}
			t.Day, t.SKU, t.LastSeq = day, sku, meta.Seq
			t.Quantity += s.qty
			t.Orders++
			if t.Revenue == nil {
				t.Revenue = map[string]int64{}
			}
			for cur, amount := range s.revenue {
				t.Revenue[cur] += amount
			}
			return nil
		})
		switch {
		case errors.Is(err, errApplied):
			skipped++
		case err != nil:
			return err
		}
	}
	if skipped > 0 {
		fn.Logger(ctx).Info("event applied already; skipped", "order", ev.OrderID, "seq", meta.Seq, "tallies", skipped, "delivery", meta.Delivery)
	}
	return nil
}

// Query asks for the sales of one day (UTC), or of every day; of one SKU,
// or of all.
type Query struct {
	Day string `json:"day,omitempty" jsonschema:"format=date,description=a day as 2006-01-02 (UTC); every day when absent"`
	SKU string `json:"sku,omitempty" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
}

// Report is the sales asked for, by day and SKU in order.
type Report struct {
	Days []Day `json:"days"`
}

// Day is one day's sales.
type Day struct {
	Day string `json:"day"`
	// Revenue is the day's, per currency.
	Revenue []Money    `json:"revenue"`
	SKUs    []SKUSales `json:"skus"`
}

// SKUSales is what the day's orders sold of one SKU: how many units, in
// how many orders, for how much (per currency).
type SKUSales struct {
	SKU      string  `json:"sku"`
	Quantity int     `json:"quantity" jsonschema:"minimum=0"`
	Orders   int     `json:"orders" jsonschema:"minimum=0"`
	Revenue  []Money `json:"revenue"`
}

// Sales returns the sales of a day, or of every day.
func Sales(ctx context.Context, q Query) (Report, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Report{}, err
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		return Report{}, err
	}
	prefix := "sales."
	if q.Day != "" {
		prefix += q.Day + "."
	}
	slices.Sort(keys)
	rep := Report{Days: []Day{}}
	dayTotal := map[string]int64{}
	closeDay := func() {
		if n := len(rep.Days); n > 0 {
			rep.Days[n-1].Revenue = money(dayTotal)
			clear(dayTotal)
		}
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) || (q.SKU != "" && !strings.HasSuffix(k, "."+q.SKU)) {
			continue
		}
		t, _, err := fn.GetJSON[tally](ctx, kv, k)
		if errors.Is(err, fn.ErrKeyNotFound) {
			continue // deleted since it was listed
		} else if err != nil {
			return Report{}, err
		}
		if n := len(rep.Days); n == 0 || rep.Days[n-1].Day != t.Day {
			closeDay()
			rep.Days = append(rep.Days, Day{Day: t.Day, SKUs: []SKUSales{}})
		}
		d := &rep.Days[len(rep.Days)-1]
		d.SKUs = append(d.SKUs, SKUSales{SKU: t.SKU, Quantity: t.Quantity, Orders: t.Orders, Revenue: money(t.Revenue)})
		for cur, amount := range t.Revenue {
			dayTotal[cur] += amount
		}
	}
	closeDay()
	return rep, nil
}

// money lists amounts by currency, in currency order.
func money(by map[string]int64) []Money {
	out := []Money{}
	for _, cur := range slices.Sorted(maps.Keys(by)) {
		out = append(out, Money{Amount: by[cur], Currency: cur})
	}
	return out
}

// Config is sales' identity: it follows orders.placed into its bucket.
//
// The subscription starts from the first event SHOP_ORDERS keeps
// (FromStart), so a new deploy builds the projection from the history,
// and it is Ordered: one event at a time, in stream order, across all
// instances. The skip-by-sequence in OnPlaced needs that order. Were
// events handled at once or out of order, event 12 could write a tally
// before event 9 of the same day and SKU did, and 9 would then be skipped
// as applied: its sale lost. With one event at a time in order, a tally's
// LastSeq means every earlier event was applied to it (or dead-lettered),
// so skipping at or below it drops only what is there already. The price
// is throughput: one event in flight for the whole function, and a
// failing event holds back the ones after it until it succeeds or is
// dead-lettered.
var Config = fn.Config{
	Name:        "sales",
	Description: "Revenue per SKU per day, projected from orders.placed",
	Buckets:     []string{Bucket},
	Events:      []fn.Subscription{fn.On(SubjectPlaced, OnPlaced, fn.FromStart(), fn.Ordered())},
	// A year of orders to rebuild from: the platform keeps the longest
	// retention any declarer asks for (orders and notify take the default
	// week).
	Streams: []fn.Stream{{Name: "SHOP_ORDERS", Subjects: []string{"orders.>"}, MaxAge: 365 * 24 * time.Hour}},
}

func main() { fn.Main(Config, fn.Handle(Sales)) }
