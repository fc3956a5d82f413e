package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/schemas"
)

// Versions of function types as authors evolve them. Each pair differs in
// one way; the suffix says which version it is.
type (
	signupV1 struct {
		Name  string `json:"name"`
		Email string `json:"email,omitempty"`
	}
	signupV2 struct { // email becomes required
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	signupNick struct { // an optional field is added
		Name  string `json:"name"`
		Email string `json:"email,omitempty"`
		Nick  string `json:"nick,omitempty"`
	}
	signupNameOnly struct { // email is gone
		Name string `json:"name"`
	}

	lineV1 struct {
		SKU string `json:"sku" jsonschema:"pattern=^[A-Z]{2}-[0-9]+$"`
		Qty int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
	}
	lineQty10 struct {
		SKU string `json:"sku" jsonschema:"pattern=^[A-Z]{2}-[0-9]+$"`
		Qty int    `json:"qty" jsonschema:"minimum=1,maximum=10"`
	}
	lineMin2 struct {
		SKU string `json:"sku" jsonschema:"pattern=^[A-Z]{2}-[0-9]+$"`
		Qty int    `json:"qty" jsonschema:"minimum=2,maximum=100"`
	}
	lineSKU3 struct {
		SKU string `json:"sku" jsonschema:"pattern=^[A-Z]{3}-[0-9]+$"`
		Qty int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
	}
	lineFloat struct {
		SKU string  `json:"sku" jsonschema:"pattern=^[A-Z]{2}-[0-9]+$"`
		Qty float64 `json:"qty" jsonschema:"minimum=1,maximum=100"`
	}

	orderV1 struct {
		Lines []lineV1 `json:"lines"`
	}
	orderMin2 struct {
		Lines []lineMin2 `json:"lines"`
	}
	orderNonEmpty struct {
		Lines []lineV1 `json:"lines" jsonschema:"minItems=1,uniqueItems=true"`
	}

	payCardCash struct {
		Pay string `json:"pay" jsonschema:"enum=card,enum=cash"`
	}
	payCard struct {
		Pay string `json:"pay" jsonschema:"enum=card"`
	}
	payAny struct {
		Pay string `json:"pay"`
	}

	addressV1 struct {
		Street string `json:"street"`
		Zip    string `json:"zip"`
	}
	addressZip5 struct {
		Street string `json:"street"`
		Zip    string `json:"zip" jsonschema:"minLength=5,maxLength=5"`
	}
	customerV1 struct {
		Name    string    `json:"name"`
		Address addressV1 `json:"address"`
	}
	customerZip5 struct {
		Name    string      `json:"name"`
		Address addressZip5 `json:"address"`
	}

	contactV1 struct {
		Phone string `json:"phone"`
	}
	contactNullable struct {
		Phone *string `json:"phone" jsonschema:"nullable"`
	}

	labelsMap struct {
		Labels map[string]string `json:"labels"`
	}
	labelsStruct struct {
		Labels struct {
			Env string `json:"env,omitempty"`
		} `json:"labels"`
	}

	eventTime struct {
		At time.Time `json:"at"`
	}
	eventString struct {
		At string `json:"at"`
	}

	treeV1 struct {
		Name     string   `json:"name"`
		Children []treeV1 `json:"children,omitempty"`
	}
	// treeRenamed has treeV1's shape under another name, so its schema has
	// other $defs and the comparison has to follow the references.
	treeRenamed struct {
		Name     string        `json:"name"`
		Children []treeRenamed `json:"children,omitempty"`
	}
	treeWeighted struct {
		Name     string         `json:"name"`
		Weight   int            `json:"weight"`
		Children []treeWeighted `json:"children,omitempty"`
	}
)

func schemaFor[T any](t testing.TB) []byte {
	t.Helper()
	b, err := schemas.For[T]()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lines renders changes one per line, as "pointer kind: message".
func lines(changes []schemas.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Pointer+" "+c.Kind+": "+c.Message)
	}
	return out
}

// breakFuncs are the two comparisons, by name.
var breakFuncs = map[string]func(old, new []byte) ([]schemas.Change, error){
	"InputBreaks": schemas.InputBreaks, "OutputBreaks": schemas.OutputBreaks,
}

// checkBreaks compares InputBreaks and OutputBreaks from old to new, as
// lines, with wantIn and wantOut.
func checkBreaks(t *testing.T, old, new []byte, wantIn, wantOut []string) {
	t.Helper()
	in, err := schemas.InputBreaks(old, new)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(in); !slices.Equal(got, wantIn) {
		t.Errorf("InputBreaks:\ngot  %q\nwant %q", got, wantIn)
	}
	out, err := schemas.OutputBreaks(old, new)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(out); !slices.Equal(got, wantOut) {
		t.Errorf("OutputBreaks:\ngot  %q\nwant %q", got, wantOut)
	}
}

