// Command inventory keeps the example shop's stock, and the reservations
// orders hold on it, in the KV bucket shop_inventory: stock.<SKU> holds the
// available quantity and each reservation's hold on it, res.<order> the
// reservation. No number of instances can oversell or give back twice;
// docs/shop.md ("How it stays consistent") says how.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
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
	// Attempt fences reserve, release and commit: an attempt older than the
	// one holding the reservation is refused (409, stale_attempt). 0: not
	// fenced.
	Attempt int64 `json:"attempt,omitempty" jsonschema:"minimum=0"`
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
	// Released counts the reservations a sweep released, Held the holds
	// it left in place (reservations in flight).
	Released int `json:"released,omitempty" jsonschema:"minimum=0"`
	Held     int `json:"held,omitempty" jsonschema:"minimum=0"`
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

// Reasons of inventory's conflicts (409).
const (
	ReasonStale      = "stale_attempt"          // a newer attempt holds the reservation
	ReasonReleased   = "reservation_released"   // commit found it released
	ReasonIncomplete = "reservation_incomplete" // commit found it still being made
)

// States of a reservation.
const (
	stateHeld      = "held"
	stateCommitted = "committed"
	stateReleased  = "released"
)

// MaxReserveQuantity bounds the quantity of one SKU in a reservation;
// settleTimeout a reserve's takes once started.
const (
	MaxReserveQuantity = 1000
	settleTimeout      = 10 * time.Second
)

// seed is the stock of every SKU the shop sells (catalog's) until its
// stock record is first written.
var seed = map[string]int{"TEA-0001": 100, "TEA-0002": 0, "COF-0001": 50, "EQP-0001": 20}

// ReservationTTL is how long a reservation may stay held before the sweep
// releases it; SHOP_RESERVATION_TTL sets it (default 5m).
var ReservationTTL = 5 * time.Minute

// stockRecord is stock.<SKU>: what is available, and what each reservation
// in flight holds, by holdKey.
type stockRecord struct {
	Available int            `json:"available"`
	Holds     map[string]int `json:"holds,omitempty"`
}

