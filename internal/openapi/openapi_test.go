package openapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/switchyard-dev/switchyard/internal/openapi"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata: the shop's manifests (built with go run) and the golden document")

// shop lists the example functions whose manifests are kept in
// testdata/specs.
var shop = []string{"catalog", "greet", "inventory", "notify", "orders", "payments"}

// category refers to itself, so its generated schema keeps a $defs entry
// and $refs to it: the case the rewriting of references is for.
type category struct {
	Name     string     `json:"name" jsonschema:"minLength=1"`
	Kind     string     `json:"kind" jsonschema:"enum=leaf,enum=branch"`
	Children []category `json:"children,omitempty"`
}

type categoryCount struct {
	Count int       `json:"count"`
	Top   *category `json:"top,omitempty"`
}

// treeSpec is an authenticated function whose schemas come from the
// generator and hold $defs and $ref.
func treeSpec(t testing.TB) registry.Spec {
	t.Helper()
	in, err := schemas.Reflect(reflect.TypeFor[category]())
	if err != nil {
		t.Fatal(err)
	}
	out, err := schemas.Reflect(reflect.TypeFor[categoryCount]())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(in, []byte(`"$defs"`)) || !bytes.Contains(out, []byte(`"$defs"`)) {
		t.Fatalf("the generator inlined the recursive type: %s", in)
	}
	return registry.Spec{Name: "tree", Description: "Counts a category tree", Version: 3,
		InputSchema: in, OutputSchema: out, Timeout: registry.Duration(5 * time.Second)}
}

// shopSpecs reads the shop's manifests, first writing them anew from the
// functions' binaries with -update.
func shopSpecs(t testing.TB) []registry.Spec {
	t.Helper()
	var specs []registry.Spec
	for _, name := range shop {
		path := filepath.Join("testdata", "specs", name+".json")
		if *update {
			cmd := exec.Command("go", "run", "./functions/"+name, "--yard-manifest")
			cmd.Dir = filepath.Join("..", "..")
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("manifest of %s: %v", name, err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := registry.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		specs = append(specs, *s)
	}
	return specs
}

func allSpecs(t testing.TB) []registry.Spec {
	return append(shopSpecs(t), treeSpec(t))
}

var fullOptions = openapi.Options{Title: "Switchyard", Version: "test", ServerURL: "http://127.0.0.1:8080", OIDC: true, Operator: true}

func document(t testing.TB, specs []registry.Spec, opts openapi.Options) []byte {
	t.Helper()
	doc, err := openapi.Document(specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestGolden(t *testing.T) {
	got := document(t, allSpecs(t), fullOptions)
	path := filepath.Join("testdata", "openapi.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the document differs from %s; if the change is meant, run go test ./internal/openapi -update and review the diff", path)
	}
}

// validate checks doc against the OpenAPI 3.1 schema and builds its model,
// which fails on a reference that does not resolve.
func validate(t *testing.T, doc []byte) validator.Validator {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.GetSpecInfo().Version; v != "3.1.0" {
		t.Fatalf("libopenapi read version %q", v)
	}
	if _, err := d.BuildV3Model(); err != nil {
		t.Fatalf("model: %v", err)
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s (%s)", se.Reason, se.FieldPath, se.KeywordLocation)
			}
		}
		t.FailNow()
	}
	return v
}

func TestValidOpenAPI31(t *testing.T) {
	specs := allSpecs(t)
	for name, opts := range map[string]openapi.Options{
		"full":      fullOptions,
		"defaults":  {},
		"relative":  {ServerURL: "/"},
		"no specs":  {OIDC: true},
		"only tree": {Title: "t", Version: "1"},
	} {
		t.Run(name, func(t *testing.T) {
			in := specs
			switch name {
			case "no specs":
				in = nil
			case "only tree":
				in = []registry.Spec{treeSpec(t)}
			}
			validate(t, document(t, in, opts))
		})
	}
}

// Functions named like the platform's tags keep every tag unique, as
// OpenAPI requires.
func TestFunctionsNamedLikeTags(t *testing.T) {
	var specs []registry.Spec
	for _, name := range []string{"platform", "operator", "ops"} {
		s := treeSpec(t)
		s.Name = name
		specs = append(specs, s)
	}
	doc := document(t, specs, fullOptions)
	validate(t, doc)
	var d struct{ Tags []struct{ Name string } }
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tag := range d.Tags {
		if seen[tag.Name] {
			t.Errorf("tag %q twice", tag.Name)
		}
		seen[tag.Name] = true
	}
}

// An invalid document must fail the validation above, or passing it
// proves nothing.
func TestValidatorRefusesBrokenDocuments(t *testing.T) {
	doc := document(t, allSpecs(t), fullOptions)
	for name, breakIt := range map[string]func(m map[string]any){
		"no info":             func(m map[string]any) { delete(m, "info") },
		"response not object": func(m map[string]any) { path(m, "paths", "/fn", "get", "responses")["200"] = 5 },
		"bad parameter in":    func(m map[string]any) { path(m, "components", "parameters", "Async")["in"] = "body" },
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(doc, &m); err != nil {
				t.Fatal(err)
			}
			breakIt(m)
			broken, _ := json.Marshal(m)
			d, err := libopenapi.NewDocument(broken)
			if err != nil {
				t.Fatal(err)
			}
			v, errs := validator.NewValidator(d)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if ok, _ := v.ValidateDocument(); ok {
				t.Error("the validator took a broken document")
			}
		})
	}
}

