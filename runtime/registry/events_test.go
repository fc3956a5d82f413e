package registry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseEventStart(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]EventStart{
		"": {}, "new": {}, "start": {All: true}, "42": {Seq: 42},
		"2026-12-01T10:00:00Z": {Time: at}, "2026-12-01T11:00:00+01:00": {Time: at},
	} {
		got, err := ParseEventStart(in)
		if err != nil || got != want {
			t.Fatalf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"0", "-1", "begin", "2026-12-01", "1e3", " 4"} {
		if _, err := ParseEventStart(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// FuzzParseEventStart: whatever parses prints as what parses back to it.
func FuzzParseEventStart(f *testing.F) {
	for _, s := range []string{"", "new", "start", "1", "18446744073709551615", "2026-12-01T10:00:00.5+01:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEventStart(s)
		if err != nil {
			return
		}
		back, err := ParseEventStart(e.String())
		if err != nil || !back.Time.Equal(e.Time) || back.All != e.All || back.Seq != e.Seq {
			t.Fatalf("%q → %+v → %q → %+v %v", s, e, e.String(), back, err)
		}
	})
}

func TestEventDeclarations(t *testing.T) {
	spec := &Spec{Name: "sales", Events: []string{"orders.placed"},
		EventOptions: map[string]EventOptions{"orders.placed": {From: "start", Ordered: true}},
		Streams: []Stream{{Name: "CARTS", Subjects: []string{"cart.>"}, Entity: true,
			EventSchemas: map[string]json.RawMessage{"ItemAdded": json.RawMessage(`{"type":"object"}`)}}}}
	if errs := spec.ValidateDeclarations(); len(errs) != 0 {
		t.Fatal(errs)
	}
	for want, bad := range map[string]*Spec{
		"not one of the events": {Name: "x", EventOptions: map[string]EventOptions{"orders.paid": {}}},
		"is not a start":        {Name: "x", Events: []string{"a.b"}, EventOptions: map[string]EventOptions{"a.b": {From: "yesterday"}}},
		"not starting yard_":    {Name: "x", Buckets: []string{SnapshotBucket("CARTS")}},
		"for entity streams":    {Name: "x", Streams: []Stream{{Name: "S", Subjects: []string{"s.>"}, EventSchemas: map[string]json.RawMessage{"A": json.RawMessage(`{}`)}}}},
		"needs a name":          {Name: "x", Streams: []Stream{{Name: "S", Subjects: []string{"s.>"}, Entity: true, EventSchemas: map[string]json.RawMessage{"a b": json.RawMessage(`{}`)}}}},
	} {
		errs := bad.ValidateDeclarations()
		if len(errs) == 0 || !strings.Contains(errs[0].Error(), want) {
			t.Fatalf("want %q, got %v", want, errs)
		}
	}
}