// reservation is res.<order>, held by the attempt with the fencing token
// Attempt. Gen grows each time it goes (back) to held, for a retried
// order or a newer attempt: each generation's holds are its own.
type reservation struct {
	Items     []Item    `json:"items"`
	State     string    `json:"state"`
	Attempt   int64     `json:"attempt,omitempty"`
	Gen       int64     `json:"gen,omitempty"`
	Complete  bool      `json:"complete"` // every item is taken
	Short     string    `json:"short_sku,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func stockKey(sku string) string { return "stock." + sku }
func resKey(order string) string { return "res." + order }

// holdKey is <order>#<gen>; generation 0 (holds written before there were
// generations) is the order id alone.
func holdKey(order string, gen int64) string {
	if gen == 0 {
		return order
	}
	return order + "#" + strconv.FormatInt(gen, 10)
}

func parseHoldKey(k string) (order string, gen int64) {
	order, g, ok := strings.Cut(k, "#")
	if n, err := strconv.ParseInt(g, 10, 64); ok && err == nil {
		return order, n
	}
	return k, 0
}

var (
	errNoop       = errors.New("no change")
	errShort      = errors.New("insufficient stock")
	errSuperseded = errors.New("a newer generation of the reservation holds the SKU")
)

func stale(order string) error {
	return fn.WithReason(fn.Errorf(fn.CodeConflict, "the reservation of order %s belongs to a newer attempt", order), ReasonStale)
}

// Inventory runs one operation.
func Inventory(ctx context.Context, in Input) (Output, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
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
		return reserve(ctx, kv, in.OrderID, in.Attempt, merge(in.Items))
	case "release":
		if _, err := release(ctx, kv, in.OrderID, in.Attempt, time.Time{}); err != nil {
			return Output{}, err
		}
		return Output{OrderID: in.OrderID, Status: StatusReleased}, nil
	case "commit":
		return commit(ctx, kv, in.OrderID, in.Attempt)
	case "get":
		return get(ctx, kv, in.Items)
	case "restock":
		return restock(ctx, kv, in.Items)
	case "sweep":
		released, held, err := sweep(ctx, kv, time.Now().Add(-ReservationTTL))
		return Output{Status: StatusOK, Released: released, Held: held}, err
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
	for _, sku := range slices.Sorted(maps.Keys(sum)) {
		out = append(out, Item{SKU: sku, Quantity: sum[sku]})
	}
	return out
}

// readStock reads stock.<sku>, or the seed when it was never written.
func readStock(ctx context.Context, kv *fn.KV, sku string) (stockRecord, error) {
	s, _, err := fn.GetJSON[stockRecord](ctx, kv, stockKey(sku))
	if errors.Is(err, fn.ErrKeyNotFound) {
		return stockRecord{Available: seed[sku]}, nil
	}
	return s, err
}

// stockLocks serialise this instance's own updates of one SKU, so that
// they do not race each other for the revision; other instances are kept
// out by the revision check.
var stockLocks sync.Map // SKU -> *sync.Mutex

// changeStock applies change to stock.<sku> in one revision-checked write;
// change returns errNoop to write nothing.
func changeStock(ctx context.Context, kv *fn.KV, sku string, change func(s *stockRecord) error) (stockRecord, error) {
	mu, _ := stockLocks.LoadOrStore(sku, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	s, err := fn.UpdateJSON(ctx, kv, stockKey(sku), func(s *stockRecord, exists bool) error {
		if !exists {
			s.Available = seed[sku]
		}
		if s.Holds == nil {
			s.Holds = map[string]int{}
		}
		return change(s)
	})
	if errors.Is(err, errNoop) {
		err = nil
	}
	return s, err
}

// giveBack returns the order's holds of generations up to gen to the
// available stock, and reports whether there were any.
func (s *stockRecord) giveBack(order string, gen int64) bool {
	changed := false
	for k, q := range s.Holds {
		if o, g := parseHoldKey(k); o == order && g <= gen {
			s.Available += q
			delete(s.Holds, k)
			changed = true
		}
	}
	return changed
}

// take takes qty of sku for generation gen of the order's reservation,
// unless it holds the SKU already; holds of older generations are given
// back in the same write.
func take(ctx context.Context, kv *fn.KV, sku, order string, gen int64, qty int) (stockRecord, error) {
	return changeStock(ctx, kv, sku, func(s *stockRecord) error {
		for k := range s.Holds {
			if o, g := parseHoldKey(k); o == order && g > gen {
				return errSuperseded
			}
		}
		changed := s.giveBack(order, gen-1)
		if _, ok := s.Holds[holdKey(order, gen)]; ok {
			return noopUnless(changed)
		}
		if s.Available < qty {
			return errShort // nothing is written: older holds go back on their own
		}
		s.Available -= qty
		s.Holds[holdKey(order, gen)] = qty
		return nil
	})
}

// settleHold ends generation gen's hold of sku: given back, or with sold
// deleted (the units stay sold). Older generations' holds are given back.
func settleHold(ctx context.Context, kv *fn.KV, sku, order string, gen int64, sold bool) error {
	_, err := changeStock(ctx, kv, sku, func(s *stockRecord) error {
		changed := s.giveBack(order, gen-1)
		if q, ok := s.Holds[holdKey(order, gen)]; ok {
			if !sold {
				s.Available += q
			}
			delete(s.Holds, holdKey(order, gen))
			changed = true
		}
		return noopUnless(changed)
	})
	return err
}

func noopUnless(changed bool) error {
	if changed {
		return nil
	}
	return errNoop
}

// settleHolds ends generation gen's holds of every item; a failure does not
// stop the others, and repeating it finishes the rest.
func settleHolds(ctx context.Context, kv *fn.KV, order string, gen int64, items []Item, sold bool) error {
	var errs []error
	for _, it := range items {
		errs = append(errs, settleHold(ctx, kv, it.SKU, order, gen, sold))
	}
	return errors.Join(errs...)
}

func reserve(ctx context.Context, kv *fn.KV, order string, attempt int64, items []Item) (Output, error) {
	now := time.Now().UTC()
	r, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		switch {
		case !exists:
		case attempt != 0 && attempt < r.Attempt:
			return stale(order)
		case r.State == stateHeld && (attempt == r.Attempt || attempt == 0),
			r.State == stateCommitted, r.Short != "":
			return errNoop // the same attempt carries on, or the outcome stands
		}
		// New, released and retried, or held by an older attempt: a new
		// generation (whose takes give the older one's holds back).
		*r = reservation{Items: items, State: stateHeld, Attempt: attempt, Gen: r.Gen + 1, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	switch {
	case err != nil && !errors.Is(err, errNoop):
		return Output{}, err
	case r.State == stateReleased:
		return Output{OrderID: order, Status: StatusInsufficientStock, SKU: r.Short}, nil
	case r.State == stateCommitted || r.Complete:
		return Output{OrderID: order, Status: StatusReserved}, nil
	}
	// The takes finish together whatever the caller's deadline: a take
	// that lands after a release is given back by this call, so only a
	// crash leaves one behind, for the sweep.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	out := Output{OrderID: order, Status: StatusReserved, Stock: []Stock{}}
	short := ""
	for _, it := range r.Items {
		s, err := take(ctx, kv, it.SKU, order, r.Gen, it.Quantity)
		if errors.Is(err, errShort) {
			short = it.SKU
		}
		if errors.Is(err, errShort) || errors.Is(err, errSuperseded) {
			break
		}
		if err != nil {
			return Output{}, err // the holds say what was taken: a retry, release or sweep settles it
		}
		out.Stock = append(out.Stock, Stock{SKU: it.SKU, Available: s.Available})
	}
	// Complete (or out of stock), unless released or taken over meanwhile.
	cur, err := fn.UpdateJSON(ctx, kv, resKey(order), func(cur *reservation, exists bool) error {
		if !exists || cur.Gen != r.Gen || cur.State != stateHeld || cur.Complete || cur.Attempt != r.Attempt {
			return errNoop
		}
		if short != "" {
			cur.State, cur.Short = stateReleased, short
		}
		cur.Complete, cur.UpdatedAt = short == "", time.Now().UTC()
		return nil
	})
	switch {
	case err == nil && short == "":
		return out, nil
	case err == nil:
		return Output{OrderID: order, Status: StatusInsufficientStock, SKU: short}, settleHolds(ctx, kv, order, r.Gen, r.Items, false)
	case !errors.Is(err, errNoop):
		return Output{}, err
	case cur.Gen == r.Gen && cur.State == stateHeld && cur.Complete && cur.Attempt == r.Attempt:
		return out, nil // finished by a concurrent call of the same attempt
	}
	// Released, or started over by a newer attempt: what this call took
	// goes back.
	if err := settleHolds(ctx, kv, order, r.Gen, r.Items, false); err != nil {
		return Output{}, err
	}
	if cur.Attempt > attempt && attempt != 0 {
		return Output{}, stale(order)
	}
	return Output{OrderID: order, Status: StatusReleased}, nil
}

// release releases the order's reservation and gives its holds back; with
// a non-zero olderThan (the sweep) only one held since before it. A
// repeated release finishes a give-back that failed. It reports whether
// this call released it.
func release(ctx context.Context, kv *fn.KV, order string, attempt int64, olderThan time.Time) (bool, error) {
	r, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		switch {
		case !exists || r.State != stateHeld:
			return errNoop
		case attempt != 0 && attempt < r.Attempt:
			return stale(order)
		case !olderThan.IsZero() && !r.CreatedAt.Before(olderThan):
			return errNoop
		}
		r.State, r.UpdatedAt = stateReleased, time.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errNoop) {
		return false, err
	}
	if r.State != stateReleased {
		return false, nil
	}
	return err == nil, settleHolds(ctx, kv, order, r.Gen, r.Items, false)
}

func commit(ctx context.Context, kv *fn.KV, order string, attempt int64) (Output, error) {
	r, err := fn.UpdateJSON(ctx, kv, resKey(order), func(r *reservation, exists bool) error {
		switch {
		case !exists:
			return fn.NotFound("no reservation for order %s", order)
		case r.State == stateCommitted:
			return errNoop
		case r.State == stateReleased:
			return fn.WithReason(fn.Errorf(fn.CodeConflict, "the reservation of order %s was released", order), ReasonReleased)
		case attempt != 0 && attempt < r.Attempt:
			return stale(order)
		case !r.Complete:
			return fn.WithReason(fn.Errorf(fn.CodeConflict, "the reservation of order %s is still being made", order), ReasonIncomplete)
		}
		r.State, r.UpdatedAt = stateCommitted, time.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errNoop) {
		return Output{}, err
	}
	// The units stay sold: deleting the holds is bookkeeping, which the
	// sweep finishes should it fail here.
	if err := settleHolds(ctx, kv, order, r.Gen, r.Items, true); err != nil {
		fn.Logger(ctx).Warn("committed, but holds not settled yet", "order", order, "err", err)
	}
	return Output{OrderID: order, Status: StatusCommitted}, nil
}

func get(ctx context.Context, kv *fn.KV, items []Item) (Output, error) {
	if len(items) == 0 {
		for sku := range seed {
			items = append(items, Item{SKU: sku})
		}
	}
	out := Output{Status: StatusOK, Stock: []Stock{}}
	for _, it := range merge(items) {
		s, err := readStock(ctx, kv, it.SKU)
		if err != nil {
			return Output{}, err
		}
		out.Stock = append(out.Stock, Stock{SKU: it.SKU, Available: s.Available})
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

// sweep settles the holds no reservation in flight needs, by the state of
// their reservation: held since before cutoff, it is released; committed,
// the hold is deleted; released before cutoff (a reserve may still be
// taking for it until then), superseded by a newer generation or missing,
// the hold is given back. It returns how many reservations it released,
// and how many holds it left.
func sweep(ctx context.Context, kv *fn.KV, cutoff time.Time) (released, held int, err error) {
	var errs []error
	for _, sku := range slices.Sorted(maps.Keys(seed)) {
		s, err := readStock(ctx, kv, sku)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for k := range s.Holds {
			order, gen := parseHoldKey(k)
			r, _, err := fn.GetJSON[reservation](ctx, kv, resKey(order))
			mine := err == nil && r.Gen == gen
			switch {
			case err != nil && !errors.Is(err, fn.ErrKeyNotFound):
				errs = append(errs, err)
			case mine && r.State == stateHeld && r.CreatedAt.Before(cutoff):
				ok, err := release(ctx, kv, order, 0, cutoff)
				if ok {
					fn.Logger(ctx).Warn("released an expired reservation", "order", order, "created_at", r.CreatedAt)
					released++
				}
				errs = append(errs, err)
			case mine && (r.State == stateHeld || r.State == stateReleased && !r.UpdatedAt.Before(cutoff)):
				held++
			default:
				errs = append(errs, settleHold(ctx, kv, sku, order, gen, mine && r.State == stateCommitted))
			}
		}
	}
	return released, held, errors.Join(errs...)
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
	Buckets:     []string{Bucket},
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
