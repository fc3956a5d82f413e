// Command orders places the example shop's orders. It prices the items
// with catalog, reserves them with inventory, charges the card with
// payments, and once paid commits the reservation and publishes
// orders.placed (which notify consumes). A declined or failed payment
// releases the reservation. Orders are kept in the KV bucket shop_orders
// (order.<id>).
//
// Placing is idempotent per order id: an order that reached a final status
// (paid, declined, out_of_stock) is returned as it is, and an order left
// pending or failed is taken up again where it stopped. Placing an id again
// with another body (items, card, email, currency) answers 409 conflict.
//
// Attempts. Each attempt at an order claims it with a revision-checked
// write that stores an attempt number (one more than the last) and a lease
// (Lease, a little over the settle timeout). While the lease is live a
// second attempt at the same id (a client retrying after a timeout) answers
// 409 conflict "order <id> is being placed; retry later" and touches
// nothing. The attempt number travels to inventory and payments as a
// fencing token, so a slow earlier attempt cannot release or commit a newer
// one's reservation, nor charge after a newer attempt was told there is no
// charge. Every write of the order's status is conditional: it never
// overwrites a final status, and only the lease owner writes.
//
// Payments. A clear answer (approved, declined, 409 conflict: the id was
// charged with another amount or card, passed on as 409) is acted on. When
// payments certainly was not reached (circuit open, no instance) the stock
// is released and the order fails with 503. Any other error (a timeout,
// unavailable, internal) may hide a charge, so orders asks payments for the
// order's charge ({"op":"status"}): approved goes on to paid, declined
// ends declined, none (which also voids late charges of this attempt)
// releases and fails with 503; if that cannot be asked either, the order
// stays pending with its stock held, the caller gets 503, and a retry or
// the reconcile schedule finishes it. A retry checks the recorded charge
// before charging; if the stock has run out meanwhile but a charge exists,
// the charge is refunded and the order ends out_of_stock with reason
// "refunded".
//
// Reserving fails. A first attempt at an order (nothing can be charged yet)
// fails it with 503 when inventory cannot reserve. An attempt that may find
// a charge (a retry, reconcile, or an attempt that charged and must reserve
// again) fails the order only when payments says no charge exists (the
// binding status); a charge, or a status that cannot be asked, leaves the
// order pending with 503 "retry later", and a retry or reconcile finishes it
// (paid, or out_of_stock with the charge refunded). So an order never ends
// failed while its card is charged.
//
// Reconcile. {"op":"reconcile"}, scheduled every minute, finishes the
// orders left pending with an expired lease (a crash, or payments that
// could not be asked): charge recorded → commit, publish, paid; no charge →
// release, failed. Pending orders are indexed in the KV bucket
// shop_orders_pending (one key per order) so reconcile reads only those.
// Its answer is {"status":"reconciled","reconciled":<orders finished>,…}.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Bucket holds the orders.
const Bucket = "shop_orders"

// PendingBucket indexes the orders that may be pending (one key per order
// id), for reconcile.
const PendingBucket = "shop_orders_pending"

// Order statuses.
const (
	StatusPending    = "pending"
	StatusPaid       = "paid"
	StatusDeclined   = "declined"
	StatusOutOfStock = "out_of_stock"
	StatusFailed     = "failed"
	// StatusReconciled is the answer of {"op":"reconcile"}.
	StatusReconciled = "reconciled"
)

// ReasonRefunded is the reason of an order that ended out of stock after
// its card was charged: the charge was refunded.
const ReasonRefunded = "refunded"

// SubjectPlaced is the event of a paid order.
const SubjectPlaced = "orders.placed"

