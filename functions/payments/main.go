// Command payments is the example shop's card processor: a deterministic
// fake, so tests and demos can rely on its answers. Card 4000000000000002
// is declined (card_declined), card 4000000000009995 is declined for
// insufficient funds, and every other card is approved.
//
// A charge is idempotent per order: the first outcome is recorded in the KV
// bucket shop_payments (charge.<order id>), and charging the same order
// again returns it without charging twice (the same order id with another
// amount or card is a conflict, 409).
//
// Operations ("op", default charge):
//
//   - charge {"order_id","card","amount","attempt"?}: charges once per order.
//   - status {"order_id","attempt"?}: the recorded outcome of the order's
//     charge (approved, declined, refunded), or "none" when nothing is
//     recorded. With an attempt (a caller's fencing token, growing with
//     every attempt at the order), "none" is binding: the order is voided
//     up to that attempt, so a charge of that or an earlier attempt that
//     arrives late is refused (409) instead of charging a customer whose
//     order its caller has already given up. A later attempt may charge.
//   - refund {"order_id"}: marks an approved charge refunded (idempotent);
//     answers the recorded status otherwise ("none" when there is none).
//
// Faults for demos and tests come from the environment, read once at start:
// PAYMENTS_DELAY (a Go duration added to every charge), PAYMENTS_FAIL_PERCENT
// (0-100: the orders whose id hashes below it fail with unavailable, always
// the same ones) and PAYMENTS_DOWN=1 (every charge and refund fails with
// unavailable; status still answers from the records).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Bucket records the outcome of every charge.
const Bucket = "shop_payments"

