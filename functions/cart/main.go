// Command cart keeps the example shop's shopping carts, event-sourced: a
// cart is the events appended to cart.<id> in the entity stream CARTS, and
// its contents are what folding them gives. Every command goes through
// fn.Update (load, decide, append at the version loaded; on a conflict,
// load and decide again), so any number of instances may change one cart
// at once and no item is lost or counted twice. Checkout places the order
// with orders; docs/shop.md ("The cart") says how.
package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Stream is the entity stream of the carts: cart.<id> is one cart.
const Stream = "CARTS"

// Limits of a cart, as orders takes an order: at most MaxLines SKUs, at
// most MaxQuantity of each. SnapshotEvery: loads keep a snapshot of a
// cart every this many events.
const (
	MaxLines      = 20
	MaxQuantity   = 100
	SnapshotEvery = 20
)

// Cart statuses. A cart is open until a checkout starts; then it is
// checking_out, locked, until orders answers: checked_out once the order
// is paid, open again otherwise.
const (
	StatusOpen        = "open"
	StatusCheckingOut = "checking_out"
	StatusCheckedOut  = "checked_out"
)

// Reasons of the cart's conflicts (409).
const (
	ReasonCheckedOut  = "cart_checked_out"     // the cart is checked out: it changes no more
	ReasonCheckingOut = "checkout_in_progress" // a checkout holds the cart; retry it, or wait
	ReasonEmpty       = "cart_empty"           // nothing to check out
	ReasonQuantity    = "quantity_limit"       // more than MaxQuantity of one SKU
	ReasonFull        = "cart_full"            // more than MaxLines SKUs
)

// Input is one operation on a cart.
type Input struct {
	Op     string `json:"op" jsonschema:"enum=add,enum=remove,enum=get,enum=checkout"`
	CartID string `json:"cart_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,47}$"`
	// SKU is required by add and remove (which takes the whole line out).
	SKU string `json:"sku,omitempty" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$"`
	// Quantity is how many add puts in; default 1.
	Quantity int `json:"quantity,omitempty" jsonschema:"minimum=1,maximum=100,default=1"`
	// Card and Email are required by checkout, Currency optional: they go
	// to orders with the cart's items.
	Card     string `json:"card,omitempty" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Email    string `json:"email,omitempty" jsonschema:"format=email,minLength=3,maxLength=254"`
	Currency string `json:"currency,omitempty" jsonschema:"enum=EUR,enum=USD,enum=GBP,default=EUR"`
}

// Cart is a cart as its events tell it.
type Cart struct {
	CartID string `json:"cart_id"`
	Status string `json:"status" jsonschema:"enum=open,enum=checking_out,enum=checked_out"`
	Items  []Item `json:"items"`
	// Version is the stream sequence of the cart's last event; 0: the cart
	// has no events (an empty cart).
	Version uint64 `json:"version" jsonschema:"minimum=0"`
	// Checkout is the last checkout: in progress, paid, or why it did not
	// place the order.
	Checkout *Checkout `json:"checkout,omitempty"`
}

// Item is a quantity of one SKU.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity" jsonschema:"minimum=1,maximum=100"`
}

// Checkout is a checkout of the cart: the order it places, cart-<cart>-<n>
// for the cart's nth checkout, and how it went.
type Checkout struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status" jsonschema:"enum=pending,enum=paid,enum=declined,enum=out_of_stock,enum=failed"`
	Reason  string `json:"reason,omitempty"`
	Total   *Money `json:"total,omitempty"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=0"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// The cart's events. Their Go type names are their type names in the
// stream (Yard-Event-Type): rename one and the events already written no
// longer fold.
type (
	// ItemAdded puts Quantity more of SKU in the cart.
	ItemAdded struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity" jsonschema:"minimum=1"`
	}
	// ItemRemoved takes SKU out of the cart.
	ItemRemoved struct {
		SKU string `json:"sku"`
	}
	// CheckoutStarted locks the cart while its order is placed.
	CheckoutStarted struct {
		OrderID string `json:"order_id"`
	}
	// CheckedOut: the order is paid; the cart changes no more.
	CheckedOut struct {
		OrderID string `json:"order_id"`
		Total   Money  `json:"total"`
	}
	// CheckoutFailed: the order was not placed (declined, out of stock,
	// failed without a charge); the cart is open again.
	CheckoutFailed struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
		Reason  string `json:"reason,omitempty"`
	}
)

// state is a cart folded from its events; snapshots store it.
type state struct {
	Status    string    `json:"status"`
	Items     []Item    `json:"items"` // in the order first added
	Checkout  *Checkout `json:"checkout,omitempty"`
	Checkouts int       `json:"checkouts"` // checkouts started: numbers the order ids
}

