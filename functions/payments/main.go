// Command payments is the example shop's card processor: a deterministic
// fake. Card 4000000000000002 is declined (card_declined), card
// 4000000000009995 for insufficient funds, any other card is approved.
// Each order is charged at most once: the outcome is kept in the KV bucket
// shop_payments (charge.<order id>). Faults for demos and tests come from
// the environment (see ParseFaults).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// Charge charges a card for an order (op charge, the default), reads the
// order's charge (status) or refunds it (refund).
type Charge struct {
	Op      string `json:"op,omitempty" jsonschema:"enum=charge,enum=status,enum=refund"`
	OrderID string `json:"order_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	// Card and Amount are required by charge.
	Card   string `json:"card,omitempty" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Amount *Money `json:"amount,omitempty"`
	// Attempt is the caller's fencing token for the order: a status asked
	// with it that answers none refuses every later charge of that attempt
	// or an earlier one.
	Attempt int64 `json:"attempt,omitempty" jsonschema:"minimum=0"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=1,maximum=100000000"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Result is the outcome of the order's charge.
type Result struct {
	OrderID  string `json:"order_id"`
	Status   string `json:"status" jsonschema:"enum=approved,enum=declined,enum=refunded,enum=none"`
	ChargeID string `json:"charge_id,omitempty"`
	// Reason says why a charge was declined.
	Reason string `json:"reason,omitempty" jsonschema:"enum=card_declined,enum=insufficient_funds"`
}

// Statuses, decline reasons, test cards, fault settings, and the reasons
// of payments' conflicts (409).
const (
	StatusApproved = "approved"
	StatusDeclined = "declined"
	StatusRefunded = "refunded"
	StatusNone     = "none"
	ReasonDeclined = "card_declined"
	ReasonNoFunds  = "insufficient_funds"
	CardDeclined   = "4000000000000002"
	CardNoFunds    = "4000000000009995"
	EnvDelay       = "PAYMENTS_DELAY"
	EnvFailPercent = "PAYMENTS_FAIL_PERCENT"
	EnvDown        = "PAYMENTS_DOWN"
	ReasonMismatch = "charge_mismatch" // charged with another amount or card
	ReasonVoided   = "charge_voided"   // voided by a status of a later attempt
)

// Faults are the processor's injected failures: Delay before every charge,
// FailPercent of the orders (the same ones every time, by a hash of the
// order id) failing with unavailable, and Down failing every charge and
// refund (status still answers).
type Faults struct {
	Delay       time.Duration
	FailPercent int
	Down        bool
}

// faults is set once by main, before serving.
var faults Faults

// ParseFaults reads PAYMENTS_DELAY (a Go duration), PAYMENTS_FAIL_PERCENT
// (0-100) and PAYMENTS_DOWN (1 or 0).
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
	return f, errors.Join(errs...)
}

func (f Faults) failsTransiently(order string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(order))
	return int(h.Sum32()%100) < f.FailPercent
}

// record is charge.<order id>. Status none (with VoidedUpTo) records a
// status that found no charge.
type record struct {
	Result
	Amount     Money     `json:"amount"`
	CardLast4  string    `json:"card_last4"`
	CreatedAt  time.Time `json:"created_at"`
	Attempt    int64     `json:"attempt,omitempty"`
	VoidedUpTo int64     `json:"voided_up_to,omitempty"`
	RefundedAt time.Time `json:"refunded_at,omitzero"`
}

func key(order string) string { return "charge." + order }

var errNoop = errors.New("no change")

func unavailable(format string, args ...any) error {
	return fn.Errorf(fn.CodeUnavailable, format, args...)
}

// Pay runs one operation.
func Pay(ctx context.Context, in Charge) (Result, error) {
	if in.Op == "refund" && faults.Down {
		return Result{}, unavailable("payment processor is down")
	}
	kv, err := fn.OpenKV(ctx, Bucket)
	if err != nil {
		return Result{}, err
	}
	switch in.Op {
	case "status":
		return status(ctx, kv, in.OrderID, in.Attempt)
	case "refund":
		return refund(ctx, kv, in.OrderID)
	}
	return chargeCard(ctx, kv, in)
}

// chargeCard charges the order once: a repeated charge answers the recorded
// outcome, whatever the faults.
func chargeCard(ctx context.Context, kv *fn.KV, in Charge) (Result, error) {
	switch {
	case in.Card == "":
		return Result{}, fn.InvalidArgument("/card", "required to charge")
	case in.Amount == nil:
		return Result{}, fn.InvalidArgument("/amount", "required to charge")
	}
	if faults.Delay > 0 {
		select {
		case <-ctx.Done():
			return Result{}, fn.Errorf(fn.CodeDeadlineExceeded, "payment processor did not answer in time")
		case <-time.After(faults.Delay):
		}
	}
	r, err := fn.UpdateJSON(ctx, kv, key(in.OrderID), func(r *record, exists bool) error {
		switch {
		case exists && r.Status != StatusNone:
			return errNoop
		case exists && in.Attempt <= r.VoidedUpTo:
			return fn.WithReason(fn.Errorf(fn.CodeConflict,
				"the charge of order %s was voided (attempt %d); it is not made", in.OrderID, in.Attempt), ReasonVoided)
		case faults.Down:
			return unavailable("payment processor is down")
		case faults.failsTransiently(in.OrderID):
			return unavailable("payment processor failed transiently; try again later")
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
		*r = record{Result: res, Amount: *in.Amount, CardLast4: last4(in.Card), CreatedAt: time.Now().UTC(), Attempt: in.Attempt}
		return nil
	})
	if errors.Is(err, errNoop) {
		if r.Amount != *in.Amount || r.CardLast4 != last4(in.Card) {
			return Result{}, fn.WithReason(fn.Errorf(fn.CodeConflict,
				"order %s was already charged with another amount or card", in.OrderID), ReasonMismatch)
		}
		return r.Result, nil
	}
	if err != nil {
		return Result{}, err
	}
	fn.Logger(ctx).Info("charge", "order", in.OrderID, "status", r.Status, "reason", r.Reason,
		"amount", in.Amount.Amount, "currency", in.Amount.Currency, "attempt", in.Attempt)
	return r.Result, nil
}

func last4(card string) string { return card[len(card)-4:] }

// status answers the recorded outcome of an order's charge. Asked with an
// attempt and finding none, it voids the charges of attempts up to it, so
// that none lands after the caller was told there is none.
func status(ctx context.Context, kv *fn.KV, order string, attempt int64) (Result, error) {
	r, err := fn.UpdateJSON(ctx, kv, key(order), func(r *record, exists bool) error {
		if attempt == 0 || exists && (r.Status != StatusNone || r.VoidedUpTo >= attempt) {
			return errNoop
		}
		*r = record{Result: Result{OrderID: order, Status: StatusNone}, CreatedAt: time.Now().UTC(), VoidedUpTo: attempt}
		return nil
	})
	return answer(order, r, err)
}

// refund marks an approved charge refunded, once.
func refund(ctx context.Context, kv *fn.KV, order string) (Result, error) {
	r, err := fn.UpdateJSON(ctx, kv, key(order), func(r *record, exists bool) error {
		if !exists || r.Status != StatusApproved {
			return errNoop
		}
		r.Status, r.RefundedAt = StatusRefunded, time.Now().UTC()
		return nil
	})
	if err == nil {
		fn.Logger(ctx).Info("refund", "order", order, "charge", r.ChargeID, "amount", r.Amount.Amount, "currency", r.Amount.Currency)
	}
	return answer(order, r, err)
}

// answer is the result of status and refund: the record's, or none.
func answer(order string, r record, err error) (Result, error) {
	switch {
	case err != nil && !errors.Is(err, errNoop):
		return Result{}, err
	case r.Status == "":
		return Result{OrderID: order, Status: StatusNone}, nil
	}
	return r.Result, nil
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
	// Only orders charges cards: outsiders are told payments does not exist.
	Access: "internal",
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