// PlaceOrder is an order to place. Items, card and email are required to
// place; {"op":"reconcile"} takes nothing else.
type PlaceOrder struct {
	// Op is place (the default) or reconcile.
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

// record is an order as stored: the order, whom to notify, and who is
// placing it.
type record struct {
	Order
	Email string `json:"email"`
	// BodyHash identifies the request that placed it (items, card, email,
	// currency): the id with another body is a conflict.
	BodyHash string `json:"body_hash,omitempty"`
	// Attempt numbers the attempts at the order; the last one owns it.
	Attempt int64 `json:"attempt,omitempty"`
	// LeaseUntil is when the owning attempt is presumed gone.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// The contracts of the functions orders calls, as far as it uses them.
type (
	lookup struct {
		SKU      string `json:"sku"`
		Currency string `json:"currency"`
		Quantity int    `json:"quantity"`
	}
	product struct {
		SKU       string `json:"sku"`
		Name      string `json:"name"`
		Price     Money  `json:"price"`
		LineTotal Money  `json:"line_total"`
	}
	invItem struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	invRequest struct {
		Op      string    `json:"op"`
		OrderID string    `json:"order_id"`
		Items   []invItem `json:"items,omitempty"`
		Attempt int64     `json:"attempt,omitempty"`
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

// Statuses of payments' answers.
const (
	payApproved = "approved"
	payDeclined = "declined"
	payRefunded = "refunded"
	payNone     = "none"
)

func final(status string) bool {
	return status == StatusPaid || status == StatusDeclined || status == StatusOutOfStock
}

func key(id string) string { return "order." + id }

var (
	errFinal     = errors.New("order is final")
	errBusy      = errors.New("order is being placed")
	errOtherBody = errors.New("order placed with another body")
	errMoved     = errors.New("another attempt took the attempt number")
	errNotOwner  = errors.New("not the owner of the order")
)

func busy(id string) error {
	return fn.Errorf(fn.CodeConflict, "order %s is being placed; retry later", id)
}

func otherBody(id string) error {
	return fn.Errorf(fn.CodeConflict, "order %s was placed with another body (items, card, email or currency)", id)
}

// bodyHash identifies a placing request.
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

// Place places an order, or with {"op":"reconcile"} finishes the orders
// left pending.
func Place(ctx context.Context, in PlaceOrder) (Order, error) {
	if in.Op == "reconcile" {
		n, err := Reconcile(ctx, time.Now())
		return Order{Status: StatusReconciled, Total: Money{Currency: "EUR"}, Items: []Line{}, Reconciled: n}, err
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
	id := in.OrderID
	if id == "" {
		id = newOrderID()
	}
	cur := in.Currency
	if cur == "" {
		cur = "EUR"
	}
	hash := bodyHash(in, cur)
	prev, _, err := fn.GetJSON[record](ctx, kv, key(id))
	exists := err == nil
	if err != nil && !errors.Is(err, fn.ErrKeyNotFound) {
		return Order{}, err
	}
	if exists {
		if err := claimable(&prev, hash, time.Now()); err != nil {
			return notClaimed(id, prev, err)
		}
	}

	// Price every item, unless an earlier attempt with this body did.
	var lines []Line
	var total Money
	if exists && prev.BodyHash == hash && len(prev.Items) > 0 {
		lines, total = prev.Items, prev.Total
	} else {
		lines = make([]Line, 0, len(in.Items))
		total = Money{Currency: cur}
		for _, it := range in.Items {
			p, err := fn.Invoke[product](ctx, "catalog", lookup{SKU: it.SKU, Currency: cur, Quantity: it.Quantity})
			if err != nil {
				return Order{}, err
			}
			lines = append(lines, Line{SKU: it.SKU, Name: p.Name, Quantity: it.Quantity, UnitPrice: p.Price, LineTotal: p.LineTotal})
			total.Amount += p.LineTotal.Amount
		}
	}

	// Index it under the attempt it expects to be (so reconcile finds it
	// should this attempt die), then claim it, unless a concurrent attempt
	// owns or finished it.
	// The claim only takes the attempt number it indexed; when another
	// attempt took that number first, index the next one and try again, so
	// a claimed attempt always has its index entry.
	expect := int64(1)
	if exists {
		expect = prev.Attempt + 1
	}
	var (
		claimed record
		before  record
		existed bool
	)
	for try := 0; ; try++ {
		if err := indexPending(ctx, idx, id, expect); err != nil {
			return Order{}, err
		}
		now := time.Now().UTC()
		var seen int64
		claimed, err = fn.UpdateJSON(ctx, kv, key(id), func(r *record, exists bool) error {
			before, existed = *r, exists
			if exists {
				if err := claimable(r, hash, now); err != nil {
					return err
				}
			}
			if r.Attempt+1 != expect {
				seen = r.Attempt
				return errMoved
			}
			created := r.CreatedAt
			if !exists {
				created = now
			}
			*r = record{Order: Order{OrderID: id, Status: StatusPending, Total: total, Items: lines,
				CreatedAt: created, UpdatedAt: now}, Email: in.Email, BodyHash: hash,
				Attempt: expect, LeaseUntil: now.Add(Lease)}
			return nil
		})
		if errors.Is(err, errMoved) && try < 5 {
			expect = seen + 1
			continue
		}
		break
	}
	if err != nil {
		return notClaimed(id, before, err)
	}
	a := newAttempt(ctx, kv, idx, claimed)
	defer a.cancel()
	a.mayBeCharged = existed
	return a.place(in.Card, existed)
}

// openBuckets opens the orders and their pending index.
func openBuckets(ctx context.Context) (kv, idx *fn.KV, err error) {
	if kv, err = fn.OpenKV(ctx, Bucket); err != nil {
		return nil, nil, err
	}
	if idx, err = fn.OpenKV(ctx, PendingBucket); err != nil {
		return nil, nil, err
	}
	return kv, idx, nil
}

// claimable says why an attempt may not claim the stored order r:
// errOtherBody, errFinal or errBusy; nil when it may.
func claimable(r *record, hash string, now time.Time) error {
	switch {
	case r.BodyHash != "" && r.BodyHash != hash:
		return errOtherBody
	case final(r.Status):
		return errFinal
	case r.Status == StatusPending && now.Before(r.LeaseUntil):
		return errBusy
	}
	return nil
}

// notClaimed is Place's answer when it could not claim the order: err is
// why, r the order as the attempt found it.
func notClaimed(id string, r record, err error) (Order, error) {
	switch {
	case errors.Is(err, errFinal):
		return r.Order, nil
	case errors.Is(err, errBusy), errors.Is(err, errMoved):
		return Order{}, busy(id)
	case errors.Is(err, errOtherBody):
		return Order{}, otherBody(id)
	}
	return Order{}, err
}

// The pending index has one key per attempt, <order id>.<attempt>, so an
// attempt that settles removes its own entry and never that of a newer
// attempt of the same order.
func indexKey(id string, attempt int64) string { return id + "." + strconv.FormatInt(attempt, 10) }

// parseIndexKey splits an index key; ok is false for anything else.
func parseIndexKey(k string) (id string, attempt int64, ok bool) {
	i := strings.LastIndexByte(k, '.')
	if i < 1 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(k[i+1:], 10, 64)
	return k[:i], n, err == nil
}

func indexPending(ctx context.Context, idx *fn.KV, id string, attempt int64) error {
	_, err := idx.Put(ctx, indexKey(id, attempt), []byte(fmt.Sprintf(`{"at":%q}`, time.Now().UTC().Format(time.RFC3339Nano))))
	return err
}

// Lease is how long an attempt owns an order: the settle timeout and a
// margin. Another attempt (or reconcile) may take it over after that.
var Lease = SettleTimeout + 2*time.Second

// SettleTimeout bounds the steps that settle an order once it is in
// flight, whatever the caller's deadline.
var SettleTimeout = 10 * time.Second

// attempt is one claimed attempt at an order.
type attempt struct {
	ctx    context.Context // the caller's
	sctx   context.Context // settling: the caller's values, not its deadline
	cancel context.CancelFunc
	kv     *fn.KV
	idx    *fn.KV
	rec    record
	id     string
	gen    int64
	// mayBeCharged: an earlier attempt (this one is a retry or reconcile)
	// or this one may have charged the card, so a failure to reserve must
	// not fail the order unless payments says there is no charge.
	mayBeCharged bool
}

func newAttempt(ctx context.Context, kv, idx *fn.KV, rec record) *attempt {
	// From here on the order is in flight: the steps that settle it (give
	// back the stock, publish, commit, store the final status) must not
	// depend on the caller's deadline, which may have just passed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SettleTimeout)
	return &attempt{ctx: ctx, sctx: sctx, cancel: cancel, kv: kv, idx: idx, rec: rec, id: rec.OrderID, gen: rec.Attempt}
}

// place runs a claimed attempt. retry: the order existed (failed, or
// pending with an expired lease), so a charge may exist.
func (a *attempt) place(card string, retry bool) (Order, error) {
	res, o, ok, err := a.reserve()
	if !ok {
		return o, err
	}
	if res.Status == "insufficient_stock" {
		if retry {
			return a.outOfStockAfterRetry(res.SKU)
		}
		return a.finish(StatusOutOfStock, "insufficient stock of "+res.SKU)
	}

	charged := false
	if retry {
		// Only a look: this attempt may still charge.
		st, err := a.lookupCharge()
		if err != nil {
			return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
				"order %s is pending: its earlier charge could not be checked (%s); retry later", a.id, message(err)))
		}
		switch st.Status {
		case payApproved:
			charged = true
		case payDeclined, payRefunded:
			a.release()
			return a.finish(uncharged(st))
		}
	}
	if !charged {
		amount := a.rec.Total
		ch, err := fn.Invoke[chargeResult](a.ctx, "payments", chargeRequest{OrderID: a.id, Card: card, Amount: &amount, Attempt: a.gen})
		switch {
		case err == nil && ch.Status == payApproved:
		case err == nil:
			a.release()
			return a.finish(StatusDeclined, ch.Reason)
		case hasCode(err, fn.CodeConflict):
			// The id was charged with another amount or card (or this
			// attempt was voided by a newer one: then inventory refuses the
			// release and the status write is not ours).
			a.release()
			return a.fail("payments refused the charge: "+message(err),
				fn.Errorf(fn.CodeConflict, "order %s failed: payments refused the charge: %s", a.id, message(err)))
		case notReached(err):
			a.release()
			return a.fail("payments unavailable: "+message(err),
				fn.Errorf(fn.CodeUnavailable, "order %s failed: payments unavailable: %s", a.id, message(err)))
		default:
			// The charge may have been made: ask.
			st, serr := a.chargeStatus()
			if serr != nil {
				return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
					"order %s is pending: payments did not answer (%s) and the charge could not be checked (%s); retry later",
					a.id, message(err), message(serr)))
			}
			switch st.Status {
			case payApproved:
			case payDeclined, payRefunded:
				a.release()
				return a.finish(uncharged(st))
			default: // none, and no charge of this attempt can land any more
				a.release()
				return a.fail("payments unavailable: "+message(err),
					fn.Errorf(fn.CodeUnavailable, "order %s failed: payments unavailable: %s", a.id, message(err)))
			}
		}
	}
	return a.paid()
}

// reserve reserves the order's items. ok is false when the attempt is
// over: (o, err) is its answer, and the failure has been dealt with (the
// order is failed or finished, left pending, or owned by another attempt).
func (a *attempt) reserve() (res invResult, o Order, ok bool, err error) {
	items := make([]invItem, len(a.rec.Items))
	for i, l := range a.rec.Items {
		items[i] = invItem{SKU: l.SKU, Quantity: l.Quantity}
	}
	res, err = fn.Invoke[invResult](a.ctx, "inventory", invRequest{Op: "reserve", OrderID: a.id, Items: items, Attempt: a.gen})
	switch {
	case err == nil && (res.Status == "reserved" || res.Status == "insufficient_stock"):
		return res, Order{}, true, nil
	case err == nil && res.Status == "released":
		// Released while it was being made (the sweep, or a release by
		// hand): nothing is held.
		o, err := a.reserveFailed(false, "the reservation was released while it was made",
			fn.Errorf(fn.CodeUnavailable, "order %s failed: its reservation was released while it was made; retry", a.id))
		return res, o, false, err
	case err == nil:
		return res, Order{}, false, fmt.Errorf("inventory answered reserve with status %q", res.Status)
	case hasCode(err, fn.CodeConflict):
		// A newer attempt holds the reservation: it is not ours to touch.
		return res, Order{}, false, busy(a.id)
	case stillBeingMade(err):
		// Another attempt's reservation is being made: leave it alone.
		return res, Order{}, false, a.leavePending(busy(a.id))
	default:
		// When inventory never saw the call (not reached) this attempt took
		// nothing; else whatever it took is given back (the attempt fences
		// off anybody else's reservation).
		o, err := a.reserveFailed(!notReached(err), "inventory unavailable: "+message(err),
			fn.Errorf(fn.CodeUnavailable, "order %s failed: inventory unavailable: %s", a.id, message(err)))
		return res, o, false, err
	}
}

// reserveFailed ends an attempt whose reserve failed; release: this
// attempt may have taken stock. A first attempt that has not charged
// fails the order. An attempt that may have a charge (a retry, reconcile,
// or one that charged) fails it only when payments says no charge exists
// (binding: no later charge of this or an earlier attempt can land); a
// charge, or a status that cannot be had, leaves the order pending for a
// retry or reconcile to finish, and the caller gets 503 "retry later".
func (a *attempt) reserveFailed(release bool, reason string, failure error) (Order, error) {
	if !a.mayBeCharged {
		if release {
			a.release()
		}
		return a.fail(reason, failure)
	}
	st, err := a.chargeStatus()
	if err != nil {
		return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
			"order %s is pending: %s, and its charge could not be checked (%s); retry later", a.id, reason, message(err)))
	}
	switch st.Status {
	case payNone:
		if release {
			a.release()
		}
		return a.fail(reason, failure)
	case payDeclined, payRefunded:
		if release {
			a.release()
		}
		return a.finish(uncharged(st))
	case payApproved:
		return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
			"order %s is pending: its card is charged, but %s; retry later", a.id, reason))
	}
	return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
		"order %s is pending: %s, and payments answered status %q for its charge; retry later", a.id, reason, st.Status))
}

