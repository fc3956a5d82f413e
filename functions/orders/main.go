// Command orders places the example shop's orders: it prices the items
// with catalog, reserves them with inventory, charges the card with
// payments, and once paid commits the reservation and publishes
// orders.placed. Placing is idempotent per order id, and an order is never
// left failed while its card is charged; docs/shop.md ("How it stays
// consistent") says how.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Bucket holds the orders (order.<id>), PendingBucket the ids of those that
// may be left pending, for Reconcile. SubjectPlaced is the event of a paid
// order.
const (
	Bucket        = "shop_orders"
	PendingBucket = "shop_orders_pending"
	SubjectPlaced = "orders.placed"
)

// Order statuses; StatusReconciled answers {"op":"reconcile"}.
const (
	StatusPending    = "pending"
	StatusPaid       = "paid"
	StatusDeclined   = "declined"
	StatusOutOfStock = "out_of_stock"
	StatusFailed     = "failed"
	StatusReconciled = "reconciled"
)

// ReasonRefunded: out of stock after the card was charged, and refunded.
// The others are the reasons of orders' errors.
const (
	ReasonRefunded   = "refunded"
	ReasonInProgress = "order_in_progress" // 409: another attempt is placing it
	ReasonMismatch   = "order_mismatch"    // 409: the id was placed with another body
	ReasonPending    = "order_pending"     // 503: left pending; retry later
	ReasonFailed     = "order_failed"      // placing it again retries
)

// PlaceOrder is an order to place; {"op":"reconcile"} takes nothing else.
type PlaceOrder struct {
	Op string `json:"op,omitempty" jsonschema:"enum=place,enum=reconcile"`
	// OrderID makes placing idempotent; a new id is generated when absent.
	OrderID  string   `json:"order_id,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	Items    []ItemIn `json:"items,omitempty" jsonschema:"minItems=1,maxItems=20"`
	Card     string   `json:"card,omitempty" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Email    string   `json:"email,omitempty" jsonschema:"format=email,minLength=3,maxLength=254"`
	Currency string   `json:"currency,omitempty" jsonschema:"enum=EUR,enum=USD,enum=GBP,default=EUR"`
}

// ItemIn is a quantity of one product.
type ItemIn struct {
	SKU      string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	Quantity int    `json:"quantity" jsonschema:"minimum=1,maximum=100"`
}

// Order is the order as placed.
type Order struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status" jsonschema:"enum=paid,enum=declined,enum=out_of_stock,enum=failed,enum=reconciled"`
	// Reason explains a status other than paid.
	Reason    string    `json:"reason,omitempty"`
	Total     Money     `json:"total"`
	Items     []Line    `json:"items"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Reconciled counts the orders a reconcile finished.
	Reconciled int `json:"reconciled,omitempty" jsonschema:"minimum=0"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=0"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Line is one priced item of an order.
type Line struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity" jsonschema:"minimum=1"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

// OrderPlaced is the event published on orders.placed.
type OrderPlaced struct {
	OrderID  string    `json:"order_id"`
	Email    string    `json:"email"`
	Total    Money     `json:"total"`
	Items    []Line    `json:"items"`
	PlacedAt time.Time `json:"placed_at"`
}

// record is an order as stored. Its lease is held by the attempt placing
// it; the lease's token numbers the attempts and fences them off each other
// at inventory and payments.
type record struct {
	Order
	Email    string `json:"email"`
	BodyHash string `json:"body_hash,omitempty"`
	fn.Lease
}

// The contracts of the functions orders calls, as far as it uses them.
type (
	lookup struct {
		SKU      string `json:"sku"`
		Currency string `json:"currency"`
		Quantity int    `json:"quantity"`
	}
	product struct {
		Name      string `json:"name"`
		Price     Money  `json:"price"`
		LineTotal Money  `json:"line_total"`
	}
	invRequest struct {
		Op      string   `json:"op"`
		OrderID string   `json:"order_id"`
		Items   []ItemIn `json:"items,omitempty"`
		Attempt int64    `json:"attempt,omitempty"`
	}
	invResult struct {
		Status string `json:"status"`
		SKU    string `json:"sku"`
	}
	chargeRequest struct {
		Op      string `json:"op,omitempty"`
		OrderID string `json:"order_id"`
		Card    string `json:"card,omitempty"`
		Amount  *Money `json:"amount,omitempty"`
		Attempt int64  `json:"attempt,omitempty"`
	}
	chargeResult struct {
		Status   string `json:"status"`
		ChargeID string `json:"charge_id"`
		Reason   string `json:"reason"`
	}
)

