package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func withFaults(t *testing.T, f Faults) {
	old := faults
	faults = f
	t.Cleanup(func() { faults = old })
}

func charge(order, card string, cents int64) Charge {
	return Charge{OrderID: order, Card: card, Amount: &Money{Amount: cents, Currency: "EUR"}}
}

func TestOutcomes(t *testing.T) {
	withFaults(t, Faults{})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	cases := []struct {
		card, status, reason string
	}{
		{"4242424242424242", StatusApproved, ""},
		{CardDeclined, StatusDeclined, ReasonDeclined},
		{CardNoFunds, StatusDeclined, ReasonNoFunds},
		{"123456789012", StatusApproved, ""},
	}
	for i, c := range cases {
		order := fmt.Sprintf("o-%d", i)
		r, err := fntest.Invoke[Result](t, h, charge(order, c.card, 1250))
		if err != nil {
			t.Fatalf("%s: %v", c.card, err)
		}
		if r.OrderID != order || r.Status != c.status || r.Reason != c.reason {
			t.Errorf("%s: %+v, want %s %s", c.card, r, c.status, c.reason)
		}
		if (c.status == StatusApproved) != strings.HasPrefix(r.ChargeID, "ch_") {
			t.Errorf("%s: charge id %q", c.card, r.ChargeID)
		}
	}
}

func TestIdempotent(t *testing.T) {
	withFaults(t, Faults{})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := fntest.Invoke[Result](t, h, charge("once", "4242424242424242", 990))
			if err != nil || r.Status != StatusApproved {
				t.Errorf("charge: %+v %v", r, err)
			}
			ids[i] = r.ChargeID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("charged more than once: %v", ids)
		}
	}
	// A declined order stays declined.
	fntest.Invoke[Result](t, h, charge("no", CardDeclined, 990))
	if r, _ := fntest.Invoke[Result](t, h, charge("no", CardDeclined, 990)); r.Status != StatusDeclined {
		t.Fatalf("repeat decline: %+v", r)
	}
	// Another amount under the same order id is a conflict.
	if _, err := fntest.Invoke[Result](t, h, charge("once", "4242424242424242", 991)); !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonMismatch {
		t.Fatalf("other amount: %v, want conflict, charge_mismatch", err)
	}
}

func TestFailPercentIsDeterministic(t *testing.T) {
	withFaults(t, Faults{FailPercent: 50})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	failed := 0
	for i := range 40 {
		order := fmt.Sprintf("f-%d", i)
		want := faults.failsTransiently(order)
		for range 2 { // the same order fails (or not) every time
			_, err := fntest.Invoke[Result](t, h, charge(order, "4242424242424242", 100))
			if want != isCode(err, wire.CodeUnavailable) || (!want && err != nil) {
				t.Fatalf("%s: %v, want failure %v", order, err, want)
			}
		}
		if want {
			failed++
		}
	}
	if failed < 8 || failed > 32 {
		t.Errorf("%d of 40 failed at 50%%", failed)
	}
	faults.FailPercent = 100
	if _, err := fntest.Invoke[Result](t, h, charge("new-order", "4242424242424242", 100)); !isCode(err, wire.CodeUnavailable) {
		t.Errorf("100%%: %v", err)
	}
	faults.FailPercent = 0
	if _, err := fntest.Invoke[Result](t, h, charge("new-order", "4242424242424242", 100)); err != nil {
		t.Errorf("nothing recorded by a failure, so a retry passes: %v", err)
	}
}

func TestDownAndDelay(t *testing.T) {
	withFaults(t, Faults{Down: true, Delay: 50 * time.Millisecond})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	start := time.Now()
	if _, err := fntest.Invoke[Result](t, h, charge("d-1", "4242424242424242", 100)); !isCode(err, wire.CodeUnavailable) {
		t.Fatalf("down: %v, want unavailable", err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("no delay")
	}
}

func TestDelayHonoursDeadline(t *testing.T) {
	withFaults(t, Faults{Delay: time.Minute})
	h := fntest.Start(t, Config, fn.Handle(Pay, fn.WithTimeout(100*time.Millisecond)))
	start := time.Now()
	if _, err := fntest.Invoke[Result](t, h, charge("slow", "4242424242424242", 100)); !isCode(err, wire.CodeDeadlineExceeded) {
		t.Fatalf("slow: %v, want deadline_exceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("delay ignored the deadline")
	}
}

func TestBadInput(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Pay))
	for _, body := range []string{
		`{"order_id":"a","card":"42","amount":{"amount":1,"currency":"EUR"}}`,
		`{"order_id":"a","card":"4242-4242-4242","amount":{"amount":1,"currency":"EUR"}}`,
		`{"order_id":"a","card":"4242424242424242","amount":{"amount":0,"currency":"EUR"}}`,
		`{"order_id":"a","card":"4242424242424242","amount":{"amount":1,"currency":"JPY"}}`,
		`{"order_id":"A b","card":"4242424242424242","amount":{"amount":1,"currency":"EUR"}}`,
		`{"card":"4242424242424242","amount":{"amount":1,"currency":"EUR"}}`,
	} {
		if _, we := h.Request(t, []byte(body)); we == nil || we.Code != wire.CodeInvalidArgument {
			t.Errorf("%s: got %v, want invalid_argument", body, we)
		}
	}
}