// uncharged is how an order ends whose charge payments declined, or
// refunded (then its stock had run out).
func uncharged(st chargeResult) (status, reason string) {
	if st.Status == payRefunded {
		return StatusOutOfStock, ReasonRefunded
	}
	return StatusDeclined, st.Reason
}

// outOfStockAfterRetry ends an order whose stock ran out on a retry: a
// charge an earlier attempt made is refunded.
func (a *attempt) outOfStockAfterRetry(sku string) (Order, error) {
	st, err := a.chargeStatus()
	if err != nil {
		return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
			"order %s is pending: out of stock, but its earlier charge could not be checked (%s); retry later", a.id, message(err)))
	}
	switch st.Status {
	case payApproved:
		if _, err := fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "refund", OrderID: a.id}); err != nil {
			return Order{}, a.leavePending(fn.Errorf(fn.CodeUnavailable,
				"order %s is pending: out of stock, and the refund failed (%s); retry later", a.id, message(err)))
		}
		return a.finish(StatusOutOfStock, ReasonRefunded)
	case payRefunded:
		return a.finish(StatusOutOfStock, ReasonRefunded)
	}
	return a.finish(StatusOutOfStock, "insufficient stock of "+sku)
}

// paid keeps the stock taken, tells the world and stores the order paid.
// A failing step leaves the order pending; a retry or reconcile finishes
// it.
func (a *attempt) paid() (Order, error) {
	err := a.commit()
	switch {
	case err == nil:
	case hasCode(err, fn.CodeConflict) && strings.Contains(message(err), "was released"):
		// The reservation was released (it expired) although the order is
		// paid: take the stock again, or refund.
		fn.Logger(a.ctx).Warn("paid order's reservation was released before commit; reserving again", "order", a.id)
		a.mayBeCharged = true
		res, o, ok, err := a.reserve()
		if !ok {
			return o, err
		}
		if res.Status == "insufficient_stock" {
			return a.outOfStockAfterRetry(res.SKU)
		}
		if err := a.commit(); err != nil {
			return Order{}, a.notCommitted(err)
		}
	case hasCode(err, fn.CodeConflict):
		return Order{}, busy(a.id)
	default:
		return Order{}, a.notCommitted(err)
	}
	ev := OrderPlaced{OrderID: a.id, Email: a.rec.Email, Total: a.rec.Total, Items: a.rec.Items, PlacedAt: time.Now().UTC()}
	if err := fn.Publish(a.sctx, SubjectPlaced, ev, fn.WithEventID(a.id)); err != nil {
		return Order{}, a.leavePending(fmt.Errorf("order %s is paid but %s was not published: %w", a.id, SubjectPlaced, err))
	}
	return a.finish(StatusPaid, "")
}

