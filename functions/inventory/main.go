// Command inventory keeps the example shop's stock and the reservations
// orders hold on it, in the KV bucket shop_inventory. Every stock change is
// one revision-checked, repeatable write on the stock key itself:
// stock.<SKU> holds the available quantity and the holds of the orders that
// reserved it ({"available": 98, "holds": {"o-1#1": 2}}). Taking stock for an
// order that already holds the SKU does nothing, giving back only happens
// while the hold exists (and deletes it), and committing deletes the hold
// (the units stay sold). So concurrent orders, on any number of instances,
// can never take stock below zero, and any step may be retried after a
// crash without taking or giving back twice.
//
// Generations. A released reservation may be held again (the order is
// retried), so one order may hold a SKU more than once over time. Every
// time a reservation goes (back) to held its generation (Gen in res.<order>)
// grows, and holds are keyed by order and generation, <order>#<gen>: take,
// give back and commit name their generation and touch only its hold, so a
// late give-back of a released generation can never take back the stock of
// the newer one. A generation exists only once the one before was
// released, so any of these writes also gives back the holds the order has
// of older generations that are still there (a give-back that never ran).
// A hold keyed by the order alone (written before generations existed) is
// generation 0, the generation of a reservation record without one.
//
// An order first reserves its items, then commits the reservation once paid
// or releases it (giving the items back). The reservation record
// res.<order> says which SKUs the order touched and in which state it is
// (held, committed, released); it carries the attempt (a fencing token from
// orders, growing with every attempt at the order) that holds it, and
// reserve, release and commit with an older attempt are refused (409), so a
// slow earlier attempt cannot change a newer one's reservation. Callers
// without an attempt (0) are not fenced.
//
// Reservations that are held, or whose commit or release has not finished
// yet, are indexed in a second bucket, shop_inventory_held (one key per
// order), so the sweep, which runs every minute, reads only those: it
// releases the ones held for longer than SHOP_RESERVATION_TTL (left by an
// orders instance that crashed) and finishes interrupted commits and
// releases. Finished reservation records stay in shop_inventory: they
// remember an order's outcome (a repeated reserve of an order that was out
// of stock answers insufficient_stock again).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
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

// HeldBucket indexes the reservations the sweep must look at: one key per
// order, created on reserve, deleted once committed or released.
const HeldBucket = "shop_inventory_held"

// Input is one inventory operation.
type Input struct {
	Op string `json:"op" jsonschema:"enum=reserve,enum=release,enum=commit,enum=get,enum=restock,enum=sweep"`
	// OrderID is required by reserve, release and commit.
	OrderID string `json:"order_id,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	// Items are required by reserve (quantity 1..1000) and restock (the new
	// available quantity); get reads the stock of the listed SKUs, or of all.
	Items []Item `json:"items,omitempty" jsonschema:"maxItems=20"`
	// Attempt fences reserve, release and commit: an attempt older than the
	// one holding the reservation is refused with conflict. 0: not fenced.
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

// stockRecord is stock.<SKU>: what is available, and what each order with
// a live reservation holds. Holds are deleted by commit and release, so
// the map only ever holds the reservations in flight.
type stockRecord struct {
	Available int `json:"available"`
	// Holds are keyed by holdKey: <order>#<gen>, or <order> for gen 0.
	Holds map[string]int `json:"holds,omitempty"`
}

// holdKey is the key of a generation's hold in stockRecord.Holds. Order ids
// have no #, so the key of generation 0 is the order id itself: the format
// of holds written before generations existed.
func holdKey(order string, gen int64) string {
	if gen == 0 {
		return order
	}
	return order + "#" + strconv.FormatInt(gen, 10)
}

// parseHoldKey splits a hold key into order and generation.
func parseHoldKey(k string) (order string, gen int64) {
	i := strings.LastIndexByte(k, '#')
	if i < 0 {
		return k, 0
	}
	g, err := strconv.ParseInt(k[i+1:], 10, 64)
	if err != nil {
		return k, 0
	}
	return k[:i], g
}

// reclaimOlder gives back the order's holds of generations older than gen:
// those generations were released, and their give-back has not run yet.
func (s *stockRecord) reclaimOlder(order string, gen int64) bool {
	changed := false
	for k, q := range s.Holds {
		if o, g := parseHoldKey(k); o == order && g < gen {
			s.Available += q
			delete(s.Holds, k)
			changed = true
		}
	}
	return changed
}

type reservation struct {
	Items []Item `json:"items"`
	State string `json:"state"`
	// Attempt is the fencing token of the attempt holding it.
	Attempt int64 `json:"attempt,omitempty"`
	// Gen grows every time the reservation goes (back) to held; the holds
	// of the stock records carry it. 0: written before generations existed.
	Gen int64 `json:"gen,omitempty"`
	// Complete is set once every item is taken; until then a concurrent
	// reserve of the same order cannot tell its outcome yet.
	Complete  bool      `json:"complete"`
	Short     string    `json:"short_sku,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type heldEntry struct {
	CreatedAt time.Time `json:"created_at"`
}

