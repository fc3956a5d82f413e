// Command payments is the example shop's card processor: a deterministic
// fake, so tests and demos can rely on its answers. Card 4000000000000002
// is declined (card_declined), card 4000000000009995 is declined for
// insufficient funds, and every other card is approved.
//
// A charge is idempotent per order: the first outcome is recorded in the KV
// bucket shop_payments (charge.<order id>), and charging the same order
// again returns it without charging twice.
//
// Faults for demos and tests come from the environment, read once at start:
// PAYMENTS_DELAY (a Go duration added to every charge), PAYMENTS_FAIL_PERCENT
// (0-100: the orders whose id hashes below it fail with unavailable, always
// the same ones) and PAYMENTS_DOWN=1 (every charge fails with unavailable).
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

	fn "github.com/switchyard-dev/switchyard/runtime"
)

// Bucket records the outcome of every charge.
const Bucket = "shop_payments"

// Charge asks to charge a card for an order.
type Charge struct {
	OrderID string `json:"order_id" jsonschema:"pattern=^[a-z0-9][a-z0-9-]{0\\,63}$"`
	Card    string `json:"card" jsonschema:"pattern=^[0-9]{12\\,19}$,description=card number (digits only)"`
	Amount  Money  `json:"amount"`
}

// Money is an amount in minor units (cents).
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=1,maximum=100000000"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Result is the outcome of a charge.
type Result struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status" jsonschema:"enum=approved,enum=declined"`
	// ChargeID identifies an approved charge.
	ChargeID string `json:"charge_id,omitempty"`
	// Reason says why a charge was declined.
	Reason string `json:"reason,omitempty" jsonschema:"enum=card_declined,enum=insufficient_funds"`
}

// Statuses and reasons of Result.
const (
	StatusApproved    = "approved"
	StatusDeclined    = "declined"
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
}

// Pay charges a card, once per order.
func Pay(ctx context.Context, in Charge) (Result, error) {
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
	if prev, _, err := fn.GetJSON[record](ctx, kv, key); err == nil {
		return recorded(in, prev)
	} else if !errors.Is(err, fn.ErrKeyNotFound) {
		return Result{}, err
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
	rec := record{Result: res, Amount: in.Amount, CardLast4: in.Card[len(in.Card)-cardDigitsToStore:], CreatedAt: time.Now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return Result{}, err
	}
	if _, err := kv.Create(ctx, key, data); errors.Is(err, fn.ErrKeyExists) {
		// A concurrent charge of the same order won: its outcome counts.
		prev, _, err := fn.GetJSON[record](ctx, kv, key)
		if err != nil {
			return Result{}, err
		}
		return recorded(in, prev)
	} else if err != nil {
		return Result{}, err
	}
	fn.Logger(ctx).Info("charge", "order", in.OrderID, "status", res.Status, "reason", res.Reason,
		"amount", in.Amount.Amount, "currency", in.Amount.Currency)
	return res, nil
}

// recorded answers a repeated charge of an order with its first outcome,
// or a conflict when it is a different charge under the same order id.
func recorded(in Charge, prev record) (Result, error) {
	if prev.Amount != in.Amount || prev.CardLast4 != in.Card[len(in.Card)-cardDigitsToStore:] {
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
var Config = fn.Config{Name: "payments", Description: "Charges cards (a deterministic fake processor)"}

func main() {
	f, err := ParseFaults(os.Getenv)
	if err != nil {
		log.Print("payments: invalid fault settings: ", err)
		os.Exit(2)
	}
	faults = f
	fn.Main(Config, fn.Handle(Pay, fn.WithTimeout(10*time.Second)))
}
