package main

import (
	"slices"
	"testing"

	"github.com/switchyard-dev/switchyard/runtime/fn"
	"github.com/switchyard-dev/switchyard/runtime/fntest"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func TestFind(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Find))

	p, err := fntest.Invoke[Product](t, h, Lookup{SKU: "COF-0001", Currency: "USD", Quantity: 3,
		Options: Options{Include: []string{"variants", "dimensions"}, MinStock: 6}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Price != (Money{2041, "USD"}) || p.LineTotal != (Money{6123, "USD"}) {
		t.Errorf("price %+v, line %+v", p.Price, p.LineTotal)
	}
	if p.Dimensions == nil || p.Dimensions.WeightG != 500 {
		t.Errorf("dimensions %+v", p.Dimensions)
	}
	if len(p.Variants) != 1 || p.Variants[0].SKU != "COF-0001-250" {
		t.Errorf("variants %+v, want only the one with stock >= 6", p.Variants)
	}

	p, err = fntest.Invoke[Product](t, h, Lookup{SKU: "TEA-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Price != (Money{1250, "EUR"}) || p.Dimensions != nil || p.Variants != nil {
		t.Errorf("defaults: %+v", p)
	}

	_, err = fntest.Invoke[Product](t, h, Lookup{SKU: "TEA-9999"})
	if we, ok := err.(*wire.Error); !ok || we.Code != wire.CodeNotFound {
		t.Errorf("unknown SKU: got %v, want not_found", err)
	}
}

func TestFindRejectsEveryBadField(t *testing.T) {
	h := fntest.Start(t, Config, fn.Handle(Find))
	body := `{"currency":"JPY","quantity":0,"options":{"include":["variants","price"],"min_stock":-1}}`
	_, we := h.Request(t, []byte(body))
	if we == nil || we.Code != wire.CodeInvalidArgument {
		t.Fatalf("got %v, want invalid_argument", we)
	}
	var got []string
	for _, e := range we.Errors {
		got = append(got, e.Pointer)
	}
	for _, want := range []string{"/sku", "/currency", "/quantity", "/options/include/1", "/options/min_stock"} {
		if !slices.Contains(got, want) {
			t.Errorf("no error for %s; got %v", want, we.Errors)
		}
	}
	for _, bad := range []string{`{"sku":"tea-1"}`, `{"sku":"TEA-0001","quantity":1001}`, `{"sku":"TEA-0001","quantity":"2"}`,
		`{"sku":"TEA-0001","options":{"include":["variants","variants"]}}`} {
		if _, we := h.Request(t, []byte(bad)); we == nil || we.Code != wire.CodeInvalidArgument {
			t.Errorf("%s: got %v, want invalid_argument", bad, we)
		}
	}
}