// commit keeps the stock this attempt reserved.
func (a *attempt) commit() error {
	_, err := fn.Invoke[invResult](a.sctx, "inventory", invRequest{Op: "commit", OrderID: a.id, Attempt: a.gen})
	return err
}

// notCommitted leaves a paid order whose commit failed pending, for a
// retry or reconcile to finish.
func (a *attempt) notCommitted(err error) error {
	return a.leavePending(fn.Errorf(fn.CodeUnavailable,
		"order %s is paid but its reservation was not committed (retry): %s", a.id, message(err)))
}

// finish stores the outcome, only as the owner of the order and never
// over a final status. Should another attempt have finished it, its
// outcome is returned.
func (a *attempt) finish(status, reason string) (Order, error) {
	var cur record
	r, err := fn.UpdateJSON(a.sctx, a.kv, key(a.id), func(r *record, exists bool) error {
		cur = *r
		if !exists || final(r.Status) || r.Attempt != a.gen {
			return errNotOwner
		}
		r.Status, r.Reason, r.UpdatedAt, r.LeaseUntil = status, reason, time.Now().UTC(), time.Time{}
		return nil
	})
	switch {
	case errors.Is(err, errNotOwner) && final(cur.Status):
		return cur.Order, nil
	case errors.Is(err, errNotOwner):
		return Order{}, busy(a.id)
	case err != nil:
		return Order{}, err
	}
	if err := a.idx.Delete(a.sctx, indexKey(a.id, a.gen)); err != nil {
		fn.Logger(a.ctx).Warn("order settled but still indexed as pending", "order", a.id, "err", err)
	}
	return r.Order, nil
}

