// Command inventory keeps the example shop's stock and the reservations
// orders hold on it, in the KV bucket shop_inventory. Every change is a
// revision-checked update, so concurrent orders, on any number of
// instances, can never take stock below zero or give it back twice.
//
// An order first reserves its items (taking them out of the available
// stock), then commits the reservation once paid or releases it (giving
// the items back). A reservation left held by an orders instance that
// crashed in between is released by the sweep, which runs every minute.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	fn "github.com/switchyard-dev/switchyard/runtime"
)

// Bucket holds the stock (stock.<SKU>) and reservations (res.<order id>).
const Bucket = "shop_inventory"

// Input is one inventory operation.
type Input struct {
	Op string `json:"op" jsonschema:"enum=reserve,enum=release,enum=commit,enum=get,enum=restock,enum=sweep"`
	// OrderID is required by reserve, release and commit.
	OrderID string `json:"order_id,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	// Items are required by reserve (quantity 1..1000) and restock (the new
	// available quantity); get reads the stock of the listed SKUs, or of all.
	Items []Item `json:"items,omitempty" jsonschema:"maxItems=20"`
}

// Item is a quantity of one SKU.
type Item struct {
	SKU      string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	Quantity int    `json:"quantity" jsonschema:"minimum=0,maximum=100000"`
}

// Output is the outcome of an operation.
type Output struct {
	OrderID string `json:"order_id,omitempty"`
	Status  string `json:"status" jsonschema:"enum=reserved,enum=insufficient_stock,enum=released,enum=committed,enum=ok"`
	// Stock is the available quantity of the SKUs concerned.
	Stock []Stock `json:"stock,omitempty"`
	// SKU is the item that was short, with insufficient_stock.
	SKU string `json:"sku,omitempty"`
	// Released counts the reservations a sweep released.
	Released int `json:"released,omitempty" jsonschema:"minimum=0"`
}

// Stock is the available quantity of one SKU.
type Stock struct {
	SKU       string `json:"sku"`
	Available int    `json:"available" jsonschema:"minimum=0"`
}

// Statuses of Output.
const (
	StatusReserved          = "reserved"
	StatusInsufficientStock = "insufficient_stock"
	StatusReleased          = "released"
	StatusCommitted         = "committed"
	StatusOK                = "ok"
)

// States of a reservation.
const (
	stateHeld      = "held"
	stateCommitted = "committed"
	stateReleased  = "released"
)

// seed is the stock of every SKU the shop sells (catalog's), written on
// first use and never overwritten.
var seed = map[string]int{"TEA-0001": 100, "TEA-0002": 0, "COF-0001": 50, "EQP-0001": 20}

// ReservationTTL is how long a reservation may stay held before the sweep
// releases it; SHOP_RESERVATION_TTL sets it (default 5m).
var ReservationTTL = 5 * time.Minute

// MaxReserveQuantity bounds the quantity of one SKU in a reservation.
const MaxReserveQuantity = 1000

type stockRecord struct {
	Available int `json:"available"`
}

type reservation struct {
	Items []Item `json:"items"`
	// Taken are the items actually taken out of stock so far: a release
	// gives back exactly these.
	Taken []Item `json:"taken"`
	State string `json:"state"`
	// Complete is set once every item is taken; until then a concurrent
	// reserve of the same order cannot tell its outcome yet.
	Complete  bool      `json:"complete"`
	Short     string    `json:"short_sku,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func stockKey(sku string) string { return "stock." + sku }
func resKey(order string) string { return "res." + order }

var errNoop = errors.New("no change")

// Inventory runs one operation.
func Inventory(ctx context.Context, in Input) (Output, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Output{}, err
	}
	if err := ensureSeeded(ctx, kv); err != nil {
		return Output{}, err
	}
	if (in.Op == "reserve" || in.Op == "release" || in.Op == "commit") && in.OrderID == "" {
		return Output{}, fn.InvalidArgument("/order_id", "required for "+in.Op)
	}
	if (in.Op == "reserve" || in.Op == "restock") && len(in.Items) == 0 {
		return Output{}, fn.InvalidArgument("/items", "at least one item is required for "+in.Op)
	}
	for i, it := range in.Items {
		if _, ok := seed[it.SKU]; !ok {
			return Output{}, fn.NotFound("no product with SKU %s", it.SKU)
		}
		if in.Op == "reserve" && (it.Quantity < 1 || it.Quantity > MaxReserveQuantity) {
			return Output{}, fn.InvalidArgument(fmt.Sprintf("/items/%d/quantity", i),
				fmt.Sprintf("must be between 1 and %d to reserve", MaxReserveQuantity))
		}
	}
	switch in.Op {
	case "reserve":
		return reserve(ctx, kv, in.OrderID, merge(in.Items))
	case "release":
		if _, err := release(ctx, kv, in.OrderID, time.Time{}); err != nil {
			return Output{}, err
		}
		return Output{OrderID: in.OrderID, Status: StatusReleased}, nil
	case "commit":
		return commit(ctx, kv, in.OrderID)
	case "get":
		return get(ctx, kv, in.Items)
	case "restock":
		return restock(ctx, kv, in.Items)
	case "sweep":
		n, err := sweep(ctx, kv, time.Now().Add(-ReservationTTL))
		return Output{Status: StatusOK, Released: n}, err
	}
	return Output{}, fn.InvalidArgument("/op", "unknown operation")
}

