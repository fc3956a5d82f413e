package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   string
	}{
		{"empty", ``, "not valid JSON: empty body"},
		{"truncated", `{"type":`, "not valid JSON: unexpected end of JSON input"},
		{"trailing data", `{} {}`, "not valid JSON: trailing data"},
		{"duplicate keys", `{"type":"string","type":"integer"}`, `duplicate key "type"`},
		{"unknown type", `{"type":"strin"}`, `schema is not valid: /type: value must be one of "array"`},
		{"bad minimum", `{"minimum":"1"}`, "schema is not valid: /minimum: expected number, but got string"},
		{"bad regexp", `{"pattern":"(["}`, "schema is not valid: /pattern"},
		{"missing internal ref", `{"$ref":"#/$defs/nope"}`, "#/$defs/nope not found"},
		{"broken unused definition", `{"$defs":{"x":{"$ref":"#/$defs/nope"}}}`, "#/$defs/nope not found"},
		{"not a schema", `42`, "schema is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]byte(tt.schema))
			if err == nil {
				t.Fatalf("compiled: %s", s.Raw())
			}
			if !strings.HasPrefix(err.Error(), "schemas: compile: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), schemaURL) {
				t.Errorf("error %q exposes the internal URL", err)
			}
		})
	}
}

func TestCompileBlocksExternalRefs(t *testing.T) {
	// Real targets that would make Compile succeed if it fetched them: a
	// server on loopback and a schema file on disk.
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"type":"string"}`))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "string.json")
	if err := os.WriteFile(file, []byte(`{"type":"string"}`), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		schema string
		url    string
	}{
		{"http", `{"$ref":"` + srv.URL + `/s.json"}`, srv.URL + "/s.json"},
		{"https", `{"$ref":"https://example.com/s.json"}`, "https://example.com/s.json"},
		{"file", `{"$ref":"file://` + file + `"}`, "file://" + file},
		{"passwd", `{"$ref":"file:///etc/passwd"}`, "file:///etc/passwd"},
		{"relative", `{"$ref":"other.json#/x"}`, "other.json"},
		{"nested", `{"properties":{"a":{"items":{"$ref":"http://127.0.0.1:1/x"}}}}`, "http://127.0.0.1:1/x"},
		{"in unused defs", `{"$defs":{"x":{"$ref":"https://example.com/x"}}}`, "https://example.com/x"},
		{"in nested unused defs", `{"properties":{"a":{"$defs":{"x/y":{"definitions":{"z":{"$ref":"file:///etc/passwd"}}}}}}}`, "file:///etc/passwd"},
		{"remote $id base", `{"$id":"https://example.com/root.json","$ref":"sibling.json"}`, "https://example.com/sibling.json"},
		{"custom meta-schema", `{"$schema":"` + srv.URL + `/meta"}`, srv.URL + "/meta"},
		{"urn", `{"$ref":"urn:example:thing"}`, "urn:example:thing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]byte(tt.schema))
			if err == nil {
				t.Fatalf("compiled: %s", s.Raw())
			}
			if !errors.Is(err, ErrExternalRef) {
				t.Errorf("error %q does not wrap ErrExternalRef", err)
			}
			if !strings.Contains(err.Error(), "blocked") || !strings.Contains(err.Error(), tt.url) {
				t.Errorf("error %q should say %q is blocked", err, tt.url)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server was asked %d times", n)
	}
}

func TestCompileInternalRefs(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		valid  string
		bad    string
		ptr    string
	}{
		{
			"defs",
			`{"$defs":{"qty":{"type":"integer","minimum":1}},"properties":{"q":{"$ref":"#/$defs/qty"}}}`,
			`{"q":1}`, `{"q":0}`, "/q",
		},
		{
			"anchor",
			`{"$defs":{"x":{"$anchor":"name","type":"string"}},"items":{"$ref":"#name"}}`,
			`["a"]`, `["a",1]`, "/1",
		},
		{
			"remote $id resolved in place",
			`{"$id":"https://example.com/s.json","$defs":{"x":{"type":"string"}},"$ref":"#/$defs/x"}`,
			`"a"`, `1`, "",
		},
		{
			"recursive",
			`{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}},"n":{"type":"integer"}}}`,
			`{"kids":[{"kids":[{"n":1}]}]}`, `{"kids":[{"kids":[{"n":"x"}]}]}`, "/kids/0/kids/0/n",
		},
		{
			"draft 7",
			`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/s"}}}`,
			`{"a":"x"}`, `{"a":1}`, "/a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]byte(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			if vs := s.Validate(mustDecode(t, tt.valid)); vs != nil {
				t.Errorf("%s refused: %v", tt.valid, vs)
			}
			vs := s.Validate(mustDecode(t, tt.bad))
			if len(vs) != 1 || vs[0].Pointer != tt.ptr {
				t.Errorf("%s: got %v, want one violation at %q", tt.bad, vs, tt.ptr)
			}
		})
	}
}