// fail stores the order failed and returns failure (or the outcome another
// attempt reached).
func (a *attempt) fail(reason string, failure error) (Order, error) {
	o, err := a.finish(StatusFailed, reason)
	if err != nil {
		fn.Logger(a.ctx).Error("storing failed order", "order", a.id, "err", err)
		return Order{}, failure
	}
	if o.Status != StatusFailed {
		return o, nil
	}
	return Order{}, failure
}

// leavePending gives up the lease and leaves the order pending, for a
// retry or reconcile to finish; it returns failure.
func (a *attempt) leavePending(failure error) error {
	_, err := fn.UpdateJSON(a.sctx, a.kv, key(a.id), func(r *record, exists bool) error {
		if !exists || r.Status != StatusPending || r.Attempt != a.gen {
			return errNotOwner
		}
		r.LeaseUntil, r.UpdatedAt = time.Now().UTC(), time.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errNotOwner) {
		fn.Logger(a.ctx).Warn("could not give up the lease of a pending order", "order", a.id, "err", err)
	}
	return failure
}

// release gives this attempt's reservation back, best effort: should it
// fail, inventory's sweep releases it once it expires. Inventory refuses
// it if a newer attempt holds the reservation.
func (a *attempt) release() {
	if _, err := fn.Invoke[invResult](a.sctx, "inventory", invRequest{Op: "release", OrderID: a.id, Attempt: a.gen}); err != nil {
		fn.Logger(a.ctx).Warn("release failed; the sweep will release it", "order", a.id, "err", err)
	}
}

// lookupCharge reads the order's recorded charge without voiding
// anything.
func (a *attempt) lookupCharge() (chargeResult, error) {
	return fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "status", OrderID: a.id})
}