// What orders reads of inventory's and payments' answers.
const (
	invReserved = "reserved"
	invShort    = "insufficient_stock"
	invStale    = "stale_attempt"
	invReleased = "reservation_released"
	payApproved = "approved"
	payRefunded = "refunded"
	payNone     = "none"
	payMismatch = "charge_mismatch"
)

// SettleTimeout bounds the steps that settle an order in flight, whatever
// the caller's deadline; Lease, how long an attempt owns an order, adds a
// margin. Another attempt, or reconcile, may take it over after that.
var (
	SettleTimeout = 10 * time.Second
	Lease         = SettleTimeout + 2*time.Second
)

var (
	errFinal     = errors.New("order is final")
	errOtherBody = errors.New("order placed with another body")
)

func key(id string) string { return "order." + id }

func final(status string) bool {
	return status == StatusPaid || status == StatusDeclined || status == StatusOutOfStock
}

// Place places an order, or with {"op":"reconcile"} finishes the orders
// left pending.
func Place(ctx context.Context, in PlaceOrder) (Order, error) {
	if in.Op == "reconcile" {
		// Orders still pending wait for the next run: a failed run would
		// only be retried and dead-lettered while payments is down.
		n, err := Reconcile(ctx)
		if err != nil {
			fn.Logger(ctx).Warn("orders still pending after reconcile", "err", err)
		}
		return Order{Status: StatusReconciled, Total: Money{Currency: "EUR"}, Items: []Line{}, Reconciled: n}, nil
	}
	switch {
	case len(in.Items) == 0:
		return Order{}, fn.InvalidArgument("/items", "required to place an order")
	case in.Card == "":
		return Order{}, fn.InvalidArgument("/card", "required to place an order")
	case in.Email == "":
		return Order{}, fn.InvalidArgument("/email", "required to place an order")
	}
	kv, idx, err := openBuckets(ctx)
	if err != nil {
		return Order{}, err
	}
	id, cur := cmp.Or(in.OrderID, newOrderID()), cmp.Or(in.Currency, "EUR")
	hash := bodyHash(in, cur)
	prev, _, err := fn.GetJSON[record](ctx, kv, key(id))
	if err == nil {
		err = claimable(&prev, hash)
		if err == nil && prev.Live(time.Now()) {
			err = fn.ErrLeaseHeld
		}
	}
	if err != nil && !errors.Is(err, fn.ErrKeyNotFound) {
		return notClaimed(id, prev, err)
	}
	lines, total := prev.Items, prev.Total
	if len(lines) == 0 {
		if lines, total, err = price(ctx, in.Items, cur); err != nil {
			return Order{}, err
		}
	}
	// Indexed before it is claimed: reconcile finds it should this attempt die.
	if err := indexPending(ctx, idx, id); err != nil {
		return Order{}, err
	}
	existed := false
	rec, err := fn.TakeLease(ctx, kv, key(id), Lease, func(r *record, exists bool) error {
		if exists {
			if err := claimable(r, hash); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		existed, r.CreatedAt = exists, cmp.Or(r.CreatedAt, now)
		if exists && len(r.Items) > 0 {
			// Priced once: every attempt charges what the first stored.
			lines, total = r.Items, r.Total
		}
		r.Order = Order{OrderID: id, Status: StatusPending, Total: total, Items: lines, CreatedAt: r.CreatedAt, UpdatedAt: now}
		r.Email, r.BodyHash = in.Email, hash
		return nil
	})
	if err != nil {
		return notClaimed(id, rec, err)
	}
	a := newAttempt(ctx, kv, idx, rec, existed)
	defer a.cancel()
	return a.place(in.Card)
}

func openBuckets(ctx context.Context) (kv, idx *fn.KV, err error) {
	if kv, err = fn.OpenKV(ctx, Bucket); err != nil {
		return nil, nil, err
	}
	idx, err = fn.OpenKV(ctx, PendingBucket)
	return kv, idx, err
}

// bodyHash identifies a placing request: the same id with another body is
// a conflict.
func bodyHash(in PlaceOrder, currency string) string {
	data, _ := json.Marshal(struct {
		Items    []ItemIn `json:"items"`
		Card     string   `json:"card"`
		Email    string   `json:"email"`
		Currency string   `json:"currency"`
	}{in.Items, in.Card, in.Email, currency})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// claimable says why an attempt may not claim the stored order r.
func claimable(r *record, hash string) error {
	switch {
	case r.BodyHash != hash:
		return errOtherBody
	case final(r.Status):
		return errFinal
	}
	return nil
}

// notClaimed answers an attempt that could not claim the order r.
func notClaimed(id string, r record, err error) (Order, error) {
	switch {
	case errors.Is(err, errFinal):
		return r.Order, nil
	case errors.Is(err, fn.ErrLeaseHeld):
		return Order{}, busy(id)
	case errors.Is(err, errOtherBody):
		return Order{}, fn.WithReason(fn.Errorf(fn.CodeConflict,
			"order %s was placed with another body (items, card, email or currency)", id), ReasonMismatch)
	}
	return Order{}, err
}

func busy(id string) error {
	return fn.WithReason(fn.Errorf(fn.CodeConflict, "order %s is being placed; retry later", id), ReasonInProgress)
}

func price(ctx context.Context, items []ItemIn, cur string) ([]Line, Money, error) {
	lines, total := make([]Line, 0, len(items)), Money{Currency: cur}
	for _, it := range items {
		p, err := fn.Invoke[product](ctx, "catalog", lookup{SKU: it.SKU, Currency: cur, Quantity: it.Quantity})
		if err != nil {
			return nil, Money{}, err
		}
		lines = append(lines, Line{SKU: it.SKU, Name: p.Name, Quantity: it.Quantity, UnitPrice: p.Price, LineTotal: p.LineTotal})
		total.Amount += p.LineTotal.Amount
	}
	return lines, total, nil
}

// indexPending notes that order id may be left pending. The entry goes
// when the order is final; a failed order may be retried by an attempt
// that indexed it already, so reconcile drops its entry later (dropStale).
func indexPending(ctx context.Context, idx *fn.KV, id string) error {
	_, err := idx.Put(ctx, id, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	return err
}

// attempt is one claimed attempt at an order.
type attempt struct {
	ctx, sctx context.Context // the caller's; settling (without its deadline)
	cancel    context.CancelFunc
	kv, idx   *fn.KV
	rec       record
	id        string
	token     int64 // the lease's, sent to inventory and payments as the attempt
	// mayBeCharged: an earlier attempt, or this one, may have charged the
	// card, so the order may fail only once payments says it is not.
	mayBeCharged bool
}

func newAttempt(ctx context.Context, kv, idx *fn.KV, rec record, retry bool) *attempt {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SettleTimeout)
	return &attempt{ctx: ctx, sctx: sctx, cancel: cancel, kv: kv, idx: idx, rec: rec, id: rec.OrderID,
		token: rec.Token, mayBeCharged: retry}
}

func (a *attempt) place(card string) (Order, error) {
	if o, done, err := a.reserve(); done {
		return o, err
	}
	amount := a.rec.Total
	ch, err := fn.Invoke[chargeResult](a.ctx, "payments", chargeRequest{OrderID: a.id, Card: card, Amount: &amount, Attempt: a.token})
	switch {
	case err == nil && ch.Status == payApproved:
	case err == nil:
		a.release()
		return a.finish(uncharged(ch))
	case hasCode(err, fn.CodeConflict) && fn.ReasonOf(err) == payMismatch:
		// The card is charged, with another amount or card: give it back
		// before the order fails.
		if _, rerr := fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "refund", OrderID: a.id}); rerr != nil {
			return Order{}, a.leavePending("payments holds another charge for it, and its refund failed (" + message(rerr) + ")")
		}
		a.release()
		return a.fail(fn.CodeConflict, "payments held another charge for it, now refunded: "+message(err))
	case hasCode(err, fn.CodeConflict):
		// Voided by a newer attempt, which then owns the order and the
		// reservation.
		a.release()
		return a.fail(fn.CodeConflict, "payments refused the charge: "+message(err))
	case fn.NotDelivered(err) && !a.mayBeCharged:
		a.release()
		return a.fail(fn.CodeUnavailable, "payments unavailable: "+message(err))
	default:
		// The charge may have been made: payments decides.
		if o, charged, err := a.unlessCharged("payments unavailable: " + message(err)); !charged {
			return o, err
		}
	}
	return a.paid()
}