func TestBreaksGoTypes(t *testing.T) {
	tests := []struct {
		name     string
		old, new []byte
		in, out  []string // expected InputBreaks and OutputBreaks
	}{
		{
			name: "new required field",
			old:  schemaFor[signupV1](t), new: schemaFor[signupV2](t),
			in: []string{`/email required_added: field "email" is now required`},
		},
		{
			name: "optional field added",
			old:  schemaFor[signupV1](t), new: schemaFor[signupNick](t),
		},
		{
			name: "required field made optional",
			old:  schemaFor[signupV2](t), new: schemaFor[signupV1](t),
			out: []string{`/email required_removed: field "email" is no longer always present`},
		},
		{
			name: "required field removed",
			old:  schemaFor[signupV2](t), new: schemaFor[signupNameOnly](t),
			in:  []string{`/email property_removed: field "email" was removed; input that sets it is now rejected`},
			out: []string{`/email property_removed: field "email" was removed, but old callers expect it`},
		},
		{
			name: "optional field removed",
			old:  schemaFor[signupV1](t), new: schemaFor[signupNameOnly](t),
			in: []string{`/email property_removed: field "email" was removed; input that sets it is now rejected`},
		},
		{
			name: "narrowed integer range",
			old:  schemaFor[lineV1](t), new: schemaFor[lineQty10](t),
			in: []string{`/qty maximum_lowered: field "qty" must now be <= 10 (was <= 100)`},
		},
		{
			name: "widened integer range",
			old:  schemaFor[lineQty10](t), new: schemaFor[lineV1](t),
			out: []string{`/qty maximum_raised: field "qty" may now be > 10 (was always <= 10)`},
		},
		{
			name: "removed enum value",
			old:  schemaFor[payCardCash](t), new: schemaFor[payCard](t),
			in: []string{`/pay enum_value_removed: field "pay" no longer accepts "cash"`},
		},
		{
			name: "added enum value",
			old:  schemaFor[payCard](t), new: schemaFor[payCardCash](t),
			out: []string{`/pay enum_value_added: field "pay" may now be "cash"`},
		},
		{
			name: "enum dropped",
			old:  schemaFor[payCardCash](t), new: schemaFor[payAny](t),
			out: []string{`/pay enum_removed: field "pay" is no longer limited to "card", "cash"`},
		},
		{
			name: "enum introduced",
			old:  schemaFor[payAny](t), new: schemaFor[payCardCash](t),
			in: []string{`/pay enum_added: field "pay" now accepts only "card", "cash"`},
		},
		{
			name: "integer widened to number",
			old:  schemaFor[lineV1](t), new: schemaFor[lineFloat](t),
			out: []string{`/qty type_widened: field "qty" may now hold non-integer numbers`},
		},
		{
			name: "number narrowed to integer",
			old:  schemaFor[lineFloat](t), new: schemaFor[lineV1](t),
			in: []string{`/qty type_narrowed: field "qty" no longer accepts non-integer numbers`},
		},
		{
			name: "nested object change",
			old:  schemaFor[customerV1](t), new: schemaFor[customerZip5](t),
			in: []string{
				`/address/zip max_length_lowered: field "address.zip" must now have at most 5 characters (had no maximum)`,
				`/address/zip min_length_raised: field "address.zip" must now have at least 5 characters (was 0)`,
			},
			out: nil,
		},
		{
			name: "array item change",
			old:  schemaFor[orderV1](t), new: schemaFor[orderMin2](t),
			in: []string{`/lines/*/qty minimum_raised: field "lines[*].qty" must now be >= 2 (was >= 1)`},
		},
		{
			name: "array constraints added",
			old:  schemaFor[orderV1](t), new: schemaFor[orderNonEmpty](t),
			in: []string{
				`/lines min_items_raised: field "lines" must now have at least 1 items (was 0)`,
				`/lines unique_items_added: field "lines" must now have unique items`,
			},
		},
		{
			name: "array constraints dropped",
			old:  schemaFor[orderNonEmpty](t), new: schemaFor[orderV1](t),
			out: []string{
				`/lines min_items_lowered: field "lines" may now have fewer than 1 items`,
				`/lines unique_items_removed: field "lines" may now have duplicate items`,
			},
		},
		{
			name: "map closed into a struct",
			old:  schemaFor[labelsMap](t), new: schemaFor[labelsStruct](t),
			in: []string{`/labels additional_properties_closed: field "labels" no longer accepts fields it does not name`},
		},
		{
			name: "struct opened into a map",
			old:  schemaFor[labelsStruct](t), new: schemaFor[labelsMap](t),
		},
		{
			name: "pattern change",
			old:  schemaFor[lineV1](t), new: schemaFor[lineSKU3](t),
			in:  []string{`/sku pattern_changed: field "sku" must now match "^[A-Z]{3}-[0-9]+$" instead of "^[A-Z]{2}-[0-9]+$", which could not be proved compatible`},
			out: []string{`/sku pattern_changed: field "sku" now matches "^[A-Z]{3}-[0-9]+$" instead of "^[A-Z]{2}-[0-9]+$", which could not be proved compatible`},
		},
		{
			name: "made nullable",
			old:  schemaFor[contactV1](t), new: schemaFor[contactNullable](t),
			out: []string{`/phone type_widened: field "phone" may now hold null`},
		},
		{
			name: "no longer nullable",
			old:  schemaFor[contactNullable](t), new: schemaFor[contactV1](t),
			in: []string{`/phone type_narrowed: field "phone" no longer accepts null`},
		},
		{
			name: "format dropped",
			old:  schemaFor[eventTime](t), new: schemaFor[eventString](t),
			out: []string{`/at format_removed: field "at" is no longer always a valid date-time`},
		},
		{
			name: "format added",
			old:  schemaFor[eventString](t), new: schemaFor[eventTime](t),
			in: []string{`/at format_added: field "at" must now be a valid date-time`},
		},
		{
			name: "recursive type unchanged",
			old:  schemaFor[treeV1](t), new: schemaFor[treeRenamed](t),
		},
		{
			name: "recursive type gains a required field",
			old:  schemaFor[treeV1](t), new: schemaFor[treeWeighted](t),
			in: []string{`/weight required_added: field "weight" is now required`},
		},
		{
			name: "recursive type loses a required field",
			old:  schemaFor[treeWeighted](t), new: schemaFor[treeV1](t),
			in:  []string{`/weight property_removed: field "weight" was removed; input that sets it is now rejected`},
			out: []string{`/weight property_removed: field "weight" was removed, but old callers expect it`},
		},
		{
			name: "struct replaced by a string",
			old:  schemaFor[customerV1](t), new: schemaFor[string](t),
			in:  []string{` type_narrowed: the input no longer accepts objects`},
			out: []string{` type_widened: the output may now hold strings`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBreaks(t, tt.old, tt.new, tt.in, tt.out)
		})
	}
}

