package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/switchyard-dev/switchyard/schemas"
)

// rootBase stands for the base URI of a function schema that has no $id:
// the name its own references resolve against.
const rootBase = "yard:///schema.json"

// embed turns a function's JSON Schema into the Schema Object kept at
// #/components/schemas/<key>. The schema must compile as the gateway
// compiles it. A reference into the schema itself ("#/$defs/x", "#", or
// its own $id) would, once the schema sits inside the OpenAPI document,
// resolve against the document's root, so it is rewritten to point under
// the component; the root's $id goes, and a $schema naming 2020-12 (the
// document's jsonSchemaDialect) goes too. Values are kept as written:
// numbers stay json.Number, so nothing is rounded.
func embed(raw []byte, key string) (any, error) {
	if _, err := schemas.Compile(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not valid JSON: data after the schema")
	}
	root, ok := doc.(map[string]any)
	if !ok {
		if _, isBool := doc.(bool); isBool {
			return doc, nil
		}
		return nil, fmt.Errorf("a schema is an object or a boolean, not %s", jsonKind(doc))
	}
	base, _ := url.Parse(rootBase)
	if id, ok := root["$id"].(string); ok {
		u, err := url.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("$id %q: %w", id, err)
		}
		base = base.ResolveReference(u)
		base.Fragment, base.RawFragment = "", ""
		delete(root, "$id")
	}
	if s, ok := root["$schema"].(string); ok && strings.TrimSuffix(s, "#") == schemas.Draft202012 {
		delete(root, "$schema")
	}
	rw := rewriter{root: base.String(), target: "#/components/schemas/" + escapeToken(key)}
	rw.walk(root, base)
	return root, nil
}

// rewriter points the references to a schema's own root under its
// component.
type rewriter struct {
	root   string // the schema's base URI, without fragment
	target string // the component, as a URI fragment reference
}

// walk rewrites the references in schema m, whose base URI is base, and
// in every subschema. Only schema positions are visited: a "$ref" inside
// an enum, a const or a property named "$ref" is data, and stays.
func (rw rewriter) walk(m map[string]any, base *url.URL) {
	if id, ok := m["$id"].(string); ok {
		// A nested resource: its own references resolve against it.
		if u, err := url.Parse(id); err == nil {
			base = base.ResolveReference(u)
			base.Fragment, base.RawFragment = "", ""
		}
	}
	for _, kw := range []string{"$ref", "$dynamicRef"} {
		if ref, ok := m[kw].(string); ok {
			m[kw] = rw.ref(ref, base)
		}
	}
	schemas.EachSubschema(m, func(_, _ string, sub any) {
		if sm, ok := sub.(map[string]any); ok {
			rw.walk(sm, base)
		}
	})
}

// ref returns ref rewritten when it points into the schema's root
// resource by JSON pointer. A plain-name fragment (an $anchor) is left as
// it is: anchors resolve within the document wherever they sit.
func (rw rewriter) ref(ref string, base *url.URL) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	abs := base.ResolveReference(u)
	frag := abs.EscapedFragment()
	abs.Fragment, abs.RawFragment = "", ""
	if abs.String() != rw.root {
		return ref
	}
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return "#" + frag
	}
	return rw.target + frag
}

// escapeToken escapes a JSON pointer token (RFC 6901) for use in a URI
// fragment.
func escapeToken(s string) string {
	s = strings.ReplaceAll(s, "~", "~0")
	s = strings.ReplaceAll(s, "/", "~1")
	return url.PathEscape(s)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}
