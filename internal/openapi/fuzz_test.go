package openapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/openapi"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// FuzzDocument feeds arbitrary bytes as a function's schemas: Document
// must not panic, and what it returns without an error is JSON that holds
// the function.
func FuzzDocument(f *testing.F) {
	for _, s := range []string{
		`{"type":"object"}`, `true`, `42`, `{"$ref":"#"}`, `{"$id":"x:/a","$ref":"x:/a#/$defs/b","$defs":{"b":{}}}`,
		`{"properties":{"a":{"$ref":"#/properties/a"}}}`, `{"$dynamicRef":"#/$defs/x","$defs":{"x":{"$dynamicAnchor":"m"}}}`,
		`{"allOf":[{"$ref":"#/$defs/%7e"}],"$defs":{"~":{}}}`, `{"$id":"::","type":"string"}`, `{`,
	} {
		f.Add([]byte(s), []byte(`{"type":"string"}`))
	}
	f.Fuzz(func(t *testing.T, in, out []byte) {
		spec := registry.Spec{Name: "f", InputSchema: in, OutputSchema: out, Timeout: registry.Duration(time.Second)}
		doc, err := openapi.Document([]registry.Spec{spec}, openapi.Options{})
		if err != nil {
			if doc != nil {
				t.Fatal("a document came with an error")
			}
			return
		}
		var m struct {
			Components struct {
				Schemas map[string]json.RawMessage `json:"schemas"`
			} `json:"components"`
		}
		if !json.Valid(doc) || json.Unmarshal(doc, &m) != nil {
			t.Fatalf("not JSON:\n%s", doc)
		}
		if m.Components.Schemas["f.input"] == nil || m.Components.Schemas["f.output"] == nil {
			t.Fatal("the function's schemas are missing")
		}
	})
}