// chargeStatus asks payments for the order's recorded charge. "none" is
// binding: payments refuses any later charge of this or an earlier
// attempt.
func (a *attempt) chargeStatus() (chargeResult, error) {
	return fn.Invoke[chargeResult](a.sctx, "payments", chargeRequest{Op: "status", OrderID: a.id, Attempt: a.gen})
}

// Reconcile finishes the orders left pending whose lease expired before
// now, and returns how many it finished.
func Reconcile(ctx context.Context, now time.Time) (int, error) {
	kv, idx, err := openBuckets(ctx)
	if err != nil {
		return 0, err
	}
	keys, err := idx.Keys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, k := range keys {
		if ctx.Err() != nil {
			break // the next tick goes on
		}
		id, attempt, ok := parseIndexKey(k)
		if !ok {
			_ = idx.Delete(ctx, k)
			continue
		}
		done, err := reconcileOne(ctx, kv, idx, id, attempt, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("order %s: %w", id, err))
		}
		if done {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func reconcileOne(ctx context.Context, kv, idx *fn.KV, id string, attempt int64, now time.Time) (bool, error) {
	ik := indexKey(id, attempt)
	rec, _, err := fn.GetJSON[record](ctx, kv, key(id))
	switch {
	case errors.Is(err, fn.ErrKeyNotFound), err == nil && rec.Attempt < attempt:
		// Indexed by an attempt about to claim it, or one that never did.
		var at struct {
			At time.Time `json:"at"`
		}
		// Only the entry as read: an attempt that wrote it again since
		// (and is about to claim) keeps it.
		if data, rev, err := idx.Get(ctx, ik); err == nil && json.Unmarshal(data, &at) == nil && now.Sub(at.At) > Lease {
			if err := idx.DeleteRevision(ctx, ik, rev); err != nil && !errors.Is(err, fn.ErrRevisionConflict) {
				return false, err
			}
		}
		return false, nil
	case err != nil:
		return false, err
	case rec.Status != StatusPending:
		return false, idx.Delete(ctx, ik)
	case now.Before(rec.LeaseUntil):
		return false, nil
	}
	claimed, err := fn.UpdateJSON(ctx, kv, key(id), func(r *record, exists bool) error {
		if !exists || r.Status != StatusPending || now.Before(r.LeaseUntil) {
			return errBusy
		}
		r.Attempt++
		// The lease runs from the claim, not from the start of this
		// reconcile run (which may have been going for a while).
		claimedAt := time.Now().UTC()
		from := claimedAt
		if now.After(from) {
			from = now
		}
		r.LeaseUntil, r.UpdatedAt = from.Add(Lease), claimedAt
		return nil
	})
	if errors.Is(err, errBusy) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// The order is this reconcile's attempt now: index it as such, and
	// drop the entry of the attempt that gave up.
	if err := indexPending(ctx, idx, id, claimed.Attempt); err != nil {
		return false, err
	}
	if attempt != claimed.Attempt {
		_ = idx.Delete(ctx, ik)
	}
	a := newAttempt(ctx, kv, idx, claimed)
	defer a.cancel()
	a.mayBeCharged = true
	o, err := a.reconcile()
	if err != nil {
		return false, err
	}
	fn.Logger(ctx).Warn("reconciled a pending order", "order", id, "status", o.Status, "reason", o.Reason)
	return true, nil
}

// reconcile finishes a pending order it claimed: it never charges.
func (a *attempt) reconcile() (Order, error) {
	st, err := a.chargeStatus()
	if err != nil {
		return Order{}, a.leavePending(fmt.Errorf("charge not checked: %w", err))
	}
	switch st.Status {
	case payApproved:
	case payDeclined, payRefunded:
		a.release()
		return a.finish(uncharged(st))
	default:
		a.release()
		return a.finish(StatusFailed, "abandoned before it was charged")
	}
	// Charged: make sure the stock is held (reserving is idempotent), then
	// finish as paid.
	res, o, ok, err := a.reserve()
	if !ok {
		return o, err
	}
	if res.Status == "insufficient_stock" {
		return a.outOfStockAfterRetry(res.SKU)
	}
	return a.paid()
}

// notReached reports an error of a call that certainly did not reach the
// function: its circuit is open, or no instance runs.
func notReached(err error) bool { return fn.NotDelivered(err) }

// stillBeingMade reports inventory's answer to a reserve that meets
// another attempt's reservation in the making.
func stillBeingMade(err error) bool {
	var fe *fn.Error
	return errors.As(err, &fe) && fe.Code == fn.CodeUnavailable && strings.Contains(fe.Message, "still being made")
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

// Config is orders' identity; it creates the stream of order events and
// reconciles pending orders every minute.
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