func TestParseFaults(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	f, err := ParseFaults(env(nil))
	if err != nil || f != (Faults{}) {
		t.Errorf("empty: %+v %v", f, err)
	}
	f, err = ParseFaults(env(map[string]string{EnvDelay: "200ms", EnvFailPercent: "30", EnvDown: "1"}))
	if err != nil || f != (Faults{Delay: 200 * time.Millisecond, FailPercent: 30, Down: true}) {
		t.Errorf("set: %+v %v", f, err)
	}
	for _, bad := range []map[string]string{
		{EnvDelay: "soon"}, {EnvDelay: "-1s"}, {EnvFailPercent: "101"}, {EnvFailPercent: "-1"},
		{EnvFailPercent: "half"}, {EnvDown: "yes"},
	} {
		if _, err := ParseFaults(env(bad)); err == nil {
			t.Errorf("%v: no error", bad)
		} else {
			for k := range bad {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("%v: error %q does not name %s", bad, err, k)
				}
			}
		}
	}
}

func isCode(err error, code wire.Code) bool {
	we, ok := err.(*wire.Error)
	return ok && we.Code == code
}

func TestStatusVoidAndRefund(t *testing.T) {
	withFaults(t, Faults{})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	status := func(order string, attempt int64) Result {
		t.Helper()
		r, err := fntest.Invoke[Result](t, h, Charge{Op: "status", OrderID: order, Attempt: attempt})
		if err != nil {
			t.Fatalf("status %s: %v", order, err)
		}
		return r
	}
	// Nothing recorded: a plain look changes nothing.
	if r := status("s-1", 0); r.Status != StatusNone {
		t.Fatalf("status: %+v", r)
	}
	// Asked by attempt 2: charges of attempts up to 2 are refused, a later
	// attempt may charge.
	if r := status("s-1", 2); r.Status != StatusNone {
		t.Fatalf("status 2: %+v", r)
	}
	c := charge("s-1", "4242424242424242", 500)
	c.Attempt = 2
	if _, err := fntest.Invoke[Result](t, h, c); !isCode(err, wire.CodeConflict) || fn.ReasonOf(err) != ReasonVoided {
		t.Fatalf("late charge of attempt 2: %v, want conflict, charge_voided", err)
	}
	if r := status("s-1", 1); r.Status != StatusNone {
		t.Fatalf("status 1 after 2: %+v", r)
	}
	c.Attempt = 3
	r, err := fntest.Invoke[Result](t, h, c)
	if err != nil || r.Status != StatusApproved {
		t.Fatalf("charge of attempt 3: %+v %v", r, err)
	}
	if got := status("s-1", 4); got.Status != StatusApproved || got.ChargeID != r.ChargeID {
		t.Fatalf("status after charge: %+v", got)
	}
	// Refund, twice: once refunded it stays refunded, and charging again
	// does not charge anew.
	for range 2 {
		got, err := fntest.Invoke[Result](t, h, Charge{Op: "refund", OrderID: "s-1"})
		if err != nil || got.Status != StatusRefunded || got.ChargeID != r.ChargeID {
			t.Fatalf("refund: %+v %v", got, err)
		}
	}
	if got, err := fntest.Invoke[Result](t, h, c); err != nil || got.Status != StatusRefunded {
		t.Fatalf("charge after refund: %+v %v", got, err)
	}
	if got, err := fntest.Invoke[Result](t, h, Charge{Op: "refund", OrderID: "nothing"}); err != nil || got.Status != StatusNone {
		t.Fatalf("refund of nothing: %+v %v", got, err)
	}
	// A charge needs a card and an amount.
	if _, err := fntest.Invoke[Result](t, h, Charge{OrderID: "x", Card: "4242424242424242"}); !isCode(err, wire.CodeInvalidArgument) {
		t.Fatalf("no amount: %v", err)
	}
	if _, err := fntest.Invoke[Result](t, h, Charge{Op: "charge", OrderID: "x", Amount: &Money{1, "EUR"}}); !isCode(err, wire.CodeInvalidArgument) {
		t.Fatalf("no card: %v", err)
	}
}

// Concurrent late charges and voids of one order: either the charge is
// recorded and status says approved, or status said none and no charge of
// that attempt is ever recorded.
func TestVoidRacesCharge(t *testing.T) {
	withFaults(t, Faults{})
	h := fntest.Start(t, Config, fn.Handle(Pay))
	for i := range 20 {
		order := fmt.Sprintf("race-%d", i)
		c := charge(order, "4242424242424242", 100)
		c.Attempt = 1
		var wg sync.WaitGroup
		var st Result
		var chErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, chErr = fntest.Invoke[Result](t, h, c) }()
		go func() {
			defer wg.Done()
			st, _ = fntest.Invoke[Result](t, h, Charge{Op: "status", OrderID: order, Attempt: 1})
		}()
		wg.Wait()
		final, _ := fntest.Invoke[Result](t, h, Charge{Op: "status", OrderID: order})
		if st.Status == StatusNone && (chErr == nil || final.Status != StatusNone) {
			t.Fatalf("%s: told none, but the charge went through (%v, %+v)", order, chErr, final)
		}
		if st.Status == StatusApproved && (chErr != nil || final.Status != StatusApproved) {
			t.Fatalf("%s: approved but %v %+v", order, chErr, final)
		}
	}
}
