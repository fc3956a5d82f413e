// Package schemas turns the Go input and output types of Switchyard functions
// into JSON Schema, compiles those schemas, and checks untrusted JSON against
// them.
//
// A schema's life has three steps. A function's binary generates its schemas
// from its Go types with Reflect or For and prints them in its manifest. At
// deploy time the registry stores them and compares versions by Hash. Every
// gateway and function instance then compiles each schema once with Compile
// and, per request, parses the body with Decode and checks it with
// Schema.Validate, which reports each offending field by JSON pointer.
//
// Schemas are JSON Schema draft 2020-12 and self-contained: Compile refuses to
// fetch anything over the network or from disk, so a schema can be handled as
// plain data wherever it travels.
package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
)

// Draft202012 is the meta-schema URI that generated schemas declare.
const Draft202012 = "https://json-schema.org/draft/2020-12/schema"

// Reflect returns the JSON Schema of the Go type t as compact JSON.
//
// The schema follows encoding/json: field names come from json tags, and a
// field is required unless its tag says omitempty or omitzero (a
// jsonschema:"required" tag makes it required anyway). Structs allow no
// properties beyond their fields. Validation keywords come from jsonschema
// tags, e.g. `jsonschema:"minimum=1,maximum=100"` or
// `jsonschema:"enum=card,enum=cash"`; time.Time is a string with format
// date-time.
//
// Definitions are written inline, so the schema needs nothing besides itself
// and carries no $id. A recursive type cannot be inlined; it gets a "$ref" to
// its entry under "$defs" in the same document instead. A pointer stands for
// its element type and does not admit null; tag the field
// jsonschema:"nullable" where null is a meaningful value.
//
// For types without structure the result is:
//
//	any (or any interface)   {"$schema":"…"}                     accepts every value
//	string                   {"$schema":"…","type":"string"}
//	struct{}                 {"$schema":"…","properties":{},"additionalProperties":false,"type":"object"}
//
// Channels, functions and complex numbers have no JSON form and give an
// error, as does a struct that embeds itself.
// The output depends only on t, so it can be compared and hashed.
func Reflect(t reflect.Type) (b []byte, err error) {
	if t == nil {
		return nil, errors.New("schemas: reflect: nil type")
	}
	// The generator panics on types it cannot express; for callers that is an
	// ordinary error about their type.
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("schemas: reflect %s: %v", t, r)
		}
	}()
	r := &jsonschema.Reflector{
		// Without Anonymous the generator invents an https $id from the Go
		// package path, which would look like a place to fetch the schema from.
		Anonymous:      true,
		DoNotReference: true,
		// ExpandedStruct is left off: with DoNotReference the root is inline
		// already, and ExpandedStruct would pick the root by type name, which
		// goes wrong when a nested type shares the root's name.
	}
	// The generator flattens embedded structs into their parent by
	// recursion, so a struct that embeds itself, even through a pointer or
	// other embedded structs, would exhaust the stack, which no recover
	// survives. encoding/json copes with such types; the generator does not.
	if e := selfEmbedding(t); e != nil {
		return nil, fmt.Errorf("schemas: reflect %s: %s embeds itself", t, e)
	}
	if recursive(t) {
		// Inlining a recursive type would never end, so refer to definitions
		// instead. The root stays a $ref, because the generator deletes the
		// root's definition when it expands it, leaving nested $refs dangling.
		r.DoNotReference = false
		r.Namer = newDefNamer().name
	}
	s := r.ReflectFromType(t)
	// The generator keeps its draft in a package variable; pin ours.
	s.Version = Draft202012
	return json.Marshal(s)
}

// For returns the JSON Schema of T; see Reflect.
func For[T any]() ([]byte, error) {
	return Reflect(reflect.TypeFor[T]())
}

// recursive reports whether t refers to itself through the fields the
// generator follows. It errs towards true (a field whose type has its own
// JSONSchema method is followed anyway); that only costs inlining.
func recursive(t reflect.Type) bool {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[reflect.Type]int)
	var visit func(t reflect.Type) bool
	visit = func(t reflect.Type) bool {
		switch state[t] {
		case visiting:
			return true
		case done:
			return false
		}
		state[t] = visiting
		defer func() { state[t] = done }()
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return visit(t.Elem())
		case reflect.Map:
			return visit(t.Key()) || visit(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if !f.IsExported() && !f.Anonymous {
					continue
				}
				if f.Tag.Get("json") == "-" {
					continue
				}
				if visit(f.Type) {
					return true
				}
			}
		}
		return false
	}
	return visit(t)
}

// selfEmbedding returns a struct type reachable from t that embeds itself,
// or nil. Embedding follows the generator's rules: an anonymous struct or
// struct pointer field without a JSON name, or any field tagged json:",inline".
func selfEmbedding(t reflect.Type) reflect.Type {
	const (
		visiting = 1
		done     = 2
	)
	embedState := make(map[reflect.Type]int)
	// embeds walks the embedding graph from a struct type; meeting a type
	// still being walked closes a loop.
	var embeds func(t reflect.Type) reflect.Type
	embeds = func(t reflect.Type) reflect.Type {
		switch embedState[t] {
		case visiting:
			return t
		case done:
			return nil
		}
		embedState[t] = visiting
		for i := range t.NumField() {
			f := t.Field(i)
			if e, ok := embedded(f); ok {
				if loop := embeds(e); loop != nil {
					return loop
				}
			}
		}
		embedState[t] = done
		return nil
	}

	seen := make(map[reflect.Type]bool)
	var visit func(t reflect.Type) reflect.Type
	visit = func(t reflect.Type) reflect.Type {
		if seen[t] {
			return nil
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return visit(t.Elem())
		case reflect.Map:
			return visit(t.Elem())
		case reflect.Struct:
			if loop := embeds(t); loop != nil {
				return loop
			}
			for i := range t.NumField() {
				if loop := visit(t.Field(i).Type); loop != nil {
					return loop
				}
			}
		}
		return nil
	}
	return visit(t)
}

// embedded reports whether the generator merges field f into its parent, and
// the struct type whose fields it merges.
func embedded(f reflect.StructField) (reflect.Type, bool) {
	jsonTag := strings.Split(f.Tag.Get("json"), ",")
	if jsonTag[0] == "-" || strings.Split(f.Tag.Get("jsonschema"), ",")[0] == "-" {
		return nil, false
	}
	t := f.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, false
	}
	if f.Anonymous && jsonTag[0] == "" {
		return t, true
	}
	return t, slices.Contains(jsonTag[1:], "inline")
}

// defNamer names $defs entries for recursive types. The generator would use
// the bare type name, which collides across packages and, for generic types,
// contains '/' and '[' that break the "#/$defs/<name>" reference.
type defNamer struct {
	names map[reflect.Type]string
	taken map[string]bool
}

func newDefNamer() *defNamer {
	return &defNamer{names: make(map[reflect.Type]string), taken: make(map[string]bool)}
}

func (n *defNamer) name(t reflect.Type) string {
	if t.Name() == "" {
		return ""
	}
	if s, ok := n.names[t]; ok {
		return s
	}
	base := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, t.Name())
	s := base
	for i := 2; n.taken[s]; i++ {
		s = base + "_" + strconv.Itoa(i)
	}
	n.names[t] = s
	n.taken[s] = true
	return s
}