func TestBreaksJSON(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		in, out  []string
	}{
		{
			name: "integer bounds compare in the integers",
			old:  `{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}`,
			new:  `{"type":"integer","minimum":1,"maximum":9}`,
		},
		{
			name: "exclusive bound becomes inclusive",
			old:  `{"type":"number","exclusiveMinimum":0}`,
			new:  `{"type":"number","minimum":0}`,
			out:  []string{` minimum_lowered: the output may now be <= 0 (was always > 0)`},
		},
		{
			name: "inclusive bound becomes exclusive",
			old:  `{"type":"number","minimum":0}`,
			new:  `{"type":"number","exclusiveMinimum":0}`,
			in:   []string{` minimum_raised: the input must now be > 0 (was >= 0)`},
		},
		{
			name: "bound on a free value",
			old:  `{}`,
			new:  `{"maximum":5}`,
			in:   []string{` maximum_lowered: the input must now be <= 5 (had no maximum)`},
		},
		{
			name: "alternatives reordered",
			old:  `{"anyOf":[{"type":"string","maxLength":3},{"type":"integer"}]}`,
			new:  `{"anyOf":[{"type":"integer"},{"type":"string","maxLength":3}]}`,
		},
		{
			name: "type list and oneOf say the same",
			old:  `{"type":["string","null"]}`,
			new:  `{"oneOf":[{"type":"null"},{"type":"string"}]}`,
		},
		{
			name: "alternative narrowed",
			old:  `{"anyOf":[{"type":"string","maxLength":3},{"type":"integer"}]}`,
			new:  `{"anyOf":[{"type":"string","maxLength":2},{"type":"integer"}]}`,
			in:   []string{` max_length_lowered: the input must now have at most 2 characters (was 3)`},
			out:  nil,
		},
		{
			name: "overlapping oneOf",
			old:  `{"type":"integer"}`,
			new:  `{"oneOf":[{"type":"integer"},{"type":"number","minimum":0}]}`,
			in:   []string{` unknown: the input could not be proved compatible: its values may match more than one alternative of oneOf`},
			out:  []string{` type_widened: the output may now hold non-integer numbers`},
		},
		{
			name: "const changed",
			old:  `{"const":"v1"}`,
			new:  `{"const":"v2"}`,
			in:   []string{` enum_value_removed: the input no longer accepts "v1"`},
			out:  []string{` enum_value_added: the output may now be "v2"`},
		},
		{
			name: "enum value out of a new range",
			old:  `{"type":"integer","enum":[5,10,25]}`,
			new:  `{"type":"integer","enum":[5,10,25],"maximum":20}`,
			in:   []string{` maximum_lowered: the input no longer accepts 25`},
		},
		{
			name: "enum values compare as numbers",
			old:  `{"enum":[1,2.50]}`,
			new:  `{"enum":[2.5,1.0]}`,
		},
		{
			name: "enum with a format the check cannot evaluate",
			old:  `{"type":"string","format":"email","enum":["a@example.com"]}`,
			new:  `{"type":"string","format":"email","enum":["a@example.com","b@example.com"]}`,
			out:  []string{` enum_value_added: the output may now be "b@example.com"`},
		},
		{
			name: "booleans listed one by one",
			old:  `{"type":"boolean"}`,
			new:  `{"enum":[false,true]}`,
		},
		{
			name: "boolean value removed",
			old:  `{"type":"boolean"}`,
			new:  `{"const":true}`,
			in:   []string{` enum_value_removed: the input no longer accepts false`},
		},
		{
			name: "boolean value added",
			old:  `{"const":true}`,
			new:  `{"type":"boolean"}`,
			out:  []string{` enum_value_added: the output may now be false`},
		},
		{
			name: "anything narrowed to a string",
			old:  `true`,
			new:  `{"type":"string"}`,
			in:   []string{` type_narrowed: the input no longer accepts numbers, booleans, objects, arrays or null`},
		},
		{
			name: "string widened to anything",
			old:  `{"type":"string"}`,
			new:  `{}`,
			out:  []string{` type_widened: the output may now hold numbers, booleans, objects, arrays or null`},
		},
		{
			name: "nothing accepted any more",
			old:  `{"type":"string"}`,
			new:  `false`,
			in:   []string{` type_narrowed: the input no longer accepts any value`},
		},
		{
			name: "multipleOf",
			old:  `{"type":"number","multipleOf":0.5}`,
			new:  `{"type":"number","multipleOf":1}`,
			in:   []string{` multiple_of_changed: the input must now be a multiple of 1`},
		},
		{
			name: "multipleOf 1 on integers",
			old:  `{"type":"integer"}`,
			new:  `{"type":"integer","multipleOf":1}`,
		},
		{
			name: "tuple position narrowed",
			old:  `{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}]}`,
			new:  `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}`,
			in: []string{
				`/1 type_narrowed: field "[1]" no longer accepts non-integer numbers`,
				`/* type_narrowed: field "[*]" no longer accepts any value`,
			},
			out: nil,
		},
		{
			name: "map values narrowed",
			old:  `{"type":"object","additionalProperties":{"type":"number"}}`,
			new:  `{"type":"object","additionalProperties":{"type":"integer"}}`,
			in:   []string{`/* type_narrowed: field "*" no longer accepts non-integer numbers`},
			out:  nil,
		},
		{
			name: "open object gains a declared property",
			old:  `{"type":"object"}`,
			new:  `{"type":"object","properties":{"n":{"type":"integer"}}}`,
			in:   []string{`/n type_narrowed: field "n" no longer accepts strings, non-integer numbers, booleans, objects, arrays or null`},
		},
		{
			name: "property names with special characters",
			old:  `{"type":"object","properties":{"a/b":{"type":"string"},"c~d":{"type":"string"}}}`,
			new:  `{"type":"object","properties":{"a/b":{"type":"integer"},"c~d":{"type":"string"}},"required":["c~d"]}`,
			in: []string{
				`/a~1b type_narrowed: field "a/b" no longer accepts strings`,
				`/c~0d required_added: field "c~d" is now required`,
			},
			out: []string{`/a~1b type_widened: field "a/b" may now hold integers`},
		},
		{
			name: "$ref beside other keywords",
			old:  `{"$defs":{"n":{"type":"integer"}},"$ref":"#/$defs/n","minimum":0}`,
			new:  `{"$defs":{"n":{"type":"integer"}},"$ref":"#/$defs/n","minimum":1}`,
			in:   []string{` minimum_raised: the input must now be >= 1 (was >= 0)`},
		},
		{
			name: "inlined and referenced definitions",
			old:  `{"type":"object","properties":{"a":{"$ref":"#/$defs/s"}},"$defs":{"s":{"type":"string","maxLength":5}}}`,
			new:  `{"type":"object","properties":{"a":{"type":"string","maxLength":5}}}`,
		},
		{
			name: "allOf that merges",
			old:  `{"allOf":[{"type":"string"},{"maxLength":5}]}`,
			new:  `{"type":"string","maxLength":6}`,
			out:  []string{` max_length_raised: the output may now have more than 5 characters`},
		},
		{
			name: "unmodelled keyword changed",
			old:  `{"type":"string","not":{"const":"a"}}`,
			new:  `{"type":"string","not":{"const":"b"}}`,
			in:   []string{` unknown: the input could not be proved compatible: its "not" keyword changed`},
			out:  []string{` unknown: the output could not be proved compatible: its "not" keyword changed`},
		},
		{
			name: "unmodelled keyword unchanged",
			old:  `{"type":"object","propertyNames":{"maxLength":3}}`,
			new:  `{"type":"object","propertyNames":{"maxLength":3},"minProperties":0}`,
		},
		{
			name: "patternProperties changed",
			old:  `{"type":"object","patternProperties":{"^x":{"type":"string"}}}`,
			new:  `{"type":"object","patternProperties":{"^x-":{"type":"string"}}}`,
			in:   []string{` unknown: the input could not be proved compatible: its patternProperties changed`},
			out:  []string{` unknown: the output could not be proved compatible: its patternProperties changed`},
		},
		{
			name: "unevaluatedProperties",
			old:  `{"type":"object"}`,
			new:  `{"type":"object","unevaluatedProperties":false}`,
			in:   []string{` unknown: the input could not be proved compatible: it uses unevaluatedProperties or unevaluatedItems`},
		},
		{
			name: "format changed",
			old:  `{"type":"string","format":"email"}`,
			new:  `{"type":"string","format":"uri"}`,
			in:   []string{` format_changed: the input must now be a valid uri (was email)`},
			out:  []string{` format_changed: the output is now a valid uri, no longer always a valid email`},
		},
		{
			name: "another draft",
			old:  `{"$schema":"http://json-schema.org/draft-07/schema#","type":"string"}`,
			new:  `{"type":"string"}`,
			in:   []string{` unknown: the schemas could not be proved compatible: the old schema declares "http://json-schema.org/draft-07/schema#", and only draft 2020-12 is understood`},
			out:  []string{` unknown: the schemas could not be proved compatible: the old schema declares "http://json-schema.org/draft-07/schema#", and only draft 2020-12 is understood`},
		},
		{
			// Both regressions kept a recursive comparison from closing.
			name: "recursive definition beside other keywords",
			old:  `{"$defs":{"n":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}`,
			new:  `{"$defs":{"n":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/n","minItems":0}}}}},"$ref":"#/$defs/n","maxProperties":5}`,
			in:   []string{` max_properties_lowered: the input must now have at most 5 fields (had no maximum)`},
		},
		{
			name: "recursive definition against anything",
			old:  `{"$defs":{"n":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}`,
			new:  `{"type":"object","properties":{"kids":{"items":{}}}}`,
			out: []string{
				`/kids type_widened: field "kids" may now hold strings, numbers, booleans, objects or null`,
				`/kids/* type_widened: field "kids[*]" may now hold strings, numbers, booleans, arrays or null`,
				`/kids/*/kids type_widened: field "kids[*].kids" may now hold strings, numbers, booleans, objects or null`,
			},
		},
		{
			name: "draft 2020-12 spelt differently",
			old:  `{"$schema":"http://json-schema.org/draft/2020-12/schema#","type":"string"}`,
			new:  `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"string"}`,
		},
		{
			name: "another draft, unchanged",
			old:  `{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`,
			new:  `{ "items": [{"type": "string"}], "$schema": "http://json-schema.org/draft-07/schema#" }`,
		},
		{
			name: "same meaning, other bytes",
			old:  `{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`,
			new:  "{\n  \"required\": [\"a\"],\n  \"properties\": {\"a\": {\"type\": \"string\"}},\n  \"type\": \"object\"\n}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBreaks(t, []byte(tt.old), []byte(tt.new), tt.in, tt.out)
		})
	}
}