func TestSchemaRawAndHash(t *testing.T) {
	raw := []byte(`{"type": "string"}`)
	s, err := Compile(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[2] = 'X' // the caller's buffer is theirs to reuse
	if got := string(s.Raw()); got != `{"type": "string"}` {
		t.Errorf("Raw() = %s", got)
	}
	s.Raw()[0] = '[' // and Raw hands out a copy
	if got := string(s.Raw()); got != `{"type": "string"}` {
		t.Errorf("Raw() = %s after writing to a previous result", got)
	}
	if s.Hash() != Hash([]byte(`{"type":"string"}`)) {
		t.Errorf("Hash() = %s, want the hash of the canonical form", s.Hash())
	}
}

// orderSchema compiles the golden order type, the schema most validation
// tests run against.
func orderSchema(t testing.TB) *Schema {
	t.Helper()
	s, _ := compileFor[goldenOrder](t)
	return s
}

// compileFor generates the schema of T and compiles it.
func compileFor[T any](t testing.TB) (*Schema, []byte) {
	t.Helper()
	raw, err := For[T]()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return s, raw
}

// validOrder is a document that satisfies orderSchema; tests break it in one
// place at a time.
const validOrder = `{
	"id": "ord-1",
	"customer": {"name": "Ada", "email": "ada@example.com", "phone": null},
	"lines": [{"sku": "BK-1", "qty": 2, "price": 12.5}, {"sku": "PN-22", "qty": 1, "price": 3}],
	"status": "paid",
	"placed_at": "2024-05-01T12:34:56Z",
	"gift": false
}`

// edit decodes validOrder and applies f to it.
func edit(t *testing.T, f func(m map[string]any)) any {
	t.Helper()
	m := mustDecode(t, validOrder).(map[string]any)
	f(m)
	return m
}

func obj(v any) map[string]any { return v.(map[string]any) }

func TestValidate(t *testing.T) {
	s := orderSchema(t)
	tests := []struct {
		name string
		doc  func(t *testing.T) any
		want []Violation
	}{
		{"valid", func(t *testing.T) any { return mustDecode(t, validOrder) }, nil},
		{"valid with optionals", func(t *testing.T) any {
			return edit(t, func(m map[string]any) {
				m["priority"] = json.Number("5")
				m["labels"] = map[string]any{"a": "b"}
				m["note"] = "ring twice"
				m["coupon"] = map[string]any{"code": "X", "percent": json.Number("10")}
			})
		}, nil},
		{"missing required, one per field", func(t *testing.T) any { return mustDecode(t, `{}`) }, []Violation{
			{"/customer", `missing property "customer"`},
			{"/gift", `missing property "gift"`},
			{"/id", `missing property "id"`},
			{"/lines", `missing property "lines"`},
			{"/placed_at", `missing property "placed_at"`},
			{"/status", `missing property "status"`},
		}},
		{"missing nested", func(t *testing.T) any {
			return edit(t, func(m map[string]any) {
				delete(obj(m["customer"]), "name")
				delete(obj(m["customer"]), "email")
			})
		}, []Violation{
			{"/customer/email", `missing property "email"`},
			{"/customer/name", `missing property "name"`},
		}},
		{"missing in array item", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { delete(obj(m["lines"].([]any)[1]), "qty") })
		}, []Violation{{"/lines/1/qty", `missing property "qty"`}}},
		{"wrong type", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["id"] = json.Number("7") })
		}, []Violation{{"/id", "expected string, but got number"}}},
		{"fraction for integer", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { obj(m["lines"].([]any)[0])["qty"] = json.Number("1.5") })
		}, []Violation{{"/lines/0/qty", "expected integer, but got number"}}},
		{"below minimum", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { obj(m["lines"].([]any)[1])["qty"] = json.Number("0") })
		}, []Violation{{"/lines/1/qty", "must be >= 1 but found 0"}}},
		{"above maximum", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["priority"] = json.Number("6") })
		}, []Violation{{"/priority", "must be <= 5 but found 6"}}},
		{"exclusive minimum", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { obj(m["lines"].([]any)[0])["price"] = json.Number("0") })
		}, []Violation{{"/lines/0/price", "must be > 0 but found 0"}}},
		{"string enum", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["status"] = "lost" })
		}, []Violation{{"/status", `value must be one of "pending", "paid", "shipped"`}}},
		{"integer enum", func(t *testing.T) any {
			return edit(t, func(m map[string]any) {
				m["coupon"] = map[string]any{"code": "X", "percent": json.Number("50")}
			})
		}, []Violation{{"/coupon/percent", "value must be one of 5, 10, 25"}}},
		{"unknown properties", func(t *testing.T) any {
			return edit(t, func(m map[string]any) {
				m["extra"] = true
				m["a b"] = true
				m["x/y~z"] = true
				obj(m["customer"])["it's \"quoted\""] = 1
				obj(m["lines"].([]any)[0])["colour"] = "red"
			})
		}, []Violation{
			{"/a b", "unknown property"},
			{"/customer/it's \"quoted\"", "unknown property"},
			{"/extra", "unknown property"},
			{"/lines/0/colour", "unknown property"},
			{"/x~1y~0z", "unknown property"},
		}},
		{"array items, sorted by index", func(t *testing.T) any {
			lines := make([]any, 12)
			for i := range lines {
				lines[i] = map[string]any{"sku": "AB-1", "qty": json.Number("1"), "price": json.Number("1")}
			}
			obj(lines[10])["qty"] = json.Number("101")
			obj(lines[2])["sku"] = "bad"
			obj(lines[1])["qty"] = "1"
			return edit(t, func(m map[string]any) { m["lines"] = lines })
		}, []Violation{
			{"/lines/1/qty", "expected integer, but got string"},
			{"/lines/2/sku", "does not match pattern '^[A-Z]{2}-[0-9]+$'"},
			{"/lines/10/qty", "must be <= 100 but found 101"},
		}},
		{"empty array", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["lines"] = []any{} })
		}, []Violation{{"/lines", "minimum 1 items required, but found 0 items"}}},
		{"date-time format", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["placed_at"] = "not-a-date" })
		}, []Violation{{"/placed_at", "must be a valid date-time"}}},
		{"email format", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { obj(m["customer"])["email"] = "ada-at-example" })
		}, []Violation{{"/customer/email", "must be a valid email"}}},
		{"nullable of the wrong type", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { obj(m["customer"])["phone"] = json.Number("5") })
		}, []Violation{{"/customer/phone", "expected string or null, but got number"}}},
		{"null for a pointer field", func(t *testing.T) any {
			return edit(t, func(m map[string]any) { m["note"] = nil })
		}, []Violation{{"/note", "expected string, but got null"}}},
		{"everything at once", func(t *testing.T) any {
			return edit(t, func(m map[string]any) {
				delete(m, "id")
				m["status"] = json.Number("1")
				obj(m["lines"].([]any)[0])["qty"] = json.Number("0")
				m["placed_at"] = "yesterday"
				m["zzz"] = 1
			})
		}, []Violation{
			{"/id", `missing property "id"`},
			{"/lines/0/qty", "must be >= 1 but found 0"},
			{"/placed_at", "must be a valid date-time"},
			{"/status", "expected string, but got number"},
			{"/zzz", "unknown property"},
		}},
		{"root of the wrong type", func(t *testing.T) any { return mustDecode(t, `[]`) }, []Violation{
			{"", "expected object, but got array"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Validate(tt.doc(t))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestValidateKeywords covers keywords that generated schemas do not use but
// hand-written ones may.
func TestValidateKeywords(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		doc    string
		want   []Violation
	}{
		{
			"required with odd names",
			`{"required":["a/b","c~d","e f","'q'","\"dq\"","back\\slash","ünï"]}`,
			`{}`,
			[]Violation{
				{`/"dq"`, `missing property "\"dq\""`},
				{"/'q'", `missing property "'q'"`},
				{"/a~1b", `missing property "a/b"`},
				{`/back\slash`, `missing property "back\\slash"`},
				{"/c~0d", `missing property "c~d"`},
				{"/e f", `missing property "e f"`},
				{"/ünï", `missing property "ünï"`},
			},
		},
		{
			"required inside array",
			`{"type":"array","items":{"required":["id"]}}`,
			`[{"id":1},{},{}]`,
			[]Violation{{"/1/id", `missing property "id"`}, {"/2/id", `missing property "id"`}},
		},
		{
			"unevaluatedProperties",
			`{"properties":{"a":true},"unevaluatedProperties":false}`,
			`{"a":1,"b":2}`,
			[]Violation{{"/b", "unknown property"}},
		},
		{
			"additionalProperties schema",
			`{"additionalProperties":{"type":"integer"}}`,
			`{"a":1,"b":"x"}`,
			[]Violation{{"/b", "expected integer, but got string"}},
		},
		{
			"anyOf keeps the branch of the right type",
			`{"anyOf":[{"type":"string","minLength":3},{"type":"integer"}]}`,
			`"ab"`,
			[]Violation{{"", "length must be >= 3, but got 2"}},
		},
		{
			"oneOf of objects reports each branch",
			`{"oneOf":[{"type":"object","required":["card"]},{"type":"object","required":["iban"]}]}`,
			`{}`,
			[]Violation{{"/card", `missing property "card"`}, {"/iban", `missing property "iban"`}},
		},
		{
			"oneOf matching twice",
			`{"oneOf":[{"type":"integer"},{"minimum":0}]}`,
			`1`,
			[]Violation{{"", "valid against schemas at indexes 0 and 1"}},
		},
		{
			"minContains is about the count",
			`{"contains":{"type":"string"},"minContains":2}`,
			`["a",1,2]`,
			[]Violation{{"", "must contain at least 2 matching items, but has 1"}},
		},
		{
			"contains alone",
			`{"items":{"contains":{"type":"string"}}}`,
			`[[1]]`,
			[]Violation{{"/0", "must contain at least 1 matching item, but has 0"}},
		},
		{
			"maxContains",
			`{"contains":{"type":"string"},"maxContains":1}`,
			`["a","b"]`,
			[]Violation{{"", "must contain at most 1 matching item, but has 2"}},
		},
		{
			"dependentRequired points at the missing property",
			`{"properties":{"card":{"dependentRequired":{"number":["cvc","expiry"]}}}}`,
			`{"card":{"number":"4111"}}`,
			[]Violation{
				{"/card/cvc", `missing property "cvc", required with "number"`},
				{"/card/expiry", `missing property "expiry", required with "number"`},
			},
		},
		{
			"draft 7 dependencies",
			`{"$schema":"http://json-schema.org/draft-07/schema#","dependencies":{"a":["b"]}}`,
			`{"a":1}`,
			[]Violation{{"/b", `missing property "b", required with "a"`}},
		},
		{
			"enum tells numbers from strings",
			`{"enum":["5",5,null,{"a":[1]}]}`,
			`6`,
			[]Violation{{"", `value must be one of "5", 5, null, {"a":[1]}`}},
		},
		{
			"enum inside a resource with its own $id",
			`{"$defs":{"p":{"$id":"https://example.com/p.json","enum":[1,2]}},"properties":{"p":{"$ref":"https://example.com/p.json"}}}`,
			`{"p":3}`,
			[]Violation{{"/p", "value must be one of 1, 2"}},
		},
		{
			"const",
			`{"properties":{"v":{"const":2}}}`,
			`{"v":3}`,
			[]Violation{{"/v", "value must be 2"}},
		},
		{
			"false schema",
			`{"properties":{"gone":false}}`,
			`{"gone":1}`,
			[]Violation{{"/gone", "not allowed"}},
		},
		{
			"big integer is compared exactly",
			`{"maximum":9007199254740993}`,
			`9007199254740994`,
			[]Violation{{"", "must be <= 9007199254740993 but found 9007199254740994"}},
		},
		{
			"long values are cut short",
			`{"multipleOf":2}`,
			`1` + strings.Repeat("1", 300),
			[]Violation{{"", strings.Repeat("1", 200) + "…"}},
		},
		{
			"uuid format",
			`{"format":"uuid"}`,
			`"nope"`,
			[]Violation{{"", "must be a valid uuid"}},
		},
		{
			"duplicate violations are merged",
			`{"allOf":[{"required":["a"]},{"required":["a"]}]}`,
			`{}`,
			[]Violation{{"/a", `missing property "a"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile([]byte(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			got := s.Validate(mustDecode(t, tt.doc))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestValidateGoValues covers values that did not come from Decode.
func TestValidateGoValues(t *testing.T) {
	s := orderSchema(t)
	var order goldenOrder
	if err := json.Unmarshal([]byte(validOrder), &order); err != nil {
		t.Fatal(err)
	}
	if vs := s.Validate(order); vs != nil {
		t.Errorf("struct value refused: %v", vs)
	}
	order.Lines[0].Qty = 0
	if vs := s.Validate(&order); len(vs) != 1 || vs[0].Pointer != "/lines/0/qty" {
		t.Errorf("got %v, want one violation at /lines/0/qty", vs)
	}
	if vs := s.Validate(json.RawMessage(validOrder)); vs != nil {
		t.Errorf("raw message refused: %v", vs)
	}

	num, err := Compile([]byte(`{"type":"number","minimum":0}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{1, 2.5, int64(3), uint8(4)} {
		if vs := num.Validate(v); vs != nil {
			t.Errorf("%T %v refused: %v", v, v, vs)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), make(chan int), map[string]any{"x": func() {}}} {
		vs := num.Validate(v)
		if len(vs) != 1 || vs[0].Pointer != "" {
			t.Errorf("%T: got %v, want one violation at the root", v, vs)
		}
	}
}

func TestValidateConcurrent(t *testing.T) {
	s := orderSchema(t)
	docs := []string{validOrder, `{}`, `{"id":1,"lines":[{"qty":0}]}`}
	want := make([][]Violation, len(docs))
	for i, d := range docs {
		want[i] = s.Validate(mustDecode(t, d))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				n := (g + i) % len(docs)
				doc, err := Decode([]byte(docs[n]), DecodeLimits{})
				if err != nil {
					t.Error(err)
					return
				}
				if got := s.Validate(doc); !reflect.DeepEqual(got, want[n]) {
					t.Errorf("doc %d: got %v, want %v", n, got, want[n])
					return
				}
			}
		})
	}
	// Compiling at the same time must not disturb validation either.
	for range 4 {
		wg.Go(func() { orderSchema(t) })
	}
	wg.Wait()
}

func TestParseQuotedList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`'a'`, []string{"a"}},
		{`'a', 'b c', ''`, []string{"a", "b c", ""}},
		{`'it\'s', 'say "hi"', 'back\\slash\'', 'tab\t'`, []string{"it's", `say "hi"`, `back\slash'`, "tab\t"}},
		{`'\x00\xff', 'ü'`, []string{"\x00\xff", "ü"}},
		{`'a', `, nil},
		{`'a'b`, nil},
		{`'unterminated`, nil},
		{`'bad\`, nil},
		{`'a','b'`, nil},
		{``, nil},
	}
	for _, tt := range tests {
		got, ok := parseQuotedList(tt.in)
		if ok != (tt.want != nil) || !slices.Equal(got, tt.want) {
			t.Errorf("parseQuotedList(%s) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestComparePointers(t *testing.T) {
	sorted := []string{"", "/a", "/a/0", "/a/2", "/a/9", "/a/10", "/a/01", "/a/10!", "/a/5!", "/a/b", "/a~1b", "/b", "/b/x/y"}
	got := slices.Clone(sorted)
	slices.Reverse(got)
	slices.SortFunc(got, comparePointers)
	if !slices.Equal(got, sorted) {
		t.Errorf("sorted to %q, want %q", got, sorted)
	}
}

// fuzzSchema exercises most keyword kinds that flatten treats specially.
const fuzzSchema = `{
	"type": "object",
	"required": ["id", "a'b"],
	"properties": {
		"id": {"type": "integer", "minimum": 1},
		"tags": {"type": "array", "items": {"type": "string", "format": "email"}, "uniqueItems": true},
		"kind": {"enum": ["x", "y"]},
		"at": {"type": "string", "format": "date-time"},
		"alt": {"anyOf": [{"type": "string"}, {"type": "object", "required": ["k"]}]},
		"one": {"oneOf": [{"type": "integer"}, {"type": "number", "maximum": 5}]},
		"nested": {"$ref": "#"},
		"many": {"contains": {"const": 1}, "minContains": 2}
	},
	"patternProperties": {"^p_": {"type": "boolean"}},
	"additionalProperties": false
}`

func FuzzValidate(f *testing.F) {
	s, err := Compile([]byte(fuzzSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{}`, `[]`, `null`, `1`, `"s"`,
		`{"id":1,"a'b":2}`,
		`{"id":0,"tags":["a","a",1],"kind":"z","at":"x","alt":{},"one":1,"p_x":1,"q":1}`,
		`{"nested":{"nested":{"id":"x","a/b":1,"~":2}},"many":[1,2]}`,
		`{"id":1e400,"one":2.5,"alt":[],"a'b":null}`,
		validOrder,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Decode(data, DecodeLimits{})
		if err != nil {
			return
		}
		vs := s.Validate(doc)
		if valid := s.compiled.Validate(doc) == nil; valid != (vs == nil) {
			t.Fatalf("validator says valid=%v, Validate returned %q", valid, vs)
		}
		for i, v := range vs {
			if v.Message == "" {
				t.Errorf("violation %d has no message: %q", i, vs)
			}
			if i > 0 && comparePointers(vs[i-1].Pointer, v.Pointer) > 0 {
				t.Errorf("violations not sorted: %q", vs)
			}
			if i > 0 && vs[i-1] == v {
				t.Errorf("duplicate violation: %q", vs)
			}
			// The pointer names a value in the document, or for a missing
			// property the object that lacks it.
			if _, ok := resolve(doc, v.Pointer); !ok {
				parent := v.Pointer[:strings.LastIndexByte(v.Pointer, '/')+1]
				parent = strings.TrimSuffix(parent, "/")
				if _, ok := resolve(doc, parent); !ok || !strings.HasPrefix(v.Message, "missing property") {
					t.Errorf("pointer %q resolves to nothing (%q)", v.Pointer, v.Message)
				}
			}
		}
	})
}

