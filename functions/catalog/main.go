// Command catalog looks up products of the example shop by SKU. Its schema
// exercises what validation must handle: required fields, patterns, enums,
// number ranges, nested objects and arrays.
package main

import (
	"context"
	"math"
	"slices"

	"github.com/switchyard-dev/switchyard/runtime/fn"
)

// Lookup asks for one product.
type Lookup struct {
	SKU      string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]{4}$,description=stock keeping unit such as TEA-0001"`
	Currency string `json:"currency,omitempty" jsonschema:"enum=EUR,enum=USD,enum=GBP,default=EUR"`
	// Quantity prices a line of this many units.
	Quantity int     `json:"quantity,omitempty" jsonschema:"minimum=1,maximum=1000,default=1"`
	Options  Options `json:"options,omitzero"`
}

// Options refine a lookup.
type Options struct {
	// Include adds optional sections to the answer.
	Include []string `json:"include,omitempty" jsonschema:"uniqueItems=true,maxItems=2,enum=variants,enum=dimensions"`
	// MinStock hides variants with fewer units in stock.
	MinStock int `json:"min_stock,omitempty" jsonschema:"minimum=0,maximum=100000"`
}

// Product is the answer.
type Product struct {
	SKU        string      `json:"sku"`
	Name       string      `json:"name"`
	Category   string      `json:"category" jsonschema:"enum=tea,enum=coffee,enum=equipment"`
	Price      Money       `json:"price"`
	LineTotal  Money       `json:"line_total"`
	Tags       []string    `json:"tags"`
	Dimensions *Dimensions `json:"dimensions,omitempty"`
	Variants   []Variant   `json:"variants,omitempty"`
}

// Money is an amount in minor units (cents), so no float rounding.
type Money struct {
	Amount   int64  `json:"amount" jsonschema:"minimum=0"`
	Currency string `json:"currency" jsonschema:"enum=EUR,enum=USD,enum=GBP"`
}

// Dimensions of the packaged product, in millimetres and grams.
type Dimensions struct {
	WidthMM  int `json:"width_mm" jsonschema:"minimum=1"`
	HeightMM int `json:"height_mm" jsonschema:"minimum=1"`
	DepthMM  int `json:"depth_mm" jsonschema:"minimum=1"`
	WeightG  int `json:"weight_g" jsonschema:"minimum=1"`
}

// Variant is one sellable form of a product.
type Variant struct {
	SKU   string `json:"sku"`
	Label string `json:"label"`
	Stock int    `json:"stock" jsonschema:"minimum=0"`
}

type item struct {
	Product
	priceEUR int64
	dims     Dimensions
	variants []Variant
}

var products = map[string]item{
	"TEA-0001": {Product{SKU: "TEA-0001", Name: "Assam, second flush", Category: "tea", Tags: []string{"black", "organic"}}, 1250,
		Dimensions{90, 160, 60, 250}, []Variant{{"TEA-0001-100", "100 g", 40}, {"TEA-0001-250", "250 g", 3}}},
	"TEA-0002": {Product{SKU: "TEA-0002", Name: "Sencha", Category: "tea", Tags: []string{"green"}}, 1490,
		Dimensions{90, 160, 60, 250}, []Variant{{"TEA-0002-100", "100 g", 0}}},
	"COF-0001": {Product{SKU: "COF-0001", Name: "Yirgacheffe beans", Category: "coffee", Tags: []string{"single origin", "light roast"}}, 1890,
		Dimensions{110, 200, 70, 500}, []Variant{{"COF-0001-250", "250 g", 12}, {"COF-0001-1000", "1 kg", 5}}},
	"EQP-0001": {Product{SKU: "EQP-0001", Name: "Gooseneck kettle", Category: "equipment", Tags: []string{"kettle"}}, 7900,
		Dimensions{300, 220, 160, 1100}, []Variant{{"EQP-0001-BLK", "black", 7}, {"EQP-0001-STL", "steel", 0}}},
}

// rates are fixed, per mille of EUR, so results are deterministic.
var rates = map[string]int64{"EUR": 1000, "USD": 1080, "GBP": 850}

// Find looks a product up.
func Find(ctx context.Context, in Lookup) (Product, error) {
	it, ok := products[in.SKU]
	if !ok {
		return Product{}, fn.NotFound("no product with SKU %s", in.SKU)
	}
	cur := in.Currency
	if cur == "" {
		cur = "EUR"
	}
	qty := max(in.Quantity, 1)
	unit := int64(math.Round(float64(it.priceEUR*rates[cur]) / 1000))
	p := it.Product
	p.Tags = slices.Clone(p.Tags)
	p.Price = Money{Amount: unit, Currency: cur}
	p.LineTotal = Money{Amount: unit * int64(qty), Currency: cur}
	if slices.Contains(in.Options.Include, "dimensions") {
		d := it.dims
		p.Dimensions = &d
	}
	if slices.Contains(in.Options.Include, "variants") {
		p.Variants = []Variant{}
		for _, v := range it.variants {
			if v.Stock >= in.Options.MinStock {
				p.Variants = append(p.Variants, v)
			}
		}
	}
	return p, nil
}

// Config is catalog's identity. It calls, publishes and stores nothing, so
// it declares nothing.
var Config = fn.Config{Name: "catalog", Description: "Looks up products by SKU", Access: "public"}

func main() { fn.Main(Config, fn.Handle(Find)) }