// Every golden schema of the package, compared with itself and with a copy
// in other bytes, gives no changes.
func TestBreaksIdentical(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden schemas: %v", err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			t.Fatal(err)
		}
		for _, other := range [][]byte{raw, compact.Bytes()} {
			for name, f := range breakFuncs {
				changes, err := f(raw, other)
				if err != nil {
					t.Fatalf("%s(%s): %v", name, file, err)
				}
				if changes != nil {
					t.Errorf("%s(%s) = %q, want nil", name, file, lines(changes))
				}
			}
		}
	}
}

func TestBreaksErrors(t *testing.T) {
	good := []byte(`{"type":"string"}`)
	tests := []struct {
		name     string
		old, new []byte
		want     string
	}{
		{"old not JSON", []byte(`{"type":`), good, "schemas: compat: old schema: "},
		{"new not JSON", good, []byte(`{"type":"string"} x`), "schemas: compat: new schema: "},
		{"new not a schema", good, []byte(`{"type":"text"}`), "schemas: compat: new schema: schema is not valid"},
		{"external ref", good, []byte(`{"$ref":"https://example.com/s.json"}`), "schemas: compat: new schema: external reference blocked"},
		{"empty", nil, good, "schemas: compat: old schema: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, f := range breakFuncs {
				changes, err := f(tt.old, tt.new)
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
					t.Errorf("%s: err = %v, want prefix %q", name, err, tt.want)
				}
				if changes != nil {
					t.Errorf("%s: changes = %q with an error", name, lines(changes))
				}
			}
		})
	}
	_, err := schemas.InputBreaks(good, []byte(`{"$ref":"https://example.com/s.json"}`))
	if !errors.Is(err, schemas.ErrExternalRef) {
		t.Errorf("err = %v, want it to wrap ErrExternalRef", err)
	}
}

