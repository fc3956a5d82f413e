package schemas_test

import (
	"fmt"
	"time"

	"github.com/switchyard-dev/switchyard/schemas"
)

// A function's input type, its schema, and the check of one request body.
func Example() {
	type Line struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
	}
	type Order struct {
		Customer string    `json:"customer"`
		Lines    []Line    `json:"lines"`
		Pay      string    `json:"pay" jsonschema:"enum=card,enum=cash"`
		Deliver  time.Time `json:"deliver,omitempty"`
	}

	raw, err := schemas.For[Order]()
	if err != nil {
		panic(err)
	}
	schema, err := schemas.Compile(raw)
	if err != nil {
		panic(err)
	}

	body := []byte(`{"lines":[{"sku":"BK-1","qty":2},{"sku":"PN-2","qty":0}],"pay":"iou","deliver":"soon","tip":5}`)
	doc, err := schemas.Decode(body, schemas.DecodeLimits{})
	if err != nil {
		panic(err)
	}
	for _, v := range schema.Validate(doc) {
		fmt.Printf("%s: %s\n", v.Pointer, v.Message)
	}
	// Output:
	// /customer: missing property "customer"
	// /deliver: must be a valid date-time
	// /lines/1/qty: must be >= 1 but found 0
	// /pay: value must be one of "card", "cash"
	// /tip: unknown property
}

func ExampleFor() {
	type Greeting struct {
		Name string `json:"name" jsonschema:"minLength=1"`
		Lang string `json:"lang,omitempty" jsonschema:"enum=en,enum=fr"`
	}
	raw, err := schemas.For[Greeting]()
	if err != nil {
		panic(err)
	}
	fmt.Println(string(raw))
	// Output:
	// {"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"name":{"type":"string","minLength":1},"lang":{"type":"string","enum":["en","fr"]}},"additionalProperties":false,"type":"object","required":["name"]}
}

func ExampleDecode() {
	_, err := schemas.Decode([]byte(`{"amount":10,"amount":1000}`), schemas.DecodeLimits{})
	fmt.Println(err)

	doc, _ := schemas.Decode([]byte(`{"id":12345678901234567890}`), schemas.DecodeLimits{})
	fmt.Println(doc.(map[string]any)["id"])
	// Output:
	// duplicate key "amount" at /amount
	// 12345678901234567890
}

func ExampleCompile_externalRef() {
	_, err := schemas.Compile([]byte(`{"$ref":"https://example.com/order.json"}`))
	fmt.Println(err)
	// Output:
	// schemas: compile: external reference blocked: "https://example.com/order.json" (a schema must be self-contained)
}

func ExampleHash() {
	a := schemas.Hash([]byte(`{"type":"string","minLength":1}`))
	b := schemas.Hash([]byte(`{ "minLength": 1, "type": "string" }`))
	fmt.Println(a == b)
	// Output:
	// true
}
