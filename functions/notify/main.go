// Command notify tells customers that their order is paid: it consumes
// orders.placed (at least once) and records at most one notification per
// order in the KV bucket shop_notifications, so a redelivered event sends
// nothing. Invoked, it returns the notification of an order.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Bucket holds one notification per order.
const Bucket = "shop_notifications"

// OrderPlaced is the event orders publishes on orders.placed once an order
// is paid.
type OrderPlaced struct {
	OrderID  string    `json:"order_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	Email    string    `json:"email" jsonschema:"format=email"`
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
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity" jsonschema:"minimum=1"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

// Query asks for the notification of an order.
type Query struct {
	OrderID string `json:"order_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
}

// Notification is what the customer was told.
type Notification struct {
	OrderID string    `json:"order_id"`
	Email   string    `json:"email"`
	Message string    `json:"message"`
	SentAt  time.Time `json:"sent_at"`
}

func key(order string) string { return "notification." + order }

// FormatMoney writes 1250 EUR as "12.50 EUR".
func FormatMoney(m Money) string {
	return fmt.Sprintf("%d.%02d %s", m.Amount/100, m.Amount%100, m.Currency)
}

// OnPlaced sends the notification of a paid order, once.
func OnPlaced(ctx context.Context, ev OrderPlaced) error {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return err
	}
	n := Notification{OrderID: ev.OrderID, Email: ev.Email,
		Message: fmt.Sprintf("Order %s is paid: %s", ev.OrderID, FormatMoney(ev.Total)), SentAt: time.Now().UTC()}
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = kv.Create(ctx, key(ev.OrderID), data)
	if errors.Is(err, fn.ErrKeyExists) {
		fn.Logger(ctx).Info("already notified", "order", ev.OrderID)
		return nil
	}
	if err != nil {
		return err
	}
	// A real shop would send the e-mail here; the record is the message.
	fn.Logger(ctx).Info("notified", "order", ev.OrderID, "email", ev.Email)
	return nil
}

// Get returns the notification of an order.
func Get(ctx context.Context, q Query) (Notification, error) {
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Notification{}, err
	}
	n, _, err := fn.GetJSON[Notification](ctx, kv, key(q.OrderID))
	if errors.Is(err, fn.ErrKeyNotFound) {
		return Notification{}, fn.NotFound("no notification for order %s", q.OrderID)
	}
	return n, err
}

// Config is notify's identity: it follows orders.placed.
var Config = fn.Config{
	Name:        "notify",
	Description: "Notifies customers of paid orders",
	Buckets:     []string{Bucket},
	Events:      []fn.Subscription{fn.On("orders.placed", OnPlaced)},
	Streams:     []fn.Stream{{Name: "SHOP_ORDERS", Subjects: []string{"orders.>"}}},
}

func main() { fn.Main(Config, fn.Handle(Get)) }
