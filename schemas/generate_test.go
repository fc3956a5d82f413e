package schemas

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The golden types cover what function authors write: required and optional
// fields, enums, bounds, nesting, slices, maps, time and pointers.
type goldenOrder struct {
	ID       string            `json:"id" jsonschema:"minLength=1,maxLength=64"`
	Customer goldenCustomer    `json:"customer"`
	Lines    []goldenLine      `json:"lines" jsonschema:"minItems=1"`
	Status   string            `json:"status" jsonschema:"enum=pending,enum=paid,enum=shipped"`
	Priority int               `json:"priority,omitempty" jsonschema:"minimum=1,maximum=5"`
	Labels   map[string]string `json:"labels,omitempty"`
	PlacedAt time.Time         `json:"placed_at"`
	Note     *string           `json:"note,omitempty"`
	Coupon   *goldenCoupon     `json:"coupon,omitzero"`
	Gift     *bool             `json:"gift,omitempty" jsonschema:"required"`
	Secret   string            `json:"-"`
	internal int
}

type goldenCustomer struct {
	Name  string  `json:"name"`
	Email string  `json:"email" jsonschema:"format=email"`
	Phone *string `json:"phone" jsonschema:"nullable"`
}

type goldenLine struct {
	SKU   string  `json:"sku" jsonschema:"pattern=^[A-Z]{2}-[0-9]+$"`
	Qty   int     `json:"qty" jsonschema:"minimum=1,maximum=100"`
	Price float64 `json:"price" jsonschema:"exclusiveMinimum=0"`
}

type goldenCoupon struct {
	Code    string `json:"code"`
	Percent int    `json:"percent" jsonschema:"enum=5,enum=10,enum=25"`
}

// goldenTree refers to itself, so it cannot be inlined.
type goldenTree struct {
	Name     string       `json:"name"`
	Children []goldenTree `json:"children,omitempty"`
}

func TestReflectGolden(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
	}{
		{"order", reflect.TypeFor[goldenOrder]()},
		{"order_pointer", reflect.TypeFor[*goldenOrder]()},
		{"line", reflect.TypeFor[goldenLine]()},
		{"lines", reflect.TypeFor[[]goldenLine]()},
		{"tree", reflect.TypeFor[goldenTree]()},
		{"any", reflect.TypeFor[any]()},
		{"string", reflect.TypeFor[string]()},
		{"empty_struct", reflect.TypeFor[struct{}]()},
		{"int_map", reflect.TypeFor[map[string]int]()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Reflect(tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Reflect(tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, again) {
				t.Fatalf("Reflect is not deterministic:\n%s\n%s", got, again)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, got); err != nil || !bytes.Equal(compact.Bytes(), got) {
				t.Fatalf("output is not compact JSON (%v): %s", err, got)
			}
			// Every generated schema must compile under the rules it is
			// checked with later.
			if _, err := Compile(got); err != nil {
				t.Fatalf("generated schema does not compile: %v\n%s", err, got)
			}

			// The golden file is indented for review; indenting is lossless,
			// so equality of the indented forms is equality of the bytes.
			var indented bytes.Buffer
			if err := json.Indent(&indented, got, "", "  "); err != nil {
				t.Fatal(err)
			}
			indented.WriteByte('\n')
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(indented.Bytes(), want) {
				t.Errorf("schema differs from %s (run go test -update if intended)\ngot:\n%s", path, indented.Bytes())
			}
		})
	}
}

func TestReflectProperties(t *testing.T) {
	raw, err := For[goldenOrder]()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Schema               string          `json:"$schema"`
		ID                   *string         `json:"$id"`
		Defs                 json.RawMessage `json:"$defs"`
		Required             []string        `json:"required"`
		AdditionalProperties *bool           `json:"additionalProperties"`
		Properties           map[string]struct {
			Format string `json:"format"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Schema != Draft202012 {
		t.Errorf("$schema = %q", s.Schema)
	}
	if s.ID != nil {
		t.Errorf("$id = %q, want none", *s.ID)
	}
	if s.Defs != nil {
		t.Errorf("$defs present in an inlined schema: %s", s.Defs)
	}
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Errorf("additionalProperties = %v, want false", s.AdditionalProperties)
	}
	wantRequired := []string{"id", "customer", "lines", "status", "placed_at", "gift"}
	if !reflect.DeepEqual(s.Required, wantRequired) {
		t.Errorf("required = %q, want %q", s.Required, wantRequired)
	}
	if _, ok := s.Properties["Secret"]; ok {
		t.Error(`json:"-" field is in the schema`)
	}
	if _, ok := s.Properties["internal"]; ok {
		t.Error("unexported field is in the schema")
	}
	if f := s.Properties["placed_at"].Format; f != "date-time" {
		t.Errorf("time.Time format = %q, want date-time", f)
	}
}

func TestForSimpleTypes(t *testing.T) {
	tests := []struct {
		name   string
		gen    func() ([]byte, error)
		accept []string
		refuse []string
	}{
		{"any", For[any], []string{`null`, `1`, `"s"`, `[1,{}]`, `{"a":{"b":[]}}`}, nil},
		{"string", For[string], []string{`""`, `"x"`}, []string{`1`, `null`, `{}`}},
		{"empty struct", For[struct{}], []string{`{}`}, []string{`{"a":1}`, `[]`, `null`}},
		{"int slice", For[[]int], []string{`[]`, `[1,2]`}, []string{`[1.5]`, `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := tt.gen()
			if err != nil {
				t.Fatal(err)
			}
			s, err := Compile(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range tt.accept {
				if vs := s.Validate(mustDecode(t, doc)); vs != nil {
					t.Errorf("%s refused: %v", doc, vs)
				}
			}
			for _, doc := range tt.refuse {
				if vs := s.Validate(mustDecode(t, doc)); vs == nil {
					t.Errorf("%s accepted", doc)
				}
			}
		})
	}
}

func TestReflectErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"nil", nil, "nil type"},
		{"chan", reflect.TypeFor[chan int](), "unsupported type chan int"},
		{"func field", reflect.TypeFor[struct{ F func() }](), "unsupported type func()"},
		{"complex", reflect.TypeFor[complex128](), "unsupported type complex128"},
		{"embeds itself", reflect.TypeFor[selfEmbedded](), "selfEmbedded embeds itself"},
		{"embeds itself through another", reflect.TypeFor[[]embedsA](), "embeds itself"},
		{"embeds itself inline", reflect.TypeFor[struct{ X inlineSelf }](), "inlineSelf embeds itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Reflect(tt.typ)
			if err == nil {
				t.Fatalf("no error, schema %s", b)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// Embedding loops are legal Go and fine for encoding/json, but the generator
// would recurse through them forever.
type (
	selfEmbedded struct {
		*selfEmbedded
		X int `json:"x"`
	}
	embedsA struct {
		*embedsB
		A int `json:"a"`
	}
	embedsB struct {
		*embedsA
		B int `json:"b"`
	}
	inlineSelf struct {
		Next *inlineSelf `json:"next,inline"`
	}
)

// Embedding the same type twice, or a named embedded field, is not a loop.
type (
	embedBase  struct{ ID string }
	embedTwice struct {
		embedBase
		Other embedHolder
	}
	embedHolder struct{ embedBase }
	namedEmbed  struct {
		*namedEmbed `json:"parent,omitempty"`
	}
)

func TestReflectEmbedding(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[embedTwice](), reflect.TypeFor[namedEmbed]()} {
		raw, err := Reflect(typ)
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		if _, err := Compile(raw); err != nil {
			t.Errorf("%s: %v\n%s", typ, err, raw)
		}
	}
}

// dupName shares its name with the type declared inside the test below. The
// generator files definitions by type name, so one must never be taken for
// the other.
type dupName struct {
	Inner string `json:"inner"`
}

type pkgDupName = dupName

func TestReflectSameNamedTypes(t *testing.T) {
	type dupName struct {
		Other pkgDupName `json:"other"`
		Leaf  int        `json:"leaf"`
	}
	s, raw := compileFor[dupName](t)
	if vs := s.Validate(mustDecode(t, `{"other":{"inner":"x"},"leaf":1}`)); vs != nil {
		t.Errorf("valid document refused: %v\nschema: %s", vs, raw)
	}
	vs := s.Validate(mustDecode(t, `{"other":{"inner":"x"},"leaf":"x"}`))
	if len(vs) != 1 || vs[0].Pointer != "/leaf" {
		t.Errorf("got %v, want one violation at /leaf\nschema: %s", vs, raw)
	}
}

func TestReflectRecursiveGeneric(t *testing.T) {
	// A recursive type reached through a generic type has a name with '/' and
	// '[' in it; its $defs key must still make a working reference.
	s, raw := compileFor[genericList[goldenTree]](t)
	doc := mustDecode(t, `{"items":[{"name":"a","children":[{"name":"b"}]}],"next":{"items":[]}}`)
	if vs := s.Validate(doc); vs != nil {
		t.Errorf("valid document refused: %v\nschema: %s", vs, raw)
	}
	doc = mustDecode(t, `{"items":[],"next":{"items":[{"name":"a","children":[{"name":1}]}]}}`)
	vs := s.Validate(doc)
	if len(vs) != 1 || vs[0].Pointer != "/next/items/0/children/0/name" {
		t.Errorf("got %v, want one violation at /next/items/0/children/0/name", vs)
	}
}

type genericList[T any] struct {
	Items []T             `json:"items"`
	Next  *genericList[T] `json:"next,omitempty"`
}

func mustDecode(t testing.TB, doc string) any {
	t.Helper()
	v, err := Decode([]byte(doc), DecodeLimits{})
	if err != nil {
		t.Fatalf("Decode(%s): %v", doc, err)
	}
	return v
}