func path(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

// The validator resolves the embedded schemas, $defs included, when it
// checks requests and responses against the document.
func TestRequestsAndResponsesAgainstTheDocument(t *testing.T) {
	v := validate(t, document(t, allSpecs(t), fullOptions))
	post := func(name, body string, header ...string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/fn/"+name, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer yk_abc")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	good := `{"name":"tea","kind":"branch","children":[{"name":"green","kind":"leaf"}]}`
	for _, c := range []struct {
		name string
		r    *http.Request
		ok   bool
	}{
		{"nested $defs", post("tree", good), true},
		{"nested enum broken", post("tree", `{"name":"tea","kind":"branch","children":[{"name":"green","kind":"bush"}]}`), false},
		{"nested required missing", post("tree", `{"name":"tea","kind":"branch","children":[{"kind":"leaf"}]}`), false},
		{"unknown property", post("tree", `{"name":"tea","kind":"leaf","colour":"red"}`), false},
		{"greet", post("greet", `{"name":"Ada","language":"fr"}`), true},
		{"greet bad enum", post("greet", `{"name":"Ada","language":"xx"}`), false},
		{"async", post("tree?async=1", good, "Idempotency-Key", "k-1"), true},
		{"bad async value", post("tree?async=maybe", good), false},
		{"bad request id", post("tree", good, "Yard-Request-Id", "no spaces"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ok, errs := v.ValidateHttpRequest(c.r)
			if ok != c.ok {
				t.Errorf("valid = %v, want %v: %v", ok, c.ok, errs)
			}
		})
	}

	respond := func(r *http.Request, status int, ctype, body string, header ...string) (bool, error) {
		w := httptest.NewRecorder()
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Yard-Request-Id", "r1")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		w.WriteString(body)
		ok, errs := v.ValidateHttpResponse(r, w.Result())
		if !ok {
			return false, errors.New(errs[0].Error())
		}
		return true, nil
	}
	problem := `{"type":"urn:switchyard:error:invalid_argument","title":"Bad Request","status":400,` +
		`"detail":"input does not match the schema of tree","code":"invalid_argument",` +
		`"errors":[{"pointer":"/name","message":"missing property \"name\""}],"request_id":"r1"}`
	for _, c := range []struct {
		name   string
		status int
		ctype  string
		body   string
		header []string
		ok     bool
	}{
		{"output with $defs", 200, "application/json", `{"count":2,"top":{"name":"tea","kind":"branch","children":[{"name":"g","kind":"leaf"}]}}`, nil, true},
		{"output breaking nested schema", 200, "application/json", `{"count":2,"top":{"name":"tea","kind":"tree"}}`, nil, false},
		{"problem", 400, "application/problem+json", problem, nil, true},
		{"problem with another code", 400, "application/problem+json", strings.ReplaceAll(problem, `"code":"invalid_argument"`, `"code":"internal"`), nil, false},
		{"accepted", 202, "application/json", `{"id":"o0123456789abcdef-x","status":"queued","status_url":"/invocations/o0123456789abcdef-x"}`, []string{"Location", "/invocations/o0123456789abcdef-x"}, true},
		{"rate limited", 429, "application/problem+json", `{"type":"urn:switchyard:error:resource_exhausted","title":"Too Many Requests","status":429,"code":"resource_exhausted","reason":"rate_limited"}`, []string{"Retry-After", "2"}, true},
	} {
		t.Run("response "+c.name, func(t *testing.T) {
			ok, err := respond(post("tree", good), c.status, c.ctype, c.body, c.header...)
			if ok != c.ok {
				t.Errorf("valid = %v, want %v: %v", ok, c.ok, err)
			}
		})
	}
}

// Under plain JSON Schema 2020-12 rules, with the document as the one
// resource, each embedded schema still means what the function's own
// schema means.
func TestEmbeddedSchemasKeepTheirMeaning(t *testing.T) {
	spec := treeSpec(t)
	doc := document(t, []registry.Spec{spec}, openapi.Options{})
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	if err := c.AddResource("yard:///openapi.json", bytes.NewReader(doc)); err != nil {
		t.Fatal(err)
	}
	embedded, err := c.Compile("yard:///openapi.json#/components/schemas/tree.input")
	if err != nil {
		t.Fatal(err)
	}
	own, err := schemas.Compile(spec.InputSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		`{"name":"a","kind":"leaf"}`,
		`{"name":"a","kind":"branch","children":[{"name":"b","kind":"leaf","children":[{"name":"c","kind":"leaf"}]}]}`,
		`{"name":"a","kind":"branch","children":[{"name":"b","kind":"leaf","children":[{"name":"","kind":"leaf"}]}]}`,
		`{"name":"a","kind":"branch","children":[{"name":"b","kind":"twig"}]}`,
		`{"name":"a","kind":"leaf","children":[{}]}`,
		`{"name":"a"}`,
		`[]`,
	} {
		var v any
		if err := json.Unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		ownOK := len(own.Validate(v)) == 0
		embeddedOK := embedded.Validate(v) == nil
		if ownOK != embeddedOK {
			t.Errorf("%s: valid for the function %v, for the document %v", in, ownOK, embeddedOK)
		}
	}
}

func schemaOf(t *testing.T, doc []byte, key string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	s, ok := path(m, "components", "schemas")[key].(map[string]any)
	if !ok {
		t.Fatalf("no schema %s", key)
	}
	return s
}

func TestReferencesRewritten(t *testing.T) {
	in := `{
	  "$schema": "https://json-schema.org/draft/2020-12/schema",
	  "$id": "https://example.com/shape.json",
	  "type": "object",
	  "properties": {
	    "self": {"$ref": "#"},
	    "byID": {"$ref": "https://example.com/shape.json#/$defs/a"},
	    "relative": {"$ref": "shape.json#/$defs/a"},
	    "a": {"$ref": "#/$defs/a"},
	    "odd": {"$ref": "#/$defs/a~1b"},
	    "anchored": {"$ref": "#here"},
	    "data": {"enum": [{"$ref": "#/$defs/a"}], "const": {"$ref": "#"}, "default": {"$ref": "#"}},
	    "$ref": {"type": "string"},
	    "nested": {"$id": "https://example.com/inner.json", "$defs": {"x": {"type": "integer"}}, "$ref": "#/$defs/x"}
	  },
	  "$defs": {"a": {"type": "string", "$anchor": "here"}, "a/b": {"type": "number"}}
	}`
	spec := registry.Spec{Name: "shape", InputSchema: []byte(in), OutputSchema: []byte(`true`), Timeout: registry.Duration(time.Second)}
	doc := document(t, []registry.Spec{spec}, openapi.Options{})
	s := schemaOf(t, doc, "shape.input")
	if _, ok := s["$id"]; ok {
		t.Error("the root $id was kept")
	}
	if _, ok := s["$schema"]; ok {
		t.Error("a 2020-12 $schema was kept")
	}
	props := s["properties"].(map[string]any)
	for prop, want := range map[string]string{
		"self":     "#/components/schemas/shape.input",
		"byID":     "#/components/schemas/shape.input/$defs/a",
		"relative": "#/components/schemas/shape.input/$defs/a",
		"a":        "#/components/schemas/shape.input/$defs/a",
		"odd":      "#/components/schemas/shape.input/$defs/a~1b",
		"anchored": "#here",
		"nested":   "#/$defs/x",
	} {
		if got := props[prop].(map[string]any)["$ref"]; got != want {
			t.Errorf("%s: $ref %v, want %s", prop, got, want)
		}
	}
	data, _ := json.Marshal(props["data"])
	if want := `{"const":{"$ref":"#"},"default":{"$ref":"#"},"enum":[{"$ref":"#/$defs/a"}]}`; string(data) != want {
		t.Errorf("values were rewritten: %s", data)
	}
	if got := props["$ref"].(map[string]any)["type"]; got != "string" {
		t.Errorf("the property named $ref: %v", props["$ref"])
	}
}

func TestBooleanAndLargeNumbers(t *testing.T) {
	spec := registry.Spec{Name: "num", InputSchema: []byte(`{"type":"integer","maximum":9007199254740993,"minimum":-1e400}`),
		OutputSchema: []byte(`false`), Timeout: registry.Duration(time.Second)}
	doc := document(t, []registry.Spec{spec}, openapi.Options{})
	if !bytes.Contains(doc, []byte(`"maximum": 9007199254740993`)) || !bytes.Contains(doc, []byte(`"minimum": -1e400`)) {
		t.Errorf("numbers were not kept as written:\n%s", doc)
	}
	if !bytes.Contains(doc, []byte(`"num.output": false`)) {
		t.Error("the boolean schema is not embedded as it is")
	}
}

func TestBrokenSpecsAreErrors(t *testing.T) {
	good := treeSpec(t)
	for name, mutate := range map[string]func(s *registry.Spec){
		"input not JSON":          func(s *registry.Spec) { s.InputSchema = []byte(`{"type":`) },
		"output not JSON":         func(s *registry.Spec) { s.OutputSchema = []byte(`{"type":"object"}}`) },
		"empty schema":            func(s *registry.Spec) { s.InputSchema = nil },
		"schema a number":         func(s *registry.Spec) { s.InputSchema = []byte(`42`) },
		"schema does not compile": func(s *registry.Spec) { s.InputSchema = []byte(`{"type":"objekt"}`) },
		"external $ref":           func(s *registry.Spec) { s.InputSchema = []byte(`{"$ref":"https://example.com/x.json"}`) },
		"dangling $ref":           func(s *registry.Spec) { s.OutputSchema = []byte(`{"$ref":"#/$defs/nope"}`) },
		"duplicate keys":          func(s *registry.Spec) { s.InputSchema = []byte(`{"type":"object","type":"string"}`) },
		"bad name":                func(s *registry.Spec) { s.Name = "Tree/../x" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := good
			mutate(&bad)
			doc, err := openapi.Document([]registry.Spec{shopSpecs(t)[1], bad}, fullOptions)
			if err == nil {
				t.Fatalf("no error; document:\n%.300s", doc)
			}
			if doc != nil {
				t.Error("a document came with the error")
			}
			var se *openapi.SpecError
			if !errors.As(err, &se) || se.Name != bad.Name {
				t.Errorf("error %v is not a SpecError for %q", err, bad.Name)
			}
			if openapi.Check(bad) == nil {
				t.Error("Check took the spec")
			}
		})
	}
	if err := openapi.Check(good); err != nil {
		t.Errorf("Check(good): %v", err)
	}
	if _, err := openapi.Document([]registry.Spec{good, good}, openapi.Options{}); err == nil {
		t.Error("two specs named alike gave no error")
	}
	if _, err := openapi.Document(nil, openapi.Options{ServerURL: "http://[::1"}); err == nil {
		t.Error("an unparsable server URL gave no error")
	}
}