// fold applies one event to a cart. It takes the events as facts: the
// rules are decide's, before they are appended.
func fold(s state, ev fn.Event) (state, error) {
	if s.Status == "" {
		s.Status = StatusOpen
	}
	if e, ok := fn.EventAs[ItemAdded](ev); ok {
		if k := s.line(e.SKU); k >= 0 {
			s.Items[k].Quantity += e.Quantity
		} else {
			s.Items = append(s.Items, Item{SKU: e.SKU, Quantity: e.Quantity})
		}
	} else if e, ok := fn.EventAs[ItemRemoved](ev); ok {
		s.Items = slices.DeleteFunc(s.Items, func(it Item) bool { return it.SKU == e.SKU })
	} else if e, ok := fn.EventAs[CheckoutStarted](ev); ok {
		s.Status, s.Checkouts = StatusCheckingOut, s.Checkouts+1
		s.Checkout = &Checkout{OrderID: e.OrderID, Status: "pending"}
	} else if e, ok := fn.EventAs[CheckedOut](ev); ok {
		total := e.Total
		s.Status, s.Checkout = StatusCheckedOut, &Checkout{OrderID: e.OrderID, Status: "paid", Total: &total}
	} else if e, ok := fn.EventAs[CheckoutFailed](ev); ok {
		s.Status, s.Checkout = StatusOpen, &Checkout{OrderID: e.OrderID, Status: e.Status, Reason: e.Reason}
	} else {
		// A type this version does not know, or data it cannot read: the
		// cart cannot be told, so nothing is decided on it.
		return s, fmt.Errorf("cart %s: event %d (%q) cannot be read", ev.Subject, ev.Seq, ev.Type)
	}
	return s, nil
}

func (s state) line(sku string) int {
	return slices.IndexFunc(s.Items, func(it Item) bool { return it.SKU == sku })
}

func subject(cart string) string { return "cart." + cart }

// orderID names the nth checkout's order. Cart ids hold no dots and the
// counter no dashes, so no two carts' orders share an id.
func orderID(cart string, n int) string { return "cart-" + cart + "-" + strconv.Itoa(n) }

func view(id string, s state, version uint64) Cart {
	items := slices.Clone(s.Items)
	if items == nil {
		items = []Item{}
	}
	if s.Status == "" {
		s.Status = StatusOpen
	}
	return Cart{CartID: id, Status: s.Status, Items: items, Version: version, Checkout: s.Checkout}
}

// Handle runs one operation on a cart.
func Handle(ctx context.Context, in Input) (Cart, error) {
	switch in.Op {
	case "get":
		s, v, err := fn.Load(ctx, subject(in.CartID), fold, fn.Snapshot(SnapshotEvery))
		if err != nil {
			return Cart{}, err
		}
		return view(in.CartID, s, v), nil
	case "add", "remove":
		if in.SKU == "" {
			return Cart{}, fn.InvalidArgument("/sku", "required to "+in.Op+" an item")
		}
		return change(ctx, in)
	case "checkout":
		switch {
		case in.Card == "":
			return Cart{}, fn.InvalidArgument("/card", "required to check out")
		case in.Email == "":
			return Cart{}, fn.InvalidArgument("/email", "required to check out")
		}
		return checkout(ctx, in)
	}
	return Cart{}, fn.InvalidArgument("/op", "unknown operation "+strconv.Quote(in.Op))
}

// change adds or removes an item. decide runs again each time another
// writer appended to the cart between its load and its append; the
// conflicts are logged, so contention on a cart shows.
func change(ctx context.Context, in Input) (Cart, error) {
	decisions := 0
	s, v, err := fn.Update(ctx, subject(in.CartID), fold, func(s state) (any, error) {
		decisions++
		if err := changeable(in.CartID, s); err != nil {
			return nil, err
		}
		k := s.line(in.SKU)
		if in.Op == "remove" {
			if k < 0 {
				return nil, nil // not in the cart: nothing to do
			}
			return ItemRemoved{SKU: in.SKU}, nil
		}
		qty, have := max(in.Quantity, 1), 0
		if k >= 0 {
			have = s.Items[k].Quantity
		}
		switch {
		case have+qty > MaxQuantity:
			return nil, fn.WithReason(fn.Errorf(fn.CodeConflict, "cart %s holds %d of %s: at most %d fit", in.CartID, have, in.SKU, MaxQuantity), ReasonQuantity)
		case k < 0 && len(s.Items) >= MaxLines:
			return nil, fn.WithReason(fn.Errorf(fn.CodeConflict, "cart %s holds %d products, the most an order takes", in.CartID, MaxLines), ReasonFull)
		}
		return ItemAdded{SKU: in.SKU, Quantity: qty}, nil
	}, fn.Snapshot(SnapshotEvery))
	if decisions > 1 {
		fn.Logger(ctx).Info("cart changed meanwhile; decided again", "cart", in.CartID, "op", in.Op, "conflicts", decisions-1)
	}
	if err != nil {
		return Cart{}, err
	}
	return view(in.CartID, s, v), nil
}