// reserve holds the order's items; done: the attempt ended, with (o, err).
func (a *attempt) reserve() (o Order, done bool, err error) {
	items := make([]ItemIn, len(a.rec.Items))
	for i, l := range a.rec.Items {
		items[i] = ItemIn{SKU: l.SKU, Quantity: l.Quantity}
	}
	res, err := fn.Invoke[invResult](a.ctx, "inventory", invRequest{Op: "reserve", OrderID: a.id, Items: items, Attempt: a.token})
	switch {
	case err == nil && res.Status == invReserved:
		return Order{}, false, nil
	case err == nil && res.Status == invShort:
		o, err = a.outOfStock(res.SKU)
	case err == nil:
		o, err = a.reserveFailed("its reservation was " + res.Status + " while it was made")
	case fn.ReasonOf(err) == invStale:
		err = busy(a.id)
	default:
		o, err = a.reserveFailed("inventory unavailable: " + message(err))
	}
	return o, true, err
}

// reserveFailed ends an attempt that could not reserve: the order fails,
// unless its card may be charged and payments does not say it is not.
func (a *attempt) reserveFailed(why string) (Order, error) {
	if !a.mayBeCharged {
		a.release()
		return a.fail(fn.CodeUnavailable, why)
	}
	o, charged, err := a.unlessCharged(why)
	if charged {
		return Order{}, a.leavePending("its card is charged, but " + why)
	}
	return o, err
}