func stockKey(sku string) string { return "stock." + sku }
func resKey(order string) string { return "res." + order }

var errNoop = errors.New("no change")

type buckets struct{ kv, held *fn.KV }

// Inventory runs one operation.
func Inventory(ctx context.Context, in Input) (Output, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Output{}, err
	}
	held, err := fn.OpenKV(ctx, HeldBucket)
	if err != nil {
		return Output{}, err
	}
	b := buckets{kv, held}
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
		return reserve(ctx, b, in.OrderID, in.Attempt, merge(in.Items))
	case "release":
		if _, err := release(ctx, b, in.OrderID, in.Attempt, time.Time{}, ""); err != nil {
			return Output{}, err
		}
		return Output{OrderID: in.OrderID, Status: StatusReleased}, nil
	case "commit":
		return commit(ctx, b, in.OrderID, in.Attempt)
	case "get":
		return get(ctx, kv, in.Items)
	case "restock":
		return restock(ctx, kv, in.Items)
	case "sweep":
		n, err := sweep(ctx, b, time.Now().Add(-ReservationTTL))
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

// changeStock applies change to stock.<sku> in one revision-checked write.
func changeStock(ctx context.Context, kv *fn.KV, sku string, change func(s *stockRecord) error) (stockRecord, error) {
	mu, _ := stockLocks.LoadOrStore(sku, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return fn.UpdateJSON(ctx, kv, stockKey(sku), func(s *stockRecord, exists bool) error {
		if !exists {
			s.Available = seed[sku]
		}
		return change(s)
	})
}

var (
	errShort      = errors.New("insufficient stock")
	errSuperseded = errors.New("a newer generation of the reservation holds the SKU")
)

// take takes qty of sku for generation gen of the order's reservation,
// unless that generation holds the SKU already. Holds of older generations
// are given back in the same write; a newer generation's hold refuses it
// (errSuperseded).
func take(ctx context.Context, kv *fn.KV, sku, order string, gen int64, qty int) (int, error) {
	s, err := changeStock(ctx, kv, sku, func(s *stockRecord) error {
		for k := range s.Holds {
			if o, g := parseHoldKey(k); o == order && g > gen {
				return errSuperseded
			}
		}
		reclaimed := s.reclaimOlder(order, gen)
		if _, ok := s.Holds[holdKey(order, gen)]; ok {
			if reclaimed {
				return nil
			}
			return errNoop
		}
		if s.Available < qty {
			// Short even with the older holds given back: nothing is
			// written (they stay for their own give-back).
			return errShort
		}
		s.Available -= qty
		if s.Holds == nil {
			s.Holds = map[string]int{}
		}
		s.Holds[holdKey(order, gen)] = qty
		return nil
	})
	if errors.Is(err, errNoop) {
		err = nil
	}
	return s.Available, err
}

// giveBack returns generation gen's hold of sku (and any of an older
// generation) to the available stock, if it still has one. Newer
// generations' holds are not touched.
func giveBack(ctx context.Context, kv *fn.KV, sku, order string, gen int64) error {
	_, err := changeStock(ctx, kv, sku, func(s *stockRecord) error {
		if !s.reclaimOlder(order, gen+1) {
			return errNoop
		}
		return nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}

// settleHold deletes generation gen's hold of sku: the units stay sold.
// Holds of older generations are given back.
func settleHold(ctx context.Context, kv *fn.KV, sku, order string, gen int64) error {
	_, err := changeStock(ctx, kv, sku, func(s *stockRecord) error {
		reclaimed := s.reclaimOlder(order, gen)
		if _, ok := s.Holds[holdKey(order, gen)]; !ok {
			if reclaimed {
				return nil
			}
			return errNoop
		}
		delete(s.Holds, holdKey(order, gen))
		return nil
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	return err
}

func staleAttempt(order string, attempt, holder int64) error {
	return fn.Errorf(fn.CodeConflict, "the reservation of order %s belongs to a newer attempt (%d > %d)", order, holder, attempt)
}

func reserve(ctx context.Context, b buckets, order string, attempt int64, items []Item) (Output, error) {
	now := time.Now().UTC()
	var existing reservation
	var adopted bool
	r, err := fn.UpdateJSON(ctx, b.kv, resKey(order), func(r *reservation, exists bool) error {
		existing, adopted = *r, false
		if exists {
			if attempt != 0 && attempt < r.Attempt {
				return staleAttempt(order, attempt, r.Attempt)
			}
			switch {
			case r.State == stateHeld && r.Complete && attempt > r.Attempt:
				// A newer attempt takes over the finished reservation.
				r.Attempt, r.UpdatedAt, adopted = attempt, now, true
				return nil
			case r.State == stateHeld && !r.Complete && attempt != 0 && attempt == r.Attempt:
				// The same attempt again (say, after a timeout): carry on,
				// taking is repeatable.
				return nil
			case r.State != stateReleased || r.Short != "":
				return errNoop
			}
			// A reservation released by release or the sweep may be held
			// again: the order is being retried. It is a new generation,
			// whose holds are its own.
		}
		*r = reservation{Items: items, State: stateHeld, Attempt: attempt, Gen: r.Gen + 1, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	if errors.Is(err, errNoop) {
		return existingOutcome(order, existing)
	}
	if err != nil {
		return Output{}, err
	}
	if adopted {
		return Output{OrderID: order, Status: StatusReserved}, nil
	}
	// Indexed before anything is taken, so the sweep finds whatever is.
	if err := markHeld(ctx, b.held, order, r.CreatedAt); err != nil {
		return Output{}, err
	}
	// From here on the steps must finish together (a take that lands after
	// a sweep must be given back by this call), whatever the caller's
	// deadline: only a crash stops them half way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()

	// gone ends this call when its generation was released meanwhile (a
	// concurrent release or sweep), and maybe held again since: what this
	// generation took after the release gave back is given back too, and
	// a newer generation is left alone.
	gone := func() (Output, error) {
		cur, err := abandon(ctx, b, order, r, "")
		switch {
		case err != nil:
			return Output{}, err
		case cur.State == stateHeld && cur.Attempt > attempt:
			return Output{}, staleAttempt(order, attempt, cur.Attempt)
		case cur.Gen == r.Gen && cur.State != stateReleased:
			// Finished by a concurrent call of the same attempt.
			return Output{OrderID: order, Status: StatusReserved}, nil
		}
		return Output{OrderID: order, Status: StatusReleased}, nil
	}
	out := Output{OrderID: order, Status: StatusReserved, Stock: []Stock{}}
	for _, it := range r.Items {
		avail, err := take(ctx, b.kv, it.SKU, order, r.Gen, it.Quantity)
		if errors.Is(err, errSuperseded) {
			return gone()
		}
		if errors.Is(err, errShort) {
			if _, err := abandon(ctx, b, order, r, it.SKU); err != nil {
				return Output{}, err
			}
			return Output{OrderID: order, Status: StatusInsufficientStock, SKU: it.SKU}, nil
		}
		if err != nil {
			// The holds say what was taken: a retry, release or the sweep
			// settles it.
			return Output{}, err
		}
		out.Stock = append(out.Stock, Stock{SKU: it.SKU, Available: avail})
	}
	gen := r.Gen
	_, err = fn.UpdateJSON(ctx, b.kv, resKey(order), func(r *reservation, exists bool) error {
		if !exists || r.State != stateHeld || r.Gen != gen || r.Attempt != attempt {
			return errNoop
		}
		r.Complete, r.UpdatedAt = true, time.Now().UTC()
		return nil
	})
	if errors.Is(err, errNoop) {
		return gone()
	}
	return out, err
}

// settleTimeout bounds the steps of a reserve once it has started taking.
const settleTimeout = 10 * time.Second

// abandon ends generation mine.Gen of the order's reservation when reserve
// cannot finish it: still held and incomplete, it is released (short names
// the SKU that was short); then its holds are given back. A newer
// generation, a complete one (finished, or taken over by a newer attempt)
// or a commit is left alone. It returns the reservation as it found it.
func abandon(ctx context.Context, b buckets, order string, mine reservation, short string) (reservation, error) {
	var cur reservation
	_, err := fn.UpdateJSON(ctx, b.kv, resKey(order), func(r *reservation, exists bool) error {
		cur = *r
		if !exists || r.Gen != mine.Gen || r.State != stateHeld || r.Complete {
			return errNoop
		}
		r.State, r.Short, r.UpdatedAt = stateReleased, short, time.Now().UTC()
		cur = *r
		return nil
	})
	if err != nil && !errors.Is(err, errNoop) {
		return cur, err
	}
	switch {
	case cur.Gen == mine.Gen && cur.State == stateReleased:
		return cur, finishRelease(ctx, b, order, cur)
	case cur.Gen != mine.Gen:
		// A newer generation holds it now: give back this one's holds
		// only; the held index is the newer one's.
		var errs []error
		for _, it := range mine.Items {
			errs = append(errs, giveBack(ctx, b.kv, it.SKU, order, mine.Gen))
		}
		return cur, errors.Join(errs...)
	}
	return cur, nil
}

func markHeld(ctx context.Context, held *fn.KV, order string, created time.Time) error {
	_, err := fn.UpdateJSON(ctx, held, order, func(h *heldEntry, _ bool) error {
		h.CreatedAt = created
		return nil
	})
	return err
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

// release gives back the stock of a reservation. The state change
// held→released is revision-checked; then every SKU the reservation names
// is given back where its generation still holds it, each a repeatable
// write. A give-back that fails does not stop the others, and the
// reservation stays in the held index, so a repeated release (or the sweep)
// completes it. With a non-zero olderThan only reservations created before
// it are released (the sweep). It reports whether this call moved it to
// released.
func release(ctx context.Context, b buckets, order string, attempt int64, olderThan time.Time, short string) (bool, error) {
	cur, found, changed, err := markReleased(ctx, b, order, attempt, olderThan, short)
	if err != nil {
		return false, err
	}
	if !found {
		return false, unindex(ctx, b, order, 0)
	}
	if cur.State != stateReleased {
		return false, nil // held (too young for the sweep) or committed
	}
	return changed, finishRelease(ctx, b, order, cur)
}

// markReleased is release's first step: it moves a held reservation to
// released, and returns it as it is then.
func markReleased(ctx context.Context, b buckets, order string, attempt int64, olderThan time.Time, short string) (cur reservation, found, changed bool, err error) {
	_, err = fn.UpdateJSON(ctx, b.kv, resKey(order), func(r *reservation, exists bool) error {
		cur, found = *r, exists
		if !exists || r.State != stateHeld {
			return errNoop
		}
		if attempt != 0 && attempt < r.Attempt {
			return staleAttempt(order, attempt, r.Attempt)
		}
		if !olderThan.IsZero() && !r.CreatedAt.Before(olderThan) {
			return errNoop
		}
		r.State, r.Short, r.UpdatedAt = stateReleased, short, time.Now().UTC()
		cur = *r
		return nil
	})
	if errors.Is(err, errNoop) {
		return cur, found, false, nil
	}
	return cur, found, err == nil, err
}

// finishRelease gives back every hold of a released reservation (of its
// generation r.Gen, and none of a newer one) and takes it out of the held
// index.
func finishRelease(ctx context.Context, b buckets, order string, r reservation) error {
	var errs []error
	for _, it := range r.Items {
		if err := giveBack(ctx, b.kv, it.SKU, order, r.Gen); err != nil {
			fn.Logger(ctx).Error("stock of a released reservation not given back yet", "order", order, "sku", it.SKU, "err", err)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return unindex(ctx, b, order, r.Gen)
}

// finishCommit deletes the holds of a committed reservation (of its
// generation r.Gen) and takes it out of the held index.
func finishCommit(ctx context.Context, b buckets, order string, r reservation) error {
	var errs []error
	for _, it := range r.Items {
		if err := settleHold(ctx, b.kv, it.SKU, order, r.Gen); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return unindex(ctx, b, order, r.Gen)
}

// unindex takes the order out of the held index once generation gen of its
// reservation is settled. Should a newer generation have been made
// meanwhile (its reserve indexes it before taking anything), the entry is
// put back: the reservation is read after the delete, so a newer
// generation whose entry the delete removed is always seen.
func unindex(ctx context.Context, b buckets, order string, gen int64) error {
	if err := b.held.Delete(ctx, order); err != nil {
		return err
	}
	r, _, err := fn.GetJSON[reservation](ctx, b.kv, resKey(order))
	switch {
	case errors.Is(err, fn.ErrKeyNotFound):
		return nil
	case err != nil:
		return err
	case r.Gen != gen:
		return markHeld(ctx, b.held, order, r.CreatedAt)
	}
	return nil
}

func commit(ctx context.Context, b buckets, order string, attempt int64) (Output, error) {
	var cur reservation
	_, err := fn.UpdateJSON(ctx, b.kv, resKey(order), func(r *reservation, exists bool) error {
		if !exists {
			return fn.NotFound("no reservation for order %s", order)
		}
		cur = *r
		if r.State != stateHeld || !r.Complete {
			return errNoop
		}
		if attempt != 0 && attempt < r.Attempt {
			return staleAttempt(order, attempt, r.Attempt)
		}
		r.State, r.UpdatedAt = stateCommitted, time.Now().UTC()
		cur = *r
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errNoop) && cur.State == stateCommitted:
		if err := finishCommit(ctx, b, order, cur); err != nil {
			return Output{}, err
		}
		return Output{OrderID: order, Status: StatusCommitted}, nil
	case errors.Is(err, errNoop) && cur.State == stateReleased:
		return Output{}, fn.Errorf(fn.CodeConflict, "the reservation of order %s was released", order)
	case errors.Is(err, errNoop) && !cur.Complete:
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

// sweep looks at the reservations in the held index: it releases those
// held since before cutoff, and finishes commits and releases that were
// interrupted. It returns how many it released.
func sweep(ctx context.Context, b buckets, cutoff time.Time) (int, error) {
	orders, err := b.held.Keys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, order := range orders {
		r, _, err := fn.GetJSON[reservation](ctx, b.kv, resKey(order))
		switch {
		case errors.Is(err, fn.ErrKeyNotFound):
			errs = append(errs, unindex(ctx, b, order, 0))
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		switch r.State {
		case stateCommitted:
			errs = append(errs, finishCommit(ctx, b, order, r))
		case stateReleased:
			// Only long after the release: a reserve of the order retried
			// right now may be taking stock under the same order id.
			if r.UpdatedAt.Before(cutoff) {
				errs = append(errs, finishRelease(ctx, b, order, r))
			}
		case stateHeld:
			if !r.CreatedAt.Before(cutoff) {
				continue
			}
			released, err := release(ctx, b, order, 0, cutoff, "")
			errs = append(errs, err)
			if released {
				fn.Logger(ctx).Warn("released an expired reservation", "order", order, "created_at", r.CreatedAt)
				n++
			}
		}
	}
	errs = append(errs, settleOrphanHolds(ctx, b, cutoff))
	return n, errors.Join(errs...)
}

// settleOrphanHolds walks the holds of every stock record and settles
// those no held reservation accounts for: a process that crashed between
// a take and its bookkeeping (after a sweep had already unindexed the
// reservation) leaves one behind. A hold of a generation that was
// released before cutoff, or that a newer generation replaced, is given
// back; one of a committed generation is settled (the units stay sold).
// Holds of generations still held are left to reserve, release and
// commit.
func settleOrphanHolds(ctx context.Context, b buckets, cutoff time.Time) error {
	keys, err := b.kv.Keys(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		sku, ok := strings.CutPrefix(k, "stock.")
		if !ok {
			continue
		}
		st, _, err := fn.GetJSON[stockRecord](ctx, b.kv, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for hk := range st.Holds {
			order, gen := parseHoldKey(hk)
			r, _, err := fn.GetJSON[reservation](ctx, b.kv, resKey(order))
			switch {
			case errors.Is(err, fn.ErrKeyNotFound), err == nil && r.Gen > gen,
				err == nil && r.Gen == gen && r.State == stateReleased && r.UpdatedAt.Before(cutoff):
				fn.Logger(ctx).Warn("giving back an orphaned hold", "sku", sku, "order", order, "gen", gen)
				errs = append(errs, giveBack(ctx, b.kv, sku, order, gen))
			case err == nil && r.Gen == gen && r.State == stateCommitted:
				errs = append(errs, settleHold(ctx, b.kv, sku, order, gen))
			case err != nil:
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
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
	Buckets:     []string{Bucket, HeldBucket},
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