// merge adds up the quantities of repeated SKUs and sorts by SKU, the
// order in which stock is always taken.
func merge(items []Item) []Item {
	sum := map[string]int{}
	for _, it := range items {
		sum[it.SKU] += it.Quantity
	}
	out := make([]Item, 0, len(sum))
	for sku, q := range sum {
		out = append(out, Item{SKU: sku, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}

var seeded sync.Map // *fn.KV -> struct{}

// ensureSeeded creates the stock of every SKU that has none yet.
func ensureSeeded(ctx context.Context, kv *fn.KV) error {
	if _, ok := seeded.Load(kv); ok {
		return nil
	}
	for sku, n := range seed {
		_, err := kv.Create(ctx, stockKey(sku), []byte(fmt.Sprintf(`{"available":%d}`, n)))
		if err != nil && !errors.Is(err, fn.ErrKeyExists) {
			return err
		}
	}
	seeded.Store(kv, struct{}{})
	return nil
}

// stockLocks serialise this instance's own updates of one SKU, so that
// they do not race each other for the same revision; other instances are
// kept out by the revision check.
var stockLocks sync.Map // SKU -> *sync.Mutex

// addStock changes the available stock of sku by delta, refusing (errShort)
// to go below zero.
func addStock(ctx context.Context, kv *fn.KV, sku string, delta int) (int, error) {
	mu, _ := stockLocks.LoadOrStore(sku, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	s, err := fn.UpdateJSON(ctx, kv, stockKey(sku), func(s *stockRecord, exists bool) error {
		if !exists {
			s.Available = seed[sku]
		}
		if s.Available+delta < 0 {
			return errShort
		}
		s.Available += delta
		return nil
	})
	return s.Available, err
}

var errShort = errors.New("insufficient stock")

func reserve(ctx context.Context, kv *fn.KV, order string, items []Item) (Output, error) {
	now := time.Now().UTC()
	var existing reservation
	_, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		existing = *r
		// A reservation released by release or the sweep may be held
		// again: the order is being retried.
		if exists && (r.State != stateReleased || r.Short != "") {
			return errNoop
		}
		*r = reservation{Items: items, Taken: []Item{}, State: stateHeld, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	if errors.Is(err, errNoop) {
		return existingOutcome(order, existing)
	}
	if err != nil {
		return Output{}, err
	}

	out := Output{OrderID: order, Status: StatusReserved, Stock: []Stock{}}
	for _, it := range items {
		avail, err := addStock(ctx, kv, it.SKU, -it.Quantity)
		if errors.Is(err, errShort) {
			if _, err := release(ctx, kv, order, time.Time{}, it.SKU); err != nil {
				return Output{}, err
			}
			return Output{OrderID: order, Status: StatusInsufficientStock, SKU: it.SKU}, nil
		}
		if err != nil {
			// What was taken stays recorded: release or the sweep gives it back.
			return Output{}, err
		}
		_, err = fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
			if !exists || r.State != stateHeld {
				return errNoop
			}
			r.Taken = append(r.Taken, it)
			r.UpdatedAt = time.Now().UTC()
			return nil
		})
		if errors.Is(err, errNoop) {
			// Released meanwhile (a concurrent release): this item is ours to
			// give back, the rest was given back by the release.
			if _, err := addStock(ctx, kv, it.SKU, it.Quantity); err != nil {
				return Output{}, err
			}
			return Output{OrderID: order, Status: StatusReleased}, nil
		}
		if err != nil {
			// The item is taken but not recorded: it is lost to the stock
			// rather than oversold.
			return Output{}, err
		}
		out.Stock = append(out.Stock, Stock{SKU: it.SKU, Available: avail})
	}
	_, err = fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		if !exists || r.State != stateHeld {
			return errNoop
		}
		r.Complete = true
		return nil
	})
	if errors.Is(err, errNoop) {
		return Output{OrderID: order, Status: StatusReleased}, nil
	}
	return out, err
}

// existingOutcome answers a repeated reserve of an order.
func existingOutcome(order string, r reservation) (Output, error) {
	switch {
	case r.State == stateReleased:
		return Output{OrderID: order, Status: StatusInsufficientStock, SKU: r.Short}, nil
	case r.State == stateHeld && !r.Complete:
		return Output{}, fn.Errorf(fn.CodeUnavailable, "the reservation of order %s is still being made; try again", order)
	}
	return Output{OrderID: order, Status: StatusReserved}, nil
}

// release gives back the stock of a held reservation, exactly once: the
// state change held→released is revision-checked, so only one caller wins
// it and gives the items back. With a non-zero olderThan only reservations
// created before it are released (the sweep). It reports whether this call
// released it.
func release(ctx context.Context, kv *fn.KV, order string, olderThan time.Time, short ...string) (bool, error) {
	var taken []Item
	_, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		if !exists || r.State != stateHeld || (!olderThan.IsZero() && !r.CreatedAt.Before(olderThan)) {
			return errNoop
		}
		taken = r.Taken
		r.State = stateReleased
		if len(short) > 0 {
			r.Short = short[0]
		}
		r.UpdatedAt = time.Now().UTC()
		return nil
	})
	if errors.Is(err, errNoop) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, it := range taken {
		if _, err := addStock(ctx, kv, it.SKU, it.Quantity); err != nil {
			fn.Logger(ctx).Error("stock of a released reservation not given back", "order", order, "sku", it.SKU, "quantity", it.Quantity, "err", err)
			return true, err
		}
	}
	return true, nil
}