// unlessCharged asks payments for the order's charge, bindingly: after
// "none" no charge of this attempt or an earlier one can land. Unless the
// card is charged it ends the attempt: declined or refunded as payments
// says, failed (why) without a charge, left pending when payments cannot
// tell.
func (a *attempt) unlessCharged(why string) (o Order, charged bool, err error) {
	st, err := a.chargeStatus()
	switch {
	case err != nil:
		return Order{}, false, a.leavePending(fmt.Sprintf("%s, and its charge could not be checked (%s)", why, message(err)))
	case st.Status == payApproved:
		return Order{}, true, nil
	}
	a.release()
	if st.Status == payNone {
		o, err = a.fail(fn.CodeUnavailable, why)
	} else {
		o, err = a.finish(uncharged(st))
	}
	return o, false, err
}

// outOfStock ends an order whose stock ran out; a charge an earlier
// attempt made is refunded.
func (a *attempt) outOfStock(sku string) (Order, error) {
	reason := "insufficient stock of " + sku
	if !a.mayBeCharged {
		return a.finish(StatusOutOfStock, reason)
	}
	st, err := a.chargeStatus()
	if err != nil {
		return Order{}, a.leavePending("out of stock, but its charge could not be checked (" + message(err) + ")")
	}
	switch st.Status {
	case payApproved:
		if _, err := fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "refund", OrderID: a.id}); err != nil {
			return Order{}, a.leavePending("out of stock, and the refund failed (" + message(err) + ")")
		}
		reason = ReasonRefunded
	case payRefunded:
		reason = ReasonRefunded
	}
	return a.finish(StatusOutOfStock, reason)
}