// Charge asks to charge a card for an order, or (with op) reads or
// refunds the charge of an order.
type Charge struct {
	// Op is charge (the default), status or refund.
	Op      string `json:"op,omitempty" jsonschema:"enum=charge,enum=status,enum=refund"`
	OrderID string `json:"order_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	// Card and Amount are required by charge.
	Card   string `json:"card,omitempty" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Amount *Money `json:"amount,omitempty"`
	// Attempt is the caller's fencing token for the order (see status).
	Attempt int64 `json:"attempt,omitempty" jsonschema:"minimum=0"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=1,maximum=100000000"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Result is the outcome of a charge.
type Result struct {
	OrderID string `json:"order_id"`
	// Status is approved or declined for a charge; status and refund may
	// also answer refunded, or none (no charge recorded).
	Status string `json:"status" jsonschema:"enum=approved,enum=declined,enum=refunded,enum=none"`
	// ChargeID identifies an approved charge.
	ChargeID string `json:"charge_id,omitempty"`
	// Reason says why a charge was declined.
	Reason string `json:"reason,omitempty" jsonschema:"enum=card_declined,enum=insufficient_funds"`
}

// Statuses and reasons of Result.
const (
	StatusApproved    = "approved"
	StatusDeclined    = "declined"
	StatusRefunded    = "refunded"
	StatusNone        = "none"
	ReasonDeclined    = "card_declined"
	ReasonNoFunds     = "insufficient_funds"
	CardDeclined      = "4000000000000002"
	CardNoFunds       = "4000000000009995"
	EnvDelay          = "PAYMENTS_DELAY"
	EnvFailPercent    = "PAYMENTS_FAIL_PERCENT"
	EnvDown           = "PAYMENTS_DOWN"
	chargeKeyPrefix   = "charge."
	cardDigitsToStore = 4
)

// Faults are the injected failures of the processor.
type Faults struct {
	Delay       time.Duration
	FailPercent int
	Down        bool
}

// faults is set once by main, before serving.
var faults Faults

// ParseFaults reads the fault settings from the environment.
func ParseFaults(getenv func(string) string) (Faults, error) {
	var f Faults
	var errs []error
	if s := getenv(EnvDelay); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a Go duration such as 200ms", EnvDelay, s))
		}
		f.Delay = d
	}
	if s := getenv(EnvFailPercent); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 100 {
			errs = append(errs, fmt.Errorf("%s=%q: want a whole number from 0 to 100", EnvFailPercent, s))
		}
		f.FailPercent = n
	}
	switch s := getenv(EnvDown); s {
	case "", "0":
	case "1":
		f.Down = true
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want 1 (down) or 0", EnvDown, s))
	}
	if err := errors.Join(errs...); err != nil {
		return Faults{}, err
	}
	return f, nil
}

// failsTransiently reports whether the fault injection fails this order:
// the same orders fail every time.
func (f Faults) failsTransiently(order string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(order))
	return int(h.Sum32()%100) < f.FailPercent
}

type record struct {
	Result
	Amount    Money     `json:"amount"`
	CardLast4 string    `json:"card_last4"`
	CreatedAt time.Time `json:"created_at"`
	// Attempt is the caller's attempt that charged.
	Attempt int64 `json:"attempt,omitempty"`
	// VoidedUpTo, on a record of status none, refuses charges of attempts
	// up to it (see status).
	VoidedUpTo int64     `json:"voided_up_to,omitempty"`
	RefundedAt time.Time `json:"refunded_at,omitzero"`
}

// Pay charges a card, once per order, or reads or refunds a charge.
func Pay(ctx context.Context, in Charge) (Result, error) {
	switch in.Op {
	case "", "charge":
	default:
		// status reads our own records: it works while the processor is
		// down; a refund needs the processor.
		if faults.Down && in.Op == "refund" {
			return Result{}, fn.Errorf(fn.CodeUnavailable, "payment processor is down")
		}
		kv, err := fn.OpenKV(ctx, Bucket)
		if err != nil {
			return Result{}, err
		}
		if in.Op == "status" {
			return status(ctx, kv, in.OrderID, in.Attempt)
		}
		return refund(ctx, kv, in.OrderID)
	}
	if in.Card == "" {
		return Result{}, fn.InvalidArgument("/card", "required to charge")
	}
	if in.Amount == nil {
		return Result{}, fn.InvalidArgument("/amount", "required to charge")
	}
	if in.Amount.Amount < 1 {
		return Result{}, fn.InvalidArgument("/amount/amount", "must be >= 1")
	}
	if faults.Delay > 0 {
		t := time.NewTimer(faults.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fn.Errorf(fn.CodeDeadlineExceeded, "payment processor did not answer in time")
		case <-t.C:
		}
	}
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Result{}, err
	}
	key := chargeKeyPrefix + in.OrderID
	prev, rev, err := fn.GetJSON[record](ctx, kv, key)
	exists := err == nil
	if exists && prev.Status != StatusNone {
		return recorded(in, prev)
	} else if err != nil && !errors.Is(err, fn.ErrKeyNotFound) {
		return Result{}, err
	}
	if exists && in.Attempt <= prev.VoidedUpTo {
		return Result{}, fn.Errorf(fn.CodeConflict,
			"the charge of order %s was voided (attempt %d); it is not made", in.OrderID, in.Attempt)
	}
	if faults.Down {
		return Result{}, fn.Errorf(fn.CodeUnavailable, "payment processor is down")
	}
	if faults.failsTransiently(in.OrderID) {
		return Result{}, fn.Errorf(fn.CodeUnavailable, "payment processor failed transiently; try again later")
	}
	res := Result{OrderID: in.OrderID, Status: StatusApproved}
	switch in.Card {
	case CardDeclined:
		res.Status, res.Reason = StatusDeclined, ReasonDeclined
	case CardNoFunds:
		res.Status, res.Reason = StatusDeclined, ReasonNoFunds
	default:
		res.ChargeID = newChargeID()
	}
	rec := record{Result: res, Amount: *in.Amount, CardLast4: last4(in.Card), CreatedAt: time.Now().UTC(), Attempt: in.Attempt}
	data, err := json.Marshal(rec)
	if err != nil {
		return Result{}, err
	}
	if exists {
		// Over the void of an earlier attempt, only if nobody wrote since.
		_, err = kv.Update(ctx, key, data, rev)
	} else {
		_, err = kv.Create(ctx, key, data)
	}
	if errors.Is(err, fn.ErrKeyExists) || errors.Is(err, fn.ErrRevisionConflict) {
		// A concurrent charge (or void) of the same order won: its outcome
		// counts.
		prev, _, err := fn.GetJSON[record](ctx, kv, key)
		if err != nil {
			return Result{}, err
		}
		if prev.Status == StatusNone {
			return Result{}, fn.Errorf(fn.CodeConflict,
				"the charge of order %s was voided concurrently; it is not made", in.OrderID)
		}
		return recorded(in, prev)
	} else if err != nil {
		return Result{}, err
	}
	fn.Logger(ctx).Info("charge", "order", in.OrderID, "status", res.Status, "reason", res.Reason,
		"amount", in.Amount.Amount, "currency", in.Amount.Currency, "attempt", in.Attempt)
	return res, nil
}

func last4(card string) string { return card[len(card)-cardDigitsToStore:] }

var errNoop = errors.New("no change")

// status answers the recorded outcome of an order's charge. When there is
// none and the caller names its attempt, it records a void up to that
// attempt, so that a late charge of it cannot land after the caller was
// told "none".
func status(ctx context.Context, kv *fn.KV, order string, attempt int64) (Result, error) {
	key := chargeKeyPrefix + order
	if attempt == 0 {
		r, _, err := fn.GetJSON[record](ctx, kv, key)
		if errors.Is(err, fn.ErrKeyNotFound) {
			return Result{OrderID: order, Status: StatusNone}, nil
		}
		return r.Result, err
	}
	r, err := fn.UpdateJSON(ctx, kv, key, func(r *record, exists bool) error {
		if exists && (r.Status != StatusNone || r.VoidedUpTo >= attempt) {
			return errNoop
		}
		*r = record{Result: Result{OrderID: order, Status: StatusNone}, CreatedAt: time.Now().UTC(), VoidedUpTo: attempt}
		return nil
	})
	if err != nil && !errors.Is(err, errNoop) {
		return Result{}, err
	}
	return r.Result, nil
}

// refund marks an approved charge refunded, once.
func refund(ctx context.Context, kv *fn.KV, order string) (Result, error) {
	key := chargeKeyPrefix + order
	r, err := fn.UpdateJSON(ctx, kv, key, func(r *record, exists bool) error {
		if !exists || r.Status != StatusApproved {
			return errNoop
		}
		r.Status, r.RefundedAt = StatusRefunded, time.Now().UTC()
		return nil
	})
	switch {
	case err == nil:
		fn.Logger(ctx).Info("refund", "order", order, "charge", r.ChargeID, "amount", r.Amount.Amount, "currency", r.Amount.Currency)
		return r.Result, nil
	case errors.Is(err, errNoop) && r.Status == "":
		return Result{OrderID: order, Status: StatusNone}, nil
	case errors.Is(err, errNoop):
		return r.Result, nil
	}
	return Result{}, err
}

// recorded answers a repeated charge of an order with its first outcome,
// or a conflict when it is a different charge under the same order id.
func recorded(in Charge, prev record) (Result, error) {
	if prev.Amount != *in.Amount || prev.CardLast4 != last4(in.Card) {
		return Result{}, fn.Errorf(fn.CodeConflict,
			"order %s was already charged with another amount or card", in.OrderID)
	}
	return prev.Result, nil
}

func newChargeID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "ch_" + hex.EncodeToString(b)
}

// Config is payments' identity.
var Config = fn.Config{
	Name:        "payments",
	Description: "Charges cards (a deterministic fake processor)",
	Buckets:     []string{Bucket},
}

func main() {
	f, err := ParseFaults(os.Getenv)
	if err != nil {
		log.Print("payments: invalid fault settings: ", err)
		os.Exit(2)
	}
	faults = f
	fn.Main(Config, fn.Handle(Pay, fn.WithTimeout(10*time.Second)))
}