func commit(ctx context.Context, kv *fn.KV, order string) (Output, error) {
	var state string
	var complete bool
	_, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		if !exists {
			return fn.NotFound("no reservation for order %s", order)
		}
		state, complete = r.State, r.Complete
		if r.State != stateHeld || !r.Complete {
			return errNoop
		}
		r.State = stateCommitted
		r.UpdatedAt = time.Now().UTC()
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errNoop) && state == stateCommitted:
		return Output{OrderID: order, Status: StatusCommitted}, nil
	case errors.Is(err, errNoop) && state == stateReleased:
		return Output{}, fn.Errorf(fn.CodeConflict, "the reservation of order %s was released", order)
	case errors.Is(err, errNoop) && !complete:
		return Output{}, fn.Errorf(fn.CodeConflict, "the reservation of order %s is not complete", order)
	}
	return Output{}, err
}

func get(ctx context.Context, kv *fn.KV, items []Item) (Output, error) {
	var skus []string
	for _, it := range items {
		skus = append(skus, it.SKU)
	}
	if len(skus) == 0 {
		for sku := range seed {
			skus = append(skus, sku)
		}
	}
	slices.Sort(skus)
	skus = slices.Compact(skus)
	out := Output{Status: StatusOK, Stock: []Stock{}}
	for _, sku := range skus {
		s, _, err := fn.GetJSON[stockRecord](ctx, kv, stockKey(sku))
		if err != nil {
			return Output{}, err
		}
		out.Stock = append(out.Stock, Stock{SKU: sku, Available: s.Available})
	}
	return out, nil
}

func restock(ctx context.Context, kv *fn.KV, items []Item) (Output, error) {
	out := Output{Status: StatusOK, Stock: []Stock{}}
	for _, it := range items {
		s, err := fn.UpdateJSON(ctx, kv, stockKey(it.SKU), func(s *stockRecord, _ bool) error {
			s.Available = it.Quantity
			return nil
		})
		if err != nil {
			return Output{}, err
		}
		out.Stock = append(out.Stock, Stock{SKU: it.SKU, Available: s.Available})
	}
	return out, nil
}

// sweep releases the held reservations created before cutoff.
func sweep(ctx context.Context, kv *fn.KV, cutoff time.Time) (int, error) {
	keys, err := kv.Keys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		order, ok := strings.CutPrefix(k, "res.")
		if !ok {
			continue
		}
		r, _, err := fn.GetJSON[reservation](ctx, kv, k)
		if errors.Is(err, fn.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if r.State != stateHeld || !r.CreatedAt.Before(cutoff) {
			continue
		}
		released, err := release(ctx, kv, order, cutoff)
		if err != nil {
			return n, err
		}
		if released {
			fn.Logger(ctx).Warn("released an expired reservation", "order", order, "created_at", r.CreatedAt)
			n++
		}
	}
	return n, nil
}

// ParseTTL reads SHOP_RESERVATION_TTL (empty: the default).
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return ReservationTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("SHOP_RESERVATION_TTL=%q: want a positive Go duration such as 5m", s)
	}
	return d, nil
}

// Config is inventory's identity; the sweep runs every minute.
var Config = fn.Config{
	Name:        "inventory",
	Description: "Stock and reservations of the example shop",
	Schedules:   []fn.Schedule{{Cron: "@every 1m", Input: map[string]any{"op": "sweep"}}},
}

func main() {
	ttl, err := ParseTTL(os.Getenv("SHOP_RESERVATION_TTL"))
	if err != nil {
		log.Print("inventory: ", err)
		os.Exit(2)
	}
	ReservationTTL = ttl
	fn.Main(Config, fn.Handle(Inventory))
}