func TestDeterministic(t *testing.T) {
	specs := allSpecs(t)
	first := document(t, specs, fullOptions)
	reversed := slices.Clone(specs)
	slices.Reverse(reversed)
	for range 5 {
		if again := document(t, reversed, fullOptions); !bytes.Equal(first, again) {
			t.Fatal("two runs differ")
		}
	}
	if !slices.EqualFunc(specs, allSpecs(t), func(a, b registry.Spec) bool { return a.Name == b.Name }) {
		t.Error("Document reordered its argument")
	}
}

// operations returns method → operation for a path of doc.
func operations(t *testing.T, doc []byte, p string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	item, ok := path(m, "paths")[p].(map[string]any)
	if !ok {
		t.Fatalf("no path %s", p)
	}
	return item
}

func TestOperationsAndSecurity(t *testing.T) {
	doc := document(t, allSpecs(t), fullOptions)
	anyone := `[{},{"apiKey":[]},{"oidc":[]}]`
	needsOne := `[{"apiKey":[]},{"oidc":[]}]`
	for _, c := range []struct {
		path, method, id, security string
		statuses                   []string
	}{
		{"/fn/greet", "post", "invoke_greet", anyone, []string{"200", "202", "400", "401", "403", "404", "409", "413", "415", "429", "500", "503", "504"}},
		{"/fn/greet", "get", "describe_greet", anyone, []string{"200", "400", "401", "404", "429"}},
		{"/fn/tree", "post", "invoke_tree", needsOne, []string{"200", "202", "400", "401", "403", "404", "409", "413", "415", "429", "500", "503", "504"}},
		{"/fn/tree", "get", "describe_tree", needsOne, []string{"200", "400", "401", "403", "404", "429"}},
		{"/fn", "get", "listFunctions", anyone, []string{"200", "400", "401", "429"}},
		{"/invocations/{id}", "get", "getInvocation", anyone, []string{"200", "400", "401", "404", "429", "500"}},
		{"/readyz", "get", "readyz", `[{}]`, []string{"200", "400", "503"}},
	} {
		op := operations(t, doc, c.path)[c.method].(map[string]any)
		if op["operationId"] != c.id {
			t.Errorf("%s %s: operationId %v, want %s", c.method, c.path, op["operationId"], c.id)
		}
		if sec, _ := json.Marshal(op["security"]); string(sec) != c.security {
			t.Errorf("%s: security %s, want %s", c.id, sec, c.security)
		}
		var statuses []string
		for s := range op["responses"].(map[string]any) {
			statuses = append(statuses, s)
		}
		slices.Sort(statuses)
		if !slices.Equal(statuses, c.statuses) {
			t.Errorf("%s: responses %v, want %v", c.id, statuses, c.statuses)
		}
	}

	// Without OIDC there is one scheme, and no requirement names another.
	plain := document(t, allSpecs(t), openapi.Options{})
	if bytes.Contains(plain, []byte(`"oidc"`)) {
		t.Error("the oidc scheme appears without Options.OIDC")
	}
	// Every shop function has both routes.
	for _, name := range shop {
		ops := operations(t, doc, "/fn/"+name)
		if ops["post"] == nil || ops["get"] == nil {
			t.Errorf("/fn/%s lacks an operation", name)
		}
	}
}