// uncharged is how an order ends whose charge was declined, or refunded.
func uncharged(st chargeResult) (status, reason string) {
	if st.Status == payRefunded {
		return StatusOutOfStock, ReasonRefunded
	}
	return StatusDeclined, st.Reason
}

// paid keeps the stock, publishes the event and stores the order paid. A
// step that fails leaves the order pending, for a retry or reconcile.
func (a *attempt) paid() (Order, error) {
	err := a.commit()
	if fn.ReasonOf(err) == invReleased {
		// The reservation expired before the commit: hold the stock again,
		// or refund.
		a.mayBeCharged = true
		if o, done, err := a.reserve(); done {
			return o, err
		}
		err = a.commit()
	}
	switch {
	case fn.ReasonOf(err) == invStale:
		return Order{}, busy(a.id)
	case err != nil:
		return Order{}, a.leavePending("it is paid, but its reservation was not committed: " + message(err))
	}
	ev := OrderPlaced{OrderID: a.id, Email: a.rec.Email, Total: a.rec.Total, Items: a.rec.Items, PlacedAt: time.Now().UTC()}
	if err := fn.Publish(a.sctx, SubjectPlaced, ev, fn.WithEventID(a.id)); err != nil {
		fn.Logger(a.ctx).Error("publishing a paid order", "order", a.id, "err", err)
		return Order{}, a.leavePending("it is paid, but " + SubjectPlaced + " was not published")
	}
	return a.finish(StatusPaid, "")
}

// finish stores the outcome, as the owner of the order. Should another
// attempt have taken it over, its outcome is returned once it has one.
func (a *attempt) finish(status, reason string) (Order, error) {
	r, err := fn.UpdateLeased(a.sctx, a.kv, key(a.id), a.token, func(r *record) error {
		r.Status, r.Reason, r.UpdatedAt = status, reason, time.Now().UTC()
		r.End()
		return nil
	})
	switch {
	case errors.Is(err, fn.ErrLeaseLost) && final(r.Status):
		return r.Order, nil
	case errors.Is(err, fn.ErrLeaseLost):
		return Order{}, busy(a.id)
	case err != nil:
		return Order{}, err
	}
	if final(status) {
		if err := a.idx.Delete(a.sctx, a.id); err != nil {
			fn.Logger(a.ctx).Warn("order settled but still indexed as pending", "order", a.id, "err", err)
		}
	}
	return r.Order, nil
}

// fail stores the order failed (why) and returns it with the error code
// tells, or the outcome another attempt reached.
func (a *attempt) fail(code fn.Code, why string) (Order, error) {
	failure := fn.WithReason(fn.Errorf(code, "order %s failed: %s", a.id, why), ReasonFailed)
	o, err := a.finish(StatusFailed, why)
	switch {
	case err != nil:
		fn.Logger(a.ctx).Error("storing a failed order", "order", a.id, "err", err)
		return Order{}, failure
	case o.Status != StatusFailed:
		return o, nil
	}
	return o, failure
}

// leavePending hands the order back, pending, for a retry or reconcile to
// finish, and returns the error that says so.
func (a *attempt) leavePending(why string) error {
	_, err := fn.UpdateLeased(a.sctx, a.kv, key(a.id), a.token, func(r *record) error {
		r.UpdatedAt = time.Now().UTC()
		r.End()
		return nil
	})
	if err != nil && !errors.Is(err, fn.ErrLeaseLost) {
		fn.Logger(a.ctx).Warn("could not hand back a pending order", "order", a.id, "err", err)
	}
	return fn.WithReason(fn.Errorf(fn.CodeUnavailable, "order %s is pending: %s; retry later", a.id, why), ReasonPending)
}

// release gives the reservation back, best effort: should it fail,
// inventory's sweep releases it once it expires.
func (a *attempt) release() {
	if _, err := fn.Invoke[invResult](a.sctx, "inventory", invRequest{Op: "release", OrderID: a.id, Attempt: a.token}); err != nil {
		fn.Logger(a.ctx).Warn("release failed; the sweep will release it", "order", a.id, "err", err)
	}
}

