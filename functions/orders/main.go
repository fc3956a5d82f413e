// Command orders places the example shop's orders. It prices the items
// with catalog, reserves them with inventory, charges the card with
// payments, and once paid publishes orders.placed (which notify consumes)
// and commits the reservation. A declined or failed payment releases the
// reservation. Orders are kept in the KV bucket shop_orders (order.<id>).
//
// Placing is idempotent per order id: an order that reached a final status
// (paid, declined, out_of_stock) is returned as it is, and an order left
// pending or failed is taken up again where it stopped, because every step
// is idempotent too: the reservation and the charge are recorded per order
// id, and the event carries the order id as its Nats-Msg-Id. When payments
// cannot answer, the caller gets unavailable (HTTP 503 with Retry-After)
// and may simply retry with the same order id.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	fn "github.com/switchyard-dev/switchyard/runtime"
)

// Bucket holds the orders.
const Bucket = "shop_orders"

// Order statuses.
const (
	StatusPending    = "pending"
	StatusPaid       = "paid"
	StatusDeclined   = "declined"
	StatusOutOfStock = "out_of_stock"
	StatusFailed     = "failed"
)

// SubjectPlaced is the event of a paid order.
const SubjectPlaced = "orders.placed"

// PlaceOrder is an order to place.
type PlaceOrder struct {
	// OrderID makes placing idempotent; a new id is generated when absent.
	OrderID  string   `json:"order_id,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	Items    []ItemIn `json:"items" jsonschema:"minItems=1,maxItems=20"`
	Card     string   `json:"card" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Email    string   `json:"email" jsonschema:"format=email,minLength=3,maxLength=254"`
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
	Status  string `json:"status" jsonschema:"enum=paid,enum=declined,enum=out_of_stock,enum=failed"`
	// Reason explains a status other than paid.
	Reason    string    `json:"reason,omitempty"`
	Total     Money     `json:"total"`
	Items     []Line    `json:"items"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
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

// record is an order as stored: the order and whom to notify.
type record struct {
	Order
	Email string `json:"email"`
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
	}
	invResult struct {
		Status string `json:"status"`
		SKU    string `json:"sku"`
	}
	chargeRequest struct {
		OrderID string `json:"order_id"`
		Card    string `json:"card"`
		Amount  Money  `json:"amount"`
	}
	chargeResult struct {
		Status   string `json:"status"`
		ChargeID string `json:"charge_id"`
		Reason   string `json:"reason"`
	}
)

func final(status string) bool {
	return status == StatusPaid || status == StatusDeclined || status == StatusOutOfStock
}

func key(id string) string { return "order." + id }

var errFinal = errors.New("order is final")

// Place places an order.
func Place(ctx context.Context, in PlaceOrder) (Order, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Order{}, err
	}
	id := in.OrderID
	if id == "" {
		id = newOrderID()
	}
	if prev, _, err := fn.GetJSON[record](ctx, kv, key(id)); err == nil && final(prev.Status) {
		return prev.Order, nil
	} else if err != nil && !errors.Is(err, fn.ErrKeyNotFound) {
		return Order{}, err
	}
	cur := in.Currency
	if cur == "" {
		cur = "EUR"
	}

	// Price every item.
	lines := make([]Line, 0, len(in.Items))
	total := Money{Currency: cur}
	for _, it := range in.Items {
		p, err := fn.Invoke[product](ctx, "catalog", lookup{SKU: it.SKU, Currency: cur, Quantity: it.Quantity})
		if err != nil {
			return Order{}, err
		}
		lines = append(lines, Line{SKU: it.SKU, Name: p.Name, Quantity: it.Quantity, UnitPrice: p.Price, LineTotal: p.LineTotal})
		total.Amount += p.LineTotal.Amount
	}

	// Record it as pending, unless a concurrent placement finished it.
	now := time.Now().UTC()
	var prev record
	_, err = fn.UpdateJSON(ctx, kv, key(id), func(r *record, exists bool) error {
		prev = *r
		if exists && final(r.Status) {
			return errFinal
		}
		created := r.CreatedAt
		if !exists {
			created = now
		}
		*r = record{Order: Order{OrderID: id, Status: StatusPending, Total: total, Items: lines,
			CreatedAt: created, UpdatedAt: now}, Email: in.Email}
		return nil
	})
	if errors.Is(err, errFinal) {
		return prev.Order, nil
	}
	if err != nil {
		return Order{}, err
	}
	// From here on the order is in flight: the steps that settle it (give
	// back the stock, publish, commit, store the final status) must not
	// depend on the caller's deadline, which may have just passed.
	sctx, cancel := settleContext(ctx)
	defer cancel()
	finish := func(status, reason string) (Order, error) {
		r, err := fn.UpdateJSON(sctx, kv, key(id), func(r *record, _ bool) error {
			r.Status, r.Reason, r.UpdatedAt = status, reason, time.Now().UTC()
			return nil
		})
		return r.Order, err
	}

	// Reserve the items.
	items := make([]invItem, len(in.Items))
	for i, it := range in.Items {
		items[i] = invItem{SKU: it.SKU, Quantity: it.Quantity}
	}
	res, err := fn.Invoke[invResult](ctx, "inventory", invRequest{Op: "reserve", OrderID: id, Items: items})
	if err != nil {
		release(sctx, id)
		if _, serr := finish(StatusFailed, "inventory unavailable: "+message(err)); serr != nil {
			fn.Logger(ctx).Error("storing failed order", "order", id, "err", serr)
		}
		return Order{}, fn.Errorf(fn.CodeUnavailable, "order %s failed: inventory unavailable: %s", id, message(err))
	}
	if res.Status == "insufficient_stock" {
		return finish(StatusOutOfStock, "insufficient stock of "+res.SKU)
	}
	if res.Status != "reserved" {
		return Order{}, fmt.Errorf("inventory answered reserve with status %q", res.Status)
	}

	// Charge the card.
	ch, err := fn.Invoke[chargeResult](ctx, "payments", chargeRequest{OrderID: id, Card: in.Card, Amount: total})
	if err != nil {
		release(sctx, id)
		if _, serr := finish(StatusFailed, "payments unavailable: "+message(err)); serr != nil {
			fn.Logger(ctx).Error("storing failed order", "order", id, "err", serr)
		}
		return Order{}, fn.Errorf(fn.CodeUnavailable, "order %s failed: payments unavailable: %s", id, message(err))
	}
	if ch.Status != "approved" {
		release(sctx, id)
		return finish(StatusDeclined, ch.Reason)
	}

	// Paid: tell the world, then keep the stock taken. Either failing
	// leaves the order pending; a retry with the same id finishes it.
	ev := OrderPlaced{OrderID: id, Email: in.Email, Total: total, Items: lines, PlacedAt: time.Now().UTC()}
	if err := fn.Publish(sctx, SubjectPlaced, ev, fn.WithEventID(id)); err != nil {
		return Order{}, fmt.Errorf("order %s is paid but %s was not published: %w", id, SubjectPlaced, err)
	}
	if _, err := fn.Invoke[invResult](sctx, "inventory", invRequest{Op: "commit", OrderID: id}); err != nil {
		var fe *fn.Error
		if errors.As(err, &fe) && fe.Code == fn.CodeConflict {
			// The reservation was released (it expired): the stock went
			// back although the order is paid. Nothing to retry.
			fn.Logger(ctx).Error("paid order's reservation was released before commit", "order", id, "err", err)
		} else {
			return Order{}, fn.Errorf(fn.CodeUnavailable, "order %s is paid but its reservation was not committed (retry): %s", id, message(err))
		}
	}
	return finish(StatusPaid, "")
}

// SettleTimeout bounds the steps that settle an order once it is in
// flight, whatever the caller's deadline.
var SettleTimeout = 10 * time.Second

// settleContext keeps the values of ctx (connection, request id, trace)
// but not its deadline.
func settleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), SettleTimeout)
}

// release gives the reservation back, best effort: should it fail,
// inventory's sweep releases it once it expires.
func release(ctx context.Context, id string) {
	if _, err := fn.Invoke[invResult](ctx, "inventory", invRequest{Op: "release", OrderID: id}); err != nil {
		fn.Logger(ctx).Warn("release failed; the sweep will release it", "order", id, "err", err)
	}
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

// Config is orders' identity; it creates the stream of order events.
var Config = fn.Config{
	Name:        "orders",
	Description: "Places orders of the example shop",
	Streams:     []fn.Stream{{Name: "SHOP_ORDERS", Subjects: []string{"orders.>"}}},
}

func main() { fn.Main(Config, fn.Handle(Place, fn.WithTimeout(10*time.Second))) }