// resolve follows an RFC 6901 pointer through a decoded document.
func resolve(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if ptr[0] != '/' {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[tok]; !ok {
				return nil, false
			}
		case []any:
			n, err := parseIndex(tok)
			if err != nil || n >= len(v) {
				return nil, false
			}
			doc = v[n]
		default:
			return nil, false
		}
	}
	return doc, true
}

func parseIndex(tok string) (int, error) {
	var n int
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, errors.New("bad index")
	}
	for _, c := range tok {
		if c < '0' || c > '9' || n > 1<<30 {
			return 0, errors.New("bad index")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// FuzzCompile feeds schema documents to Compile: it must answer with a schema
// or an error, and a compiled schema must validate anything without panicking.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`true`, `{}`, fuzzSchema, `{"$ref":"#/$defs/a","$defs":{"a":{"type":"string"}}}`,
		`{"$ref":"http://example.com/x"}`, `{"$schema":"http://json-schema.org/draft-04/schema#","items":[{}]}`,
		`{"enum":[1,"1",null],"const":{"a":[]}}`, `{"dependentRequired":{"a":["b"]},"minContains":0,"contains":{}}`,
	} {
		f.Add([]byte(seed))
	}
	docs := []any{nil, true, json.Number("1.5"), "s", []any{json.Number("1"), "a"}, map[string]any{"a": map[string]any{}, "b": []any{}}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Compile(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "schemas: compile: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			// Compile survives panics in the compiler, but each one is a
			// bug worth knowing about.
			if strings.Contains(err.Error(), "runtime error") || strings.Contains(err.Error(), "interface conversion") {
				t.Fatalf("compiler panicked on %q: %v", raw, err)
			}
			return
		}
		for _, doc := range docs {
			for _, v := range s.Validate(doc) {
				if strings.HasPrefix(v.Message, "cannot validate value") {
					t.Fatalf("validating %#v panicked: %s", doc, v.Message)
				}
			}
		}
	})
}

func BenchmarkCompile(b *testing.B) {
	raw, err := For[goldenOrder]()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(raw); err != nil {
			b.Fatal(err)
		}
	}
}