func (a *attempt) commit() error {
	_, err := fn.Invoke[invResult](a.sctx, "inventory", invRequest{Op: "commit", OrderID: a.id, Attempt: a.token})
	return err
}

// chargeStatus asks payments for the order's charge; "none" is binding
// (see unlessCharged).
func (a *attempt) chargeStatus() (chargeResult, error) {
	return fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "status", OrderID: a.id, Attempt: a.token})
}

// Reconcile finishes the orders left pending whose lease ended, and
// returns how many it finished.
func Reconcile(ctx context.Context) (int, error) {
	kv, idx, err := openBuckets(ctx)
	if err != nil {
		return 0, err
	}
	ids, err := idx.Keys(ctx)
	if err != nil {
		return 0, err
	}
	// A different order each run, so one slow order cannot starve the rest.
	mrand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	n := 0
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			break // the next run goes on
		}
		done, err := reconcileOne(ctx, kv, idx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("order %s: %w", id, err))
		}
		if done {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func reconcileOne(ctx context.Context, kv, idx *fn.KV, id string) (bool, error) {
	rec, _, err := fn.GetJSON[record](ctx, kv, key(id))
	switch {
	case errors.Is(err, fn.ErrKeyNotFound), err == nil && rec.Status != StatusPending:
		return false, dropStale(ctx, idx, id)
	case err != nil || rec.Live(time.Now()):
		return false, err
	}
	rec, err = fn.TakeLease(ctx, kv, key(id), Lease, func(r *record, exists bool) error {
		if !exists || r.Status != StatusPending {
			return errFinal
		}
		return nil
	})
	if errors.Is(err, errFinal) || errors.Is(err, fn.ErrLeaseHeld) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a := newAttempt(ctx, kv, idx, rec, true)
	defer a.cancel()
	// Reconcile never charges: without a charge the order fails; with one
	// its stock is held (reserving is idempotent) and it is paid.
	o, charged, err := a.unlessCharged("abandoned before it was charged")
	if charged {
		var done bool
		if o, done, err = a.reserve(); !done {
			o, err = a.paid()
		}
	}
	if o.Status == "" || o.Status == StatusPending {
		return false, err
	}
	fn.Logger(ctx).Warn("reconciled a pending order", "order", id, "status", o.Status, "reason", o.Reason)
	return true, nil
}

// dropStale deletes the index entry of an order that is not pending, once
// it is older than any claim can be late (an attempt writes it just before
// claiming), and only as read: not one an attempt wrote since.
func dropStale(ctx context.Context, idx *fn.KV, id string) error {
	data, rev, err := idx.Get(ctx, id)
	if errors.Is(err, fn.ErrKeyNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if at, err := time.Parse(time.RFC3339Nano, string(data)); err == nil && time.Since(at) <= Lease {
		return nil
	}
	if err := idx.DeleteRevision(ctx, id, rev); err != nil && !errors.Is(err, fn.ErrRevisionConflict) {
		return err
	}
	return nil
}

func hasCode(err error, code fn.Code) bool {
	var fe *fn.Error
	return errors.As(err, &fe) && fe.Code == code
}

// message is what the caller may see of a called function's error.
func message(err error) string {
	var fe *fn.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return "unexpected error"
}

func newOrderID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "ord-" + hex.EncodeToString(b)
}

// Config is orders' identity; it reconciles pending orders every minute.
var Config = fn.Config{
	Name:        "orders",
	Description: "Places orders of the example shop",
	Calls:       []string{"catalog", "inventory", "payments"},
	Publishes:   []string{SubjectPlaced},
	Buckets:     []string{Bucket, PendingBucket},
	Streams:     []fn.Stream{{Name: "SHOP_ORDERS", Subjects: []string{"orders.>"}}},
	Schedules:   []fn.Schedule{{Cron: "@every 1m", Input: map[string]any{"op": "reconcile"}}},
}

func main() { fn.Main(Config, fn.Handle(Place, fn.WithTimeout(10*time.Second))) }