// changeable refuses to change a cart that a checkout holds or closed.
func changeable(id string, s state) error {
	switch s.Status {
	case StatusCheckedOut:
		return fn.WithReason(fn.Errorf(fn.CodeConflict, "cart %s is checked out (order %s)", id, s.Checkout.OrderID), ReasonCheckedOut)
	case StatusCheckingOut:
		return fn.WithReason(fn.Errorf(fn.CodeConflict, "cart %s is being checked out (order %s); check out again to finish it", id, s.Checkout.OrderID), ReasonCheckingOut)
	}
	return nil
}

// The contract of orders, as far as cart uses it.
type (
	placeOrder struct {
		OrderID  string   `json:"order_id"`
		Items    []itemIn `json:"items"`
		Card     string   `json:"card"`
		Email    string   `json:"email"`
		Currency string   `json:"currency,omitempty"`
	}
	itemIn struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	order struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Total   Money  `json:"total"`
	}
)

// What cart reads of orders' answers.
const (
	orderPaid     = "paid"
	orderFailed   = "order_failed"
	orderMismatch = "order_mismatch"
)

// checkout locks the cart (CheckoutStarted), places its order, and records
// the outcome: CheckedOut once paid, CheckoutFailed when the card is
// certainly not charged. When orders cannot tell (the order is pending,
// or orders did not answer), the cart stays locked and the error is
// returned: checking out again places the same order again, which orders
// makes idempotent, and finishes it.
func checkout(ctx context.Context, in Input) (Cart, error) {
	subj := subject(in.CartID)
	s, v, err := fn.Update(ctx, subj, fold, func(s state) (any, error) {
		switch {
		case s.Status == StatusCheckedOut, s.Status == StatusCheckingOut:
			return nil, nil // answered, or resumed, as it is
		case len(s.Items) == 0:
			return nil, fn.WithReason(fn.Errorf(fn.CodeConflict, "cart %s is empty", in.CartID), ReasonEmpty)
		}
		return CheckoutStarted{OrderID: orderID(in.CartID, s.Checkouts+1)}, nil
	}, fn.Snapshot(SnapshotEvery))
	if err != nil {
		return Cart{}, err
	}
	if s.Status == StatusCheckedOut {
		return view(in.CartID, s, v), nil
	}
	id := s.Checkout.OrderID
	items := make([]itemIn, len(s.Items))
	for k, it := range s.Items {
		items[k] = itemIn(it)
	}
	o, err := fn.Invoke[order](ctx, "orders", placeOrder{OrderID: id, Items: items, Card: in.Card, Email: in.Email, Currency: in.Currency})
	var outcome any
	switch {
	case err == nil && o.Status == orderPaid:
		outcome = CheckedOut{OrderID: id, Total: o.Total}
	case err == nil:
		outcome = CheckoutFailed{OrderID: id, Status: o.Status, Reason: o.Reason}
	case fn.ReasonOf(err) == orderFailed:
		// Not charged: the cart opens again, and the next checkout places
		// a new order.
		outcome = CheckoutFailed{OrderID: id, Status: "failed", Reason: message(err)}
	case fn.ReasonOf(err) == orderMismatch:
		return Cart{}, fn.WithReason(fn.Errorf(fn.CodeConflict,
			"cart %s's checkout (order %s) was started with another card or email: check out with those to finish it", in.CartID, id), ReasonCheckingOut)
	default:
		return Cart{}, err
	}
	s, v, uerr := fn.Update(ctx, subj, fold, func(s state) (any, error) {
		if s.Status != StatusCheckingOut || s.Checkout.OrderID != id {
			return nil, nil // another attempt at this checkout recorded it
		}
		return outcome, nil
	}, fn.Snapshot(SnapshotEvery))
	if uerr != nil {
		return Cart{}, uerr
	}
	if err != nil {
		return Cart{}, err
	}
	return view(in.CartID, s, v), nil
}

// message is what the caller may see of a called function's error.
func message(err error) string {
	var fe *fn.Error
	if errors.As(err, &fe) {
		return fe.Message
	}
	return "unexpected error"
}

// Config is cart's identity: it appends to the CARTS entity stream and
// calls orders at checkout.
var Config = fn.Config{
	Name:        "cart",
	Description: "Keeps the example shop's shopping carts (event-sourced)",
	Calls:       []string{"orders"},
	Streams: []fn.Stream{{Name: Stream, Subjects: []string{"cart.>"}, Entity: true, EventTypes: []fn.EventType{
		fn.EventOf[ItemAdded](), fn.EventOf[ItemRemoved](), fn.EventOf[CheckoutStarted](),
		fn.EventOf[CheckedOut](), fn.EventOf[CheckoutFailed](),
	}}},
}

func main() { fn.Main(Config, fn.Handle(Handle, fn.WithTimeout(20*time.Second))) }