// A schema whose alternatives multiply must not make a deploy hang: the
// comparison gives up and says it could not prove compatibility.
func TestBreaksGivesUp(t *testing.T) {
	// Each definition is either of two references to the one before, so the
	// document is small but has 2^40 ways through it.
	var defs strings.Builder
	defs.WriteString(`{"$defs":{"d0":{"type":"string","maxLength":3}`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&defs, `,"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i-1, i-1)
	}
	defs.WriteString(`},"$ref":"#/$defs/d40"}`)
	old := []byte(defs.String())
	changes, err := schemas.InputBreaks(old, []byte(`{"type":"string","maxLength":2}`))
	if err != nil {
		t.Fatal(err)
	}
	gaveUp := slices.ContainsFunc(changes, func(c schemas.Change) bool {
		return c.Pointer == "" && c.Kind == "unknown" && strings.Contains(c.Message, "too large")
	})
	if !gaveUp {
		t.Errorf("changes = %q, want the comparison to give up", lines(changes))
	}
}

func TestBreaksSortedAndStable(t *testing.T) {
	old := []byte(`{"type":"object","properties":{
		"b":{"type":"integer","minimum":0},
		"a":{"type":"array","items":{"type":"object","properties":{"x":{"type":"string"}}}},
		"a2":{"type":"string"}},"additionalProperties":false}`)
	new := []byte(`{"type":"object","properties":{
		"b":{"type":"integer","minimum":1,"maximum":3},
		"a":{"type":"array","items":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}}},
		"required":["b","a"],"additionalProperties":false}`)
	want := []string{
		`/a required_added: field "a" is now required`,
		`/a/*/x required_added: field "a[*].x" is now required`,
		`/a/*/x type_narrowed: field "a[*].x" no longer accepts strings`,
		`/a2 property_removed: field "a2" was removed; input that sets it is now rejected`,
		`/b maximum_lowered: field "b" must now be <= 3 (had no maximum)`,
		`/b minimum_raised: field "b" must now be >= 1 (was >= 0)`,
		`/b required_added: field "b" is now required`,
	}
	for range 20 {
		changes, err := schemas.InputBreaks(old, new)
		if err != nil {
			t.Fatal(err)
		}
		if got := lines(changes); !slices.Equal(got, want) {
			t.Fatalf("got  %q\nwant %q", got, want)
		}
	}
}

func TestChangeJSON(t *testing.T) {
	b, err := json.Marshal(schemas.Change{Pointer: "/email", Kind: "required_added", Message: `field "email" is now required`})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"pointer":"/email","kind":"required_added","message":"field \"email\" is now required"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

// What `yard deploy` checks: version 2 of a function's input type against
// the live version 1.
func ExampleInputBreaks() {
	type OrderV1 struct {
		Customer string `json:"customer"`
		Qty      int    `json:"qty" jsonschema:"minimum=1,maximum=100"`
		Pay      string `json:"pay" jsonschema:"enum=card,enum=cash"`
	}
	type OrderV2 struct {
		Customer string `json:"customer"`
		Email    string `json:"email"`
		Qty      int    `json:"qty" jsonschema:"minimum=1,maximum=10"`
		Pay      string `json:"pay" jsonschema:"enum=card"`
		Note     string `json:"note,omitempty"`
	}
	live, err := schemas.For[OrderV1]()
	if err != nil {
		panic(err)
	}
	next, err := schemas.For[OrderV2]()
	if err != nil {
		panic(err)
	}
	changes, err := schemas.InputBreaks(live, next)
	if err != nil {
		panic(err)
	}
	for _, c := range changes {
		fmt.Printf("%s (%s): %s\n", c.Pointer, c.Kind, c.Message)
	}
	// Output:
	// /email (required_added): field "email" is now required
	// /pay (enum_value_removed): field "pay" no longer accepts "cash"
	// /qty (maximum_lowered): field "qty" must now be <= 10 (was <= 100)
}

func FuzzInputBreaks(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	var seeds [][]byte
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			seeds = append(seeds, raw)
		}
	}
	for _, s := range []string{
		`true`, `false`, `{}`,
		`{"type":["string","null"],"maxLength":3}`,
		`{"oneOf":[{"type":"string"},{"type":"null"}]}`,
		`{"anyOf":[{"type":"integer","minimum":0},{"type":"string","pattern":"^a"}]}`,
		`{"type":"integer","exclusiveMinimum":0,"multipleOf":2}`,
		`{"enum":[1,"a",null,true,[1],{"a":1}]}`,
		`{"type":"object","properties":{"a":{"const":1}},"required":["a"],"additionalProperties":{"type":"string"}}`,
		`{"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"number"},"minItems":1,"uniqueItems":true}`,
		`{"$defs":{"t":{"type":"object","properties":{"c":{"type":"array","items":{"$ref":"#/$defs/t"}}}}},"$ref":"#/$defs/t"}`,
		`{"allOf":[{"type":"string"},{"minLength":2}],"not":{"const":"ab"}}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	instances := []string{`null`, `"ab"`, `3`, `2.5`, `{"a":1}`, `[1,"a"]`, `{"c":[{"c":[]}]}`, `{"id":"x","lines":[]}`}
	for i, old := range seeds {
		f.Add(old, seeds[(i+1)%len(seeds)], []byte(instances[i%len(instances)]))
		f.Add(seeds[(i+3)%len(seeds)], old, []byte(instances[(i+2)%len(instances)]))
	}
	f.Fuzz(func(t *testing.T, old, new, instance []byte) {
		in, err := schemas.InputBreaks(old, new)
		if err != nil {
			return
		}
		out, err := schemas.OutputBreaks(old, new)
		if err != nil {
			t.Fatalf("OutputBreaks failed where InputBreaks did not: %v", err)
		}
		if again, _ := schemas.InputBreaks(old, new); !slices.Equal(again, in) {
			t.Fatalf("InputBreaks not deterministic: %q, then %q", lines(in), lines(again))
		}

		// A schema is compatible with itself, in the same bytes and in other
		// bytes, whichever it is.
		for _, s := range [][]byte{old, new} {
			spaced := append(bytes.Clone(s), ' ')
			for _, other := range [][]byte{s, spaced} {
				if c, err := schemas.InputBreaks(s, other); err != nil || c != nil {
					t.Fatalf("InputBreaks(s, s) = %q, %v", lines(c), err)
				}
				if c, err := schemas.OutputBreaks(s, other); err != nil || c != nil {
					t.Fatalf("OutputBreaks(s, s) = %q, %v", lines(c), err)
				}
			}
		}

		// No changes must mean what it says, for the instance at hand.
		oldSchema, err1 := schemas.Compile(old)
		newSchema, err2 := schemas.Compile(new)
		doc, err3 := schemas.Decode(instance, schemas.DecodeLimits{})
		if err1 != nil || err2 != nil || err3 != nil {
			return
		}
		oldOK, newOK := oldSchema.Validate(doc), newSchema.Validate(doc)
		if in == nil && oldOK == nil && newOK != nil {
			t.Fatalf("no input changes, but the new schema rejects %s, which the old accepts: %v", instance, newOK)
		}
		if out == nil && newOK == nil && oldOK != nil {
			// Fields old callers do not know are allowed in outputs.
			for _, v := range oldOK {
				if v.Message != "unknown property" {
					t.Fatalf("no output changes, but the old schema rejects %s, which the new accepts: %v", instance, oldOK)
				}
			}
		}
	})
}

// TestBreaksAgreeWithValidator generates schemas and small changes to them,
// and holds every "no changes" verdict to what the validator says about
// sample values: whatever the old input schema accepted, the new one must
// accept; whatever the new output schema allows, the old one must allow,
// fields the old one did not name aside.
func TestBreaksAgreeWithValidator(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := &schemaGen{rng: rng}
	var values []any
	for range 150 {
		values = append(values, g.value(0))
	}
	pairs, silent := 500, 0
	if testing.Short() {
		pairs = 100
	}
	for range pairs {
		old := g.document()
		new := g.mutate(old, 0)
		oldRaw, _ := json.Marshal(old)
		newRaw, _ := json.Marshal(new)
		oldSchema, err1 := schemas.Compile(oldRaw)
		newSchema, err2 := schemas.Compile(newRaw)
		if err1 != nil || err2 != nil {
			continue
		}
		in, err := schemas.InputBreaks(oldRaw, newRaw)
		if err != nil {
			t.Fatal(err)
		}
		out, err := schemas.OutputBreaks(oldRaw, newRaw)
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := schemas.InputBreaks(oldRaw, append(slices.Clone(oldRaw), ' ')); c != nil {
			t.Fatalf("%s against itself: %q", oldRaw, lines(c))
		}
		if in == nil || out == nil {
			silent++
		}
		for _, v := range values {
			raw, _ := json.Marshal(v)
			doc, err := schemas.Decode(raw, schemas.DecodeLimits{})
			if err != nil {
				t.Fatal(err)
			}
			oldErrs, newErrs := oldSchema.Validate(doc), newSchema.Validate(doc)
			if in == nil && oldErrs == nil && newErrs != nil {
				t.Fatalf("no input changes from\n%s\nto\n%s\nbut %s is no longer accepted: %v", oldRaw, newRaw, raw, newErrs)
			}
			if out == nil && newErrs == nil && oldErrs != nil &&
				slices.ContainsFunc(oldErrs, func(v schemas.Violation) bool { return v.Message != "unknown property" }) {
				t.Fatalf("no output changes from\n%s\nto\n%s\nbut %s is newly allowed: %v", oldRaw, newRaw, raw, oldErrs)
			}
		}
	}
	// The generator must give the check something to agree with.
	if silent < pairs/20 {
		t.Errorf("only %d of %d pairs had no changes one way or the other", silent, pairs)
	}
}

// schemaGen makes small random schemas and values from a vocabulary chosen
// so that they often meet: few property names, few numbers, few strings.
type schemaGen struct {
	rng *rand.Rand
}

var (
	genNumbers  = []any{json.Number("-1"), json.Number("0"), json.Number("1"), json.Number("2"), json.Number("2.5"), json.Number("10")}
	genStrings  = []any{"", "a", "ab", "AB-1", "b", "a@example.com", "2024-01-02T03:04:05Z"}
	genNames    = []string{"a", "b", "c"}
	genPatterns = []any{"^a", "^[A-Z]{2}-[0-9]+$", "b$"}
	genTypes    = []any{"string", "integer", "number", "boolean", "null", "object", "array"}
)

func (g *schemaGen) pick(from []any) any { return from[g.rng.IntN(len(from))] }

func (g *schemaGen) value(depth int) any {
	switch n := g.rng.IntN(10); {
	case n < 2 && depth < 3:
		var arr []any
		for range g.rng.IntN(4) {
			arr = append(arr, g.value(depth+1))
		}
		return append([]any{}, arr...)
	case n < 4 && depth < 3:
		obj := map[string]any{}
		for _, name := range genNames {
			if g.rng.IntN(2) == 0 {
				obj[name] = g.value(depth + 1)
			}
		}
		return obj
	case n < 6:
		return g.pick(genNumbers)
	case n < 8:
		return g.pick(genStrings)
	default:
		return g.pick([]any{nil, true, false})
	}
}

// document returns a schema, sometimes with a definition that refers to
// itself.
func (g *schemaGen) document() any {
	if g.rng.IntN(5) > 0 {
		return g.schema(0)
	}
	def := map[string]any{
		"type":       "object",
		"properties": map[string]any{"a": g.schema(2), "kids": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/node"}}},
	}
	return map[string]any{"$defs": map[string]any{"node": def}, "$ref": "#/$defs/node"}
}

func (g *schemaGen) schema(depth int) any {
	if depth > 3 {
		return map[string]any{"type": g.pick(genTypes)}
	}
	switch g.rng.IntN(12) {
	case 0:
		return g.pick([]any{true, false, map[string]any{}})
	case 1:
		var vals []any
		for range 1 + g.rng.IntN(3) {
			vals = append(vals, g.value(2))
		}
		return map[string]any{"enum": vals}
	case 2:
		return map[string]any{"const": g.value(2)}
	case 3:
		return map[string]any{g.pick([]any{"anyOf", "oneOf"}).(string): []any{g.schema(depth + 1), g.schema(depth + 1)}}
	case 4:
		return map[string]any{"allOf": []any{g.schema(depth + 1), g.keywords(g.pick(genTypes).(string), depth)}}
	case 5:
		return map[string]any{"type": []any{g.pick(genTypes), "null"}}
	case 6:
		return map[string]any{"not": g.schema(depth + 1)}
	}
	s := g.keywords(g.pick(genTypes).(string), depth)
	s["type"] = g.pick(genTypes)
	if g.rng.IntN(4) == 0 {
		delete(s, "type")
	}
	return s
}

// keywords returns a few keywords that apply to values of type t.
func (g *schemaGen) keywords(t string, depth int) map[string]any {
	s := map[string]any{}
	maybe := func(kw string, v func() any) {
		if g.rng.IntN(3) == 0 {
			s[kw] = v()
		}
	}
	number := func() any { return g.pick(genNumbers) }
	count := func() any { return json.Number(fmt.Sprint(g.rng.IntN(3))) }
	switch t {
	case "integer", "number":
		for _, kw := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
			maybe(kw, number)
		}
		maybe("multipleOf", func() any { return g.pick([]any{json.Number("0.5"), json.Number("1"), json.Number("2")}) })
	case "string":
		maybe("minLength", count)
		maybe("maxLength", count)
		maybe("pattern", func() any { return g.pick(genPatterns) })
		maybe("format", func() any { return g.pick([]any{"email", "date-time"}) })
	case "array":
		maybe("items", func() any { return g.schema(depth + 1) })
		maybe("prefixItems", func() any { return []any{g.schema(depth + 1)} })
		maybe("minItems", count)
		maybe("maxItems", count)
		maybe("uniqueItems", func() any { return true })
	case "object":
		props := map[string]any{}
		var required []any
		for _, name := range genNames {
			if g.rng.IntN(2) == 0 {
				props[name] = g.schema(depth + 1)
			}
			if g.rng.IntN(3) == 0 {
				required = append(required, name)
			}
		}
		s["properties"] = props
		if len(required) > 0 {
			s["required"] = required
		}
		maybe("additionalProperties", func() any { return g.pick([]any{false, map[string]any{"type": "string"}}) })
		maybe("patternProperties", func() any { return map[string]any{"^c": g.schema(depth + 1)} })
		maybe("minProperties", count)
		maybe("maxProperties", count)
	}
	return s
}

// mutate returns a copy of s with a few small changes.
func (g *schemaGen) mutate(s any, depth int) any {
	m, ok := s.(map[string]any)
	if !ok || g.rng.IntN(8) == 0 {
		if g.rng.IntN(3) == 0 {
			return g.schema(depth)
		}
		return s
	}
	out := map[string]any{}
	for kw, v := range m {
		out[kw] = v
	}
	for _, kw := range slices.Sorted(maps.Keys(m)) {
		v := m[kw]
		switch g.rng.IntN(6) {
		case 0:
			delete(out, kw)
			continue
		case 1:
			if _, isNum := v.(json.Number); isNum {
				out[kw] = g.pick(genNumbers)
				if strings.Contains(kw, "Length") || strings.Contains(kw, "Items") || strings.Contains(kw, "Properties") {
					out[kw] = json.Number(fmt.Sprint(g.rng.IntN(3)))
				}
				if kw == "multipleOf" {
					out[kw] = json.Number("2")
				}
			}
		}
		switch v := v.(type) {
		case map[string]any:
			if kw == "properties" || kw == "$defs" || kw == "patternProperties" {
				sub := map[string]any{}
				for name, p := range v {
					sub[name] = g.mutate(p, depth+1)
				}
				if kw == "properties" && g.rng.IntN(4) == 0 {
					sub[g.pick([]any{"a", "b", "c"}).(string)] = g.schema(depth + 1)
				}
				out[kw] = sub
			} else {
				out[kw] = g.mutate(v, depth+1)
			}
		case []any:
			if kw == "anyOf" || kw == "oneOf" || kw == "allOf" || kw == "prefixItems" {
				var subs []any
				for _, sub := range v {
					subs = append(subs, g.mutate(sub, depth+1))
				}
				if g.rng.IntN(2) == 0 {
					slices.Reverse(subs)
				}
				out[kw] = subs
			}
		}
	}
	if g.rng.IntN(5) == 0 {
		for kw, v := range g.keywords(g.pick(genTypes).(string), depth) {
			out[kw] = v
		}
	}
	return out
}
