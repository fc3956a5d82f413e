package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Change is one difference between two versions of a schema that can break
// callers. `yard deploy` refuses a version with changes unless forced, and
// prints each one.
//
// Pointer is an RFC 6901 pointer into the instance (the request or response
// body), not into the schema: "" for the root, "/address/zip" for a field.
// The token "*" stands for every element of an array ("/lines/*/qty") and
// for every value of an object whose key the schema does not name (the values
// of a map); the message tells the two apart ("lines[*].qty", "labels.*").
// A property literally named "*" is written the same way. A change about a
// property's presence (required_added, property_removed, required_removed)
// points at the property.
//
// Kind is a stable identifier. For input schemas (see InputBreaks):
//
//	required_added                a field is now required
//	property_removed              a field was dropped from an object that allows no other fields
//	additional_properties_closed  an object no longer accepts fields it does not name
//	type_narrowed                 a JSON type is no longer accepted (null, non-integer numbers, …)
//	enum_added                    a free value is now limited to a list
//	enum_value_removed            a listed value is no longer accepted
//	minimum_raised, maximum_lowered, multiple_of_changed
//	min_length_raised, max_length_lowered, pattern_changed, format_added, format_changed
//	min_items_raised, max_items_lowered, unique_items_added
//	min_properties_raised, max_properties_lowered
//
// For output schemas (see OutputBreaks) the mirror images: property_removed
// (a field old callers always received is gone), required_removed, type_widened,
// enum_removed, enum_value_added, minimum_lowered, maximum_raised,
// multiple_of_changed, min_length_lowered, max_length_raised, pattern_changed,
// format_removed, format_changed, min_items_lowered, max_items_raised,
// unique_items_removed, min_properties_lowered, max_properties_raised.
//
// Kind "unknown" marks a change the check could not prove safe: a keyword it
// does not model changed, alternatives that overlap, or a schema too large to
// compare. It is reported as breaking.
type Change struct {
	Pointer string `json:"pointer"`
	Kind    string `json:"kind"`
	// Message says what changed, for people; it starts in lower case and is
	// not meant to be parsed.
	Message string `json:"message"`
}

// InputBreaks lists the changes from oldSchema to newSchema, both input
// schemas of a function, that would reject some input oldSchema accepted:
// a new required field, a narrowed type or range, a removed enum value, a
// field removed from a closed object. Widening is safe: an optional field
// added to a closed object, an integer that becomes a number, a required
// field that becomes optional.
//
// The result is sorted by pointer, then kind, and nil when the new schema
// accepts everything the old one did. The comparison errs towards reporting:
// whatever it cannot prove compatible, such as a changed pattern, is a change.
// Both schemas must compile (see Compile); otherwise the error says which
// one does not.
func InputBreaks(oldSchema, newSchema []byte) ([]Change, error) {
	return breaks(oldSchema, newSchema, input)
}

// OutputBreaks lists the changes from oldSchema to newSchema, both output
// schemas of a function, that could produce output callers written against
// oldSchema do not expect: a field they always received is gone or may be
// missing, a type or range is wider, an enum has a new value.
//
// Adding fields to an object is not a change: callers are expected to ignore
// fields they do not know, as encoding/json does, even where the old schema
// said additionalProperties:false. Everything else follows InputBreaks with
// the roles of the schemas reversed.
func OutputBreaks(oldSchema, newSchema []byte) ([]Change, error) {
	return breaks(oldSchema, newSchema, output)
}

// direction says which way a comparison goes. The comparer always proves
// "every instance of a is an instance of b": for inputs a is the old schema
// and b the new one, for outputs the reverse. The direction picks the kinds
// and the words of the report, and the tolerance for unknown output fields.
type direction uint8

const (
	input direction = iota
	output
)

// compatError reports a schema that cannot be compared because it does not
// compile.
type compatError struct {
	which string // "old" or "new"
	err   error
}

func (e *compatError) Error() string {
	msg := strings.TrimPrefix(e.err.Error(), "schemas: compile: ")
	return "schemas: compat: " + e.which + " schema: " + msg
}

func (e *compatError) Unwrap() error { return e.err }

func breaks(oldRaw, newRaw []byte, dir direction) ([]Change, error) {
	oldSchema, oldDoc, err := compatDocument("old", oldRaw)
	if err != nil {
		return nil, err
	}
	newSchema, newDoc, err := compatDocument("new", newRaw)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(oldRaw, newRaw) {
		return nil, nil
	}
	for _, d := range []struct {
		which string
		doc   any
	}{{"old", oldDoc}, {"new", newDoc}} {
		if why := unsupported(d.doc); why != "" {
			if oldSchema.Hash() == newSchema.Hash() {
				return nil, nil
			}
			return []Change{{
				Kind:    kindUnknown,
				Message: "the schemas could not be proved compatible: the " + d.which + " schema " + why,
			}}, nil
		}
	}
	a, b := oldDoc, newDoc
	if dir == output {
		a, b = newDoc, oldDoc
	}
	return newComparer(dir, a, b).run(), nil
}

// compatDocument checks that raw is a schema Compile accepts, so that the
// comparison can rely on well-formed keywords, and returns it compiled and
// decoded.
func compatDocument(which string, raw []byte) (*Schema, any, error) {
	s, doc, err := compile(raw)
	if err != nil {
		return nil, nil, &compatError{which, err}
	}
	return s, doc, nil
}

// unsupported says why a schema is beyond the comparison, "" when it is not.
// Another draft gives keywords other meanings; a nested $id changes what
// every $ref beneath it refers to.
func unsupported(doc any) string {
	root, ok := doc.(map[string]any)
	if !ok {
		return ""
	}
	if s, ok := root["$schema"].(string); ok && !isDraft202012(s) {
		return fmt.Sprintf("declares %q, and only draft 2020-12 is understood", s)
	}
	nested := false
	var walk func(v any, isRoot bool)
	walk = func(v any, isRoot bool) {
		m, ok := v.(map[string]any)
		if !ok || nested {
			return
		}
		if _, ok := m["$id"]; ok && !isRoot {
			nested = true
			return
		}
		EachSubschema(m, func(_, _ string, sub any) { walk(sub, false) })
	}
	walk(root, true)
	if nested {
		return "has an $id below its root, which the check does not follow"
	}
	return ""
}

// isDraft202012 reports whether a $schema value names draft 2020-12 as the
// validator reads it: with or without a trailing '#', over http or https.
func isDraft202012(s string) bool {
	s = strings.TrimSuffix(s, "#")
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		s = "https://" + rest
	}
	return s == Draft202012
}

// Bounds on the work of one comparison. Schemas come from function authors,
// but a deploy must not hang on a pathological one: past these limits the
// comparison stops and reports that it could not prove compatibility.
const (
	maxCompareSteps = 200_000
	maxCompareDepth = 1_000
	maxEvalDepth    = 64
)

// Kinds. The input and output names of one rule are a pair: the same
// difference reads as narrowing for inputs and widening for outputs.
const (
	kindUnknown         = "unknown"
	kindPropertyRemoved = "property_removed"
	kindClosed          = "additional_properties_closed"
)

type kindPair struct{ in, out string }

var (
	kindType        = kindPair{"type_narrowed", "type_widened"}
	kindRequired    = kindPair{"required_added", "required_removed"}
	kindEnum        = kindPair{"enum_added", "enum_removed"}
	kindEnumValue   = kindPair{"enum_value_removed", "enum_value_added"}
	kindMinimum     = kindPair{"minimum_raised", "minimum_lowered"}
	kindMaximum     = kindPair{"maximum_lowered", "maximum_raised"}
	kindMultipleOf  = kindPair{"multiple_of_changed", "multiple_of_changed"}
	kindMinLength   = kindPair{"min_length_raised", "min_length_lowered"}
	kindMaxLength   = kindPair{"max_length_lowered", "max_length_raised"}
	kindPattern     = kindPair{"pattern_changed", "pattern_changed"}
	kindFormat      = kindPair{"format_added", "format_removed"}
	kindFormatOther = kindPair{"format_changed", "format_changed"}
	kindMinItems    = kindPair{"min_items_raised", "min_items_lowered"}
	kindMaxItems    = kindPair{"max_items_lowered", "max_items_raised"}
	kindUnique      = kindPair{"unique_items_added", "unique_items_removed"}
	kindMinProps    = kindPair{"min_properties_raised", "min_properties_lowered"}
	kindMaxProps    = kindPair{"max_properties_lowered", "max_properties_raised"}
)

// Keywords by how the comparison treats them. Anything else is an annotation
// (title, default, $comment, contentEncoding, …) and never matters.
var (
	// modelled keywords are compared by meaning.
	modelled = []string{
		"type", "enum", "const",
		"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
		"minLength", "maxLength", "pattern", "format",
		"items", "prefixItems", "minItems", "maxItems", "uniqueItems",
		"properties", "patternProperties", "additionalProperties", "required",
		"minProperties", "maxProperties",
	}
	// structural keywords are taken apart before comparing.
	structural = []string{"$ref", "allOf", "anyOf", "oneOf", "unevaluatedProperties", "unevaluatedItems"}
	// opaqueGroups are not modelled: in the wider schema a group must be
	// unchanged. Keywords in one group depend on each other.
	opaqueGroups = [][]string{
		{"not"}, {"if", "then", "else"}, {"contains", "minContains", "maxContains"},
		{"propertyNames"}, {"dependentRequired"}, {"dependentSchemas"}, {"dependencies"},
		{"$dynamicRef"}, {"$recursiveRef"},
	}
	// combinatorGroups apply to the instance independently of their
	// siblings, so an identical group on both sides can be set aside.
	combinatorGroups = [][]string{{"$ref"}, {"allOf"}, {"anyOf"}, {"oneOf"}, {"not"}, {"if", "then", "else"}}
	// siblingGroups are keywords whose meaning depends on each other, which
	// must stay together when schemas are merged or set aside.
	siblingGroups = [][]string{
		{"properties", "patternProperties", "additionalProperties"},
		{"items", "prefixItems"},
		{"contains", "minContains", "maxContains"},
		{"if", "then", "else"},
	}
	assertion = func() map[string]bool {
		m := make(map[string]bool)
		for _, kw := range slices.Concat(modelled, structural) {
			m[kw] = true
		}
		for _, g := range opaqueGroups {
			for _, kw := range g {
				m[kw] = true
			}
		}
		return m
	}()
)

// typeMask is a set of JSON types. Integers and other numbers are separate
// bits, so that "number" is tInt|tFrac and integer ⊂ number falls out of
// set operations.
type typeMask uint8

const (
	tNull typeMask = 1 << iota
	tBool
	tObject
	tArray
	tString
	tInt
	tFrac

	tNumber = tInt | tFrac
	tAll    = tNull | tBool | tObject | tArray | tString | tNumber
)

// node is a schema together with the document it belongs to, which its
// $refs resolve against, and a location that identifies it: the JSON pointer
// of the subschema in its document, plus a suffix for schemas the comparison
// derived from it. Equal locations mean equal schemas.
//
// The subschemas of a derived schema are still where they were, so their
// locations extend src, the location of the subschema whose keywords the
// node has, or per keyword origins, for a schema merged from several. That
// keeps the locations met inside a recursive type from growing, so the
// comparison recognises a pair it has met before.
type node struct {
	v       any
	root    any
	loc     string
	src     string
	origins map[string]string
}

// subschema returns the node for the subschema v at location loc. Schemas
// that accept everything or nothing are the same wherever they are, and get
// one location each.
func subschema(v, root any, loc string) node {
	switch {
	case isFalse(v):
		loc = "#false"
	case v == true || trivial(asMap(v)):
		loc = "#true"
	}
	return node{v: v, root: root, loc: loc, src: loc}
}

// derive returns a node for v, a schema made from n's keywords.
func (n node) derive(v any, suffix string) node {
	return node{v: v, root: n.root, loc: n.loc + suffix, src: n.src, origins: n.origins}
}

// origin returns the location of the subschema keyword kw comes from.
func (n node) origin(kw string) string {
	if o, ok := n.origins[kw]; ok {
		return o
	}
	return n.src
}

// at returns the location of the value of keyword kw.
func (n node) at(kw string) string { return n.origin(kw) + "/" + kw }

// segment is one step of an instance path.
type segment struct {
	kind  segmentKind
	name  string // property name
	index int    // prefixItems index
}

type segmentKind uint8

const (
	segProperty segmentKind = iota
	segItem                 // every array element
	segIndex                // one array element
	segKey                  // every value under a key the schema does not name
)

type path []segment

func (p path) with(s segment) path {
	q := make(path, len(p), len(p)+1)
	copy(q, p)
	return append(q, s)
}

func (p path) pointer() string {
	var b strings.Builder
	for _, s := range p {
		b.WriteByte('/')
		switch s.kind {
		case segProperty:
			b.WriteString(escapeToken(s.name))
		case segIndex:
			b.WriteString(strconv.Itoa(s.index))
		default:
			b.WriteByte('*')
		}
	}
	return b.String()
}

// display writes the path the way people write field paths: "lines[*].qty".
func (p path) display() string {
	var b strings.Builder
	for i, s := range p {
		switch s.kind {
		case segProperty, segKey:
			if i > 0 {
				b.WriteByte('.')
			}
			if s.kind == segKey {
				b.WriteByte('*')
			} else {
				b.WriteString(s.name)
			}
		case segItem:
			b.WriteString("[*]")
		case segIndex:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	return b.String()
}

// comparer proves that every instance of one schema is an instance of
// another, and records every place where it cannot.
//
// The proof follows the structure of the two schemas side by side. Where
// both sides pass through $ref into definitions that refer to themselves
// (recursive types), a pair of locations met again on the way down is
// assumed to hold: any counterexample would be a finite instance, and it
// would have shown up at the first visit. That keeps recursive types finite.
type comparer struct {
	dir        direction
	aRoot      any
	bRoot      any
	defsShared bool // both documents have identical, self-contained $defs and definitions
	changes    []Change
	active     map[string]bool
	steps      int
	depth      int
	gaveUp     bool
	regexps    map[string]*regexp.Regexp
}

func newComparer(dir direction, a, b any) *comparer {
	c := &comparer{
		dir:     dir,
		aRoot:   a,
		bRoot:   b,
		active:  make(map[string]bool),
		regexps: make(map[string]*regexp.Regexp),
	}
	c.defsShared = sharedDefinitions(a, b)
	return c
}

func (c *comparer) run() []Change {
	c.check(subschema(c.aRoot, c.aRoot, ""), subschema(c.bRoot, c.bRoot, ""), nil)
	out := c.changes
	if c.gaveUp {
		out = append(out, Change{
			Kind:    kindUnknown,
			Message: "the schemas are too large or too deeply nested to compare, so they could not be proved compatible",
		})
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(x, y Change) int {
		if d := comparePointers(x.Pointer, y.Pointer); d != 0 {
			return d
		}
		if d := strings.Compare(x.Kind, y.Kind); d != 0 {
			return d
		}
		return strings.Compare(x.Message, y.Message)
	})
	return slices.Compact(out)
}

// check records why some instance of a may not be an instance of b.
func (c *comparer) check(a, b node, p path) {
	if c.gaveUp {
		return
	}
	c.steps++
	c.depth++
	defer func() { c.depth-- }()
	if c.steps > maxCompareSteps || c.depth > maxCompareDepth {
		c.gaveUp = true
		return
	}
	key := a.loc + "\x00" + b.loc
	if c.active[key] {
		return
	}
	c.active[key] = true
	defer delete(c.active, key)
	c.compare(a, b, p)
}

// trial runs check and takes back what it recorded, returning how many
// changes it found.
func (c *comparer) trial(a, b node, p path) int {
	mark, gaveUp := len(c.changes), c.gaveUp
	c.check(a, b, p)
	n := len(c.changes) - mark
	c.changes = c.changes[:mark]
	if c.gaveUp && !gaveUp {
		n++
	}
	return n
}

func (c *comparer) compare(a, b node, p path) {
	if isFalse(a.v) {
		return
	}
	if isFalse(b.v) {
		c.change(p, kindType, "no longer accepts any value", "may now hold a value (the old schema allowed none)")
		return
	}
	if c.equal("", a.v, b.v) {
		return
	}
	am, bm := asMap(a.v), asMap(b.v)
	if trivial(bm) {
		return
	}

	// unevaluatedProperties and unevaluatedItems depend on every other
	// keyword around them, so they cannot be compared piece by piece.
	// Dropping them from a only widens a, which is safe.
	if hasAny(bm, "unevaluatedProperties", "unevaluatedItems") {
		c.unknown(p, "it uses unevaluatedProperties or unevaluatedItems")
		return
	}
	if hasAny(am, "unevaluatedProperties", "unevaluatedItems") {
		am = without(am, "unevaluatedProperties", "unevaluatedItems")
		a = a.derive(am, "#u")
	}

	// A combinator both sides share constrains both alike: set it aside.
	var shared []string
	for _, g := range combinatorGroups {
		if hasAny(bm, g...) && c.equalKeywords(am, bm, g...) {
			shared = append(shared, g...)
		}
	}
	if len(shared) > 0 {
		suffix := "#s:" + strings.Join(shared, ",")
		am, bm = without(am, shared...), without(bm, shared...)
		a, b = a.derive(am, suffix), b.derive(bm, suffix)
		if trivial(bm) {
			return
		}
	}

	// b is a conjunction: a must fit every part.
	if hasAny(bm, "$ref", "allOf") {
		parts, unresolved := c.parts(b, bm)
		for _, ref := range unresolved {
			c.unknown(p, fmt.Sprintf("its $ref %q could not be followed", ref))
		}
		for _, part := range parts {
			c.check(a, part, p)
		}
		return
	}

	// a is a conjunction: it fits b if its merged parts do, or if any one
	// part does (a is narrower than each of its parts).
	if hasAny(am, "$ref", "allOf") {
		parts, _ := c.parts(a, am)
		for _, part := range parts {
			if isFalse(part.v) {
				return
			}
		}
		switch len(parts) {
		case 0:
			c.check(a.derive(true, "#any"), b, p)
			return
		case 1:
			c.check(parts[0], b, p)
			return
		}
		if merged, ok := mergeAll(parts); ok {
			c.check(merged, b, p)
			return
		}
		for _, part := range parts {
			if c.trial(part, b, p) == 0 {
				return
			}
		}
		c.unknown(p, "it combines several subschemas (allOf, or $ref beside other keywords) in a way the check cannot merge")
		return
	}

	// a is a union: every alternative must fit b.
	for _, kw := range []string{"anyOf", "oneOf"} {
		alts, ok := am[kw].([]any)
		if !ok {
			continue
		}
		base := a.derive(without(am, kw), "#-"+kw)
		for i, alt := range alts {
			branch := subschema(alt, a.root, a.at(kw)+"/"+strconv.Itoa(i))
			if trivial(asMap(base.v)) {
				c.check(branch, b, p)
			} else if merged, ok := merge(base, branch); ok {
				c.check(merged, b, p)
			} else {
				c.check(branch, b, p)
			}
		}
		return
	}

	// From here on a has no $ref, allOf, anyOf or oneOf.
	ta, tb := c.types(a, 0), c.types(b, 0)
	if lost := ta &^ tb; lost != 0 {
		c.change(p, kindType, "no longer accepts "+describeTypes(lost), "may now hold "+describeTypes(lost))
	}
	common := ta & tb
	if common == 0 {
		return
	}
	if hasAny(am, "enum", "const") {
		c.values(a, b, p, common, enumValues(am))
		return
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if _, ok := bm[kw].([]any); ok {
			c.union(c.restrict(a, common), b, bm, kw, p, common)
			return
		}
	}
	for _, g := range opaqueGroups {
		if hasAny(bm, g...) && !c.equalKeywords(am, bm, g...) {
			c.unknown(p, fmt.Sprintf("its %q keyword changed", g[0]))
		}
	}
	if hasAny(bm, "enum", "const") {
		c.enumAdded(a, b, p, common)
		return
	}
	if common&tNumber != 0 {
		c.numberKeywords(am, bm, p, common&tFrac == 0)
	}
	if common&tString != 0 {
		c.stringKeywords(am, bm, p)
	}
	if common&tArray != 0 {
		c.arrayKeywords(a, b, p)
	}
	if common&tObject != 0 {
		c.objectKeywords(a, b, p)
	}
}

// parts splits a schema with $ref or allOf into the schemas it is the
// conjunction of, leaving out those that constrain nothing. It also returns
// the references it could not resolve.
func (c *comparer) parts(n node, m map[string]any) (parts []node, unresolved []string) {
	if base := without(m, "$ref", "allOf"); !trivial(base) {
		parts = append(parts, n.derive(base, "#base"))
	}
	if ref, ok := m["$ref"].(string); ok {
		if t, ok := resolveRef(n.root, ref); ok {
			if !trivial(asMap(t.v)) || isFalse(t.v) {
				parts = append(parts, t)
			}
		} else {
			unresolved = append(unresolved, ref)
		}
	}
	if subs, ok := m["allOf"].([]any); ok {
		for i, sub := range subs {
			if !trivial(asMap(sub)) || isFalse(sub) {
				parts = append(parts, subschema(sub, n.root, n.at("allOf")+"/"+strconv.Itoa(i)))
			}
		}
	}
	return parts, unresolved
}

// union checks a (already limited to the types b accepts) against the
// alternatives of b's anyOf or oneOf, and b's other keywords.
func (c *comparer) union(a, b node, bm map[string]any, kw string, p path, common typeMask) {
	c.check(a, b.derive(without(bm, kw), "#-"+kw), p)

	alts := bm[kw].([]any)
	nodes := make([]node, len(alts))
	masks := make([]typeMask, len(alts))
	for i, alt := range alts {
		nodes[i] = subschema(alt, b.root, b.at(kw)+"/"+strconv.Itoa(i))
		masks[i] = c.types(nodes[i], 0)
	}
	// Split a by type, grouping the types that the same alternatives admit:
	// a nullable string is checked as its string part against the string
	// alternative and its null part against the null alternative.
	type group struct {
		mask  typeMask
		cands []int
	}
	var groups []group
	for bit := typeMask(1); bit <= tFrac; bit <<= 1 {
		if common&bit == 0 {
			continue
		}
		var cands []int
		for i, m := range masks {
			if m&bit != 0 {
				cands = append(cands, i)
			}
		}
		i := slices.IndexFunc(groups, func(g group) bool { return slices.Equal(g.cands, cands) })
		if i < 0 {
			groups = append(groups, group{bit, cands})
		} else {
			groups[i].mask |= bit
		}
	}
	for _, g := range groups {
		piece := c.restrict(a, g.mask)
		switch len(g.cands) {
		case 0:
			// types(b) said some alternative admits these types.
			c.unknown(p, "no alternative of "+kw+" accepts "+describeTypes(g.mask))
		case 1:
			// Only this alternative admits these types, so for oneOf no
			// other can match too.
			c.check(piece, nodes[g.cands[0]], p)
		default:
			best, bestN := -1, 0
			for _, i := range g.cands {
				n := c.trial(piece, nodes[i], p)
				if best < 0 || n < bestN {
					best, bestN = i, n
				}
				if n == 0 {
					break
				}
			}
			if bestN == 0 {
				if kw == "oneOf" {
					c.unknown(p, "its values may match more than one alternative of oneOf")
				}
				continue
			}
			c.check(piece, nodes[best], p)
		}
	}
}

// restrict narrows a to the types in mask. a has no unions or references.
func (c *comparer) restrict(a node, mask typeMask) node {
	ta := c.types(a, 0)
	m := ta & mask
	if m == ta {
		return a
	}
	am := without(asMap(a.v))
	var names []any
	for _, n := range []struct {
		bits typeMask
		name string
	}{{tNull, "null"}, {tBool, "boolean"}, {tObject, "object"}, {tArray, "array"}, {tString, "string"}} {
		if m&n.bits != 0 {
			names = append(names, n.name)
		}
	}
	switch {
	case m&tFrac != 0:
		names = append(names, "number") // a superset of the non-integer part: safe
	case m&tInt != 0:
		names = append(names, "integer")
	}
	if len(names) == 1 {
		am["type"] = names[0]
	} else {
		am["type"] = names
	}
	return a.derive(am, "#t"+strconv.Itoa(int(m)))
}

// values checks a schema with enum or const value by value: each value a
// accepts must be one b accepts.
func (c *comparer) values(a, b node, p path, common typeMask, vals []any) {
	// A value of a satisfies a's keywords, so b's identical ones need no
	// second look; that also keeps the check exact where the evaluator
	// cannot decide a keyword, such as format.
	bs := c.stripShared(b, asMap(a.v))
	for _, v := range vals {
		if valueType(v)&common == 0 {
			continue // its type is gone, which is reported already
		}
		if r, _ := c.accepts(a, v, 0); r == no {
			continue
		}
		r, kw := c.accepts(bs, v, 0)
		switch r {
		case no:
			text := truncate(jsonText(v))
			c.change(p, keywordKind(kw, v), "no longer accepts "+text, "may now be "+text)
		case maybe:
			c.unknown(p, "could not decide whether "+truncate(jsonText(v))+" fits the "+c.wider()+" schema")
		}
	}
}

// enumAdded handles a b that lists its values where a does not.
func (c *comparer) enumAdded(a, b node, p path, common typeMask) {
	if common&^(tNull|tBool) == 0 {
		// Few enough values to try them all.
		var vals []any
		if common&tNull != 0 {
			vals = append(vals, nil)
		}
		if common&tBool != 0 {
			vals = append(vals, false, true)
		}
		c.values(a, b, p, common, vals)
		return
	}
	list := describeValues(enumValues(asMap(b.v)))
	c.change(p, kindEnum, "now accepts only "+list, "is no longer limited to "+list)
}

// bound is one end of a numeric range.
type bound struct {
	v    *big.Rat
	excl bool
	text string
}

// describe describes the values within the bound: ">= 1" for a lower one.
func (b *bound) describe(lower bool) string { return relation(lower, b.excl) + " " + b.text }

// complement describes the values just beyond the bound: "< 1" for the
// lower bound ">= 1", the relation of the other end with exclusiveness
// turned around.
func (b *bound) complement(lower bool) string { return relation(!lower, !b.excl) + " " + b.text }

// relation is the comparison a lower or upper, exclusive or inclusive bound
// makes.
func relation(lower, excl bool) string {
	switch {
	case lower && excl:
		return ">"
	case lower:
		return ">="
	case excl:
		return "<"
	default:
		return "<="
	}
}

// numberBound returns the tighter of a schema's inclusive and exclusive
// bounds at one end. In the integers, where only integers are in play, the
// bound is rounded to an inclusive integer, so that exclusiveMinimum 0 and
// minimum 1 compare equal.
func numberBound(m map[string]any, lower, intOnly bool) *bound {
	incl, excl := "maximum", "exclusiveMaximum"
	if lower {
		incl, excl = "minimum", "exclusiveMinimum"
	}
	var b *bound
	if r, text, ok := ratKeyword(m, incl); ok {
		b = &bound{r, false, text}
	}
	if r, text, ok := ratKeyword(m, excl); ok {
		tighter := b == nil || (lower && r.Cmp(b.v) >= 0) || (!lower && r.Cmp(b.v) <= 0)
		if tighter {
			b = &bound{r, true, text}
		}
	}
	if b == nil || !intOnly {
		return b
	}
	var n *big.Int
	switch {
	case lower && b.excl:
		n = new(big.Int).Add(floor(b.v), big.NewInt(1))
	case lower:
		n = ceil(b.v)
	case b.excl:
		n = new(big.Int).Sub(ceil(b.v), big.NewInt(1))
	default:
		n = floor(b.v)
	}
	return &bound{new(big.Rat).SetInt(n), false, n.String()}
}

func floor(r *big.Rat) *big.Int {
	// Denominators are positive, and Div rounds towards -∞ for them.
	return new(big.Int).Div(r.Num(), r.Denom())
}

func ceil(r *big.Rat) *big.Int {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// stricter reports whether bound b excludes a value bound a admits.
func stricter(b, a *bound, lower bool) bool {
	switch {
	case b == nil:
		return false
	case a == nil:
		return true
	}
	d := b.v.Cmp(a.v)
	if !lower {
		d = -d
	}
	return d > 0 || (d == 0 && b.excl && !a.excl)
}

func (c *comparer) numberKeywords(am, bm map[string]any, p path, intOnly bool) {
	if c.unreadable(bm, p, "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf") {
		return
	}
	for _, lower := range []bool{true, false} {
		ab, bb := numberBound(am, lower, intOnly), numberBound(bm, lower, intOnly)
		if !stricter(bb, ab, lower) {
			continue
		}
		kind, missing := kindMinimum, "had no minimum"
		if !lower {
			kind, missing = kindMaximum, "had no maximum"
		}
		was := missing
		if ab != nil {
			was = "was " + ab.describe(lower)
		}
		c.change(p, kind,
			fmt.Sprintf("must now be %s (%s)", bb.describe(lower), was),
			fmt.Sprintf("may now be %s (was always %s)", bb.complement(lower), bb.describe(lower)))
	}
	if mb, text, ok := ratKeyword(bm, "multipleOf"); ok && mb.Sign() > 0 {
		fits := false
		if ma, _, ok := ratKeyword(am, "multipleOf"); ok {
			fits = new(big.Rat).Quo(ma, mb).IsInt()
		}
		if !fits && intOnly {
			fits = new(big.Rat).Inv(mb).IsInt()
		}
		if !fits {
			c.change(p, kindMultipleOf, "must now be a multiple of "+text, "may now be a value that is not a multiple of "+text)
		}
	}
}

// unreadable reports, as a change at p, the first of the numeric keywords
// kws that bm has but big.Rat cannot hold, and whether there was one.
func (c *comparer) unreadable(bm map[string]any, p path, kws ...string) bool {
	for _, kw := range kws {
		if _, ok := bm[kw]; ok {
			if _, _, ok := ratKeyword(bm, kw); !ok {
				c.unknown(p, "its "+kw+" could not be read")
				return true
			}
		}
	}
	return false
}

// lengthLimits compares a pair of count keywords such as minLength and
// maxLength. unit is what is counted, in the plural.
func (c *comparer) lengthLimits(am, bm map[string]any, p path, minKw, maxKw string, minKind, maxKind kindPair, unit string) {
	if c.unreadable(bm, p, minKw, maxKw) {
		return
	}
	aMin, aMinText, ok := ratKeyword(am, minKw)
	if !ok {
		aMin, aMinText = new(big.Rat), "0"
	}
	if bMin, text, ok := ratKeyword(bm, minKw); ok && bMin.Cmp(aMin) > 0 {
		c.change(p, minKind,
			fmt.Sprintf("must now have at least %s %s (was %s)", text, unit, aMinText),
			fmt.Sprintf("may now have fewer than %s %s", text, unit))
	}
	aMax, aMaxText, aHas := ratKeyword(am, maxKw)
	if bMax, text, ok := ratKeyword(bm, maxKw); ok && (!aHas || bMax.Cmp(aMax) < 0) {
		was := "had no maximum"
		if aHas {
			was = "was " + aMaxText
		}
		c.change(p, maxKind,
			fmt.Sprintf("must now have at most %s %s (%s)", text, unit, was),
			fmt.Sprintf("may now have more than %s %s", text, unit))
	}
}

func (c *comparer) stringKeywords(am, bm map[string]any, p path) {
	c.lengthLimits(am, bm, p, "minLength", "maxLength", kindMinLength, kindMaxLength, "characters")

	// Whether one regular expression matches everything another does is
	// beyond this check; only an unchanged pattern is known to be safe.
	if bp, ok := bm["pattern"].(string); ok {
		ap, aHas := am["pattern"].(string)
		switch {
		case aHas && ap == bp:
		case aHas:
			c.change(p, kindPattern,
				fmt.Sprintf("must now match %s instead of %s, which could not be proved compatible", quotePattern(bp), quotePattern(ap)),
				fmt.Sprintf("now matches %s instead of %s, which could not be proved compatible", quotePattern(ap), quotePattern(bp)))
		default:
			c.change(p, kindPattern, "must now match "+quotePattern(bp), "no longer always matches "+quotePattern(bp))
		}
	}
	if bf, ok := bm["format"].(string); ok {
		af, aHas := am["format"].(string)
		switch {
		case aHas && af == bf:
		case aHas:
			c.change(p, kindFormatOther,
				fmt.Sprintf("must now be a valid %s (was %s)", bf, af),
				fmt.Sprintf("is now a valid %s, no longer always a valid %s", af, bf))
		default:
			c.change(p, kindFormat, "must now be a valid "+bf, "is no longer always a valid "+bf)
		}
	}
}

func (c *comparer) arrayKeywords(a, b node, p path) {
	am, bm := asMap(a.v), asMap(b.v)
	aPrefix, _ := am["prefixItems"].([]any)
	bPrefix, _ := bm["prefixItems"].([]any)
	for i := range max(len(aPrefix), len(bPrefix)) {
		c.check(itemSchema(a, aPrefix, i), itemSchema(b, bPrefix, i), p.with(segment{kind: segIndex, index: i}))
	}
	c.check(child(a, "items"), child(b, "items"), p.with(segment{kind: segItem}))

	c.lengthLimits(am, bm, p, "minItems", "maxItems", kindMinItems, kindMaxItems, "items")
	if bm["uniqueItems"] == true && am["uniqueItems"] != true {
		if aMax, _, ok := ratKeyword(am, "maxItems"); ok && aMax.Cmp(big.NewRat(1, 1)) <= 0 {
			return
		}
		c.change(p, kindUnique, "must now have unique items", "may now have duplicate items")
	}
}

func (c *comparer) objectKeywords(a, b node, p path) {
	am, bm := asMap(a.v), asMap(b.v)
	aProps, _ := am["properties"].(map[string]any)
	bProps, _ := bm["properties"].(map[string]any)
	aAdd, bAdd := child(a, "additionalProperties"), child(b, "additionalProperties")
	patterns := hasAny(am, "patternProperties") || hasAny(bm, "patternProperties")

	if patterns && !(c.equalKeywords(am, bm, "patternProperties") && sameKeys(aProps, bProps)) {
		// Which schema applies to which name would depend on matching
		// regular expressions against each other.
		c.unknown(p, "its patternProperties changed")
	} else {
		names := slices.Collect(maps.Keys(aProps))
		for name := range bProps {
			if _, ok := aProps[name]; !ok {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			q := p.with(segment{kind: segProperty, name: name})
			ae, aDeclared := property(a, aProps, name, aAdd)
			be, bDeclared := property(b, bProps, name, bAdd)
			if isFalse(be.v) && !bDeclared && !isFalse(ae.v) {
				if c.dir == input && aDeclared {
					c.add(q, kindPropertyRemoved, c.subject(q)+" was removed; input that sets it is now rejected")
				}
				// For outputs a field old callers do not know is ignored.
				continue
			}
			c.check(ae, be, q)
		}
		if isFalse(bAdd.v) && !isFalse(aAdd.v) {
			if c.dir == input {
				c.add(p, kindClosed, c.subject(p)+" no longer accepts fields it does not name")
			}
		} else {
			c.check(aAdd, bAdd, p.with(segment{kind: segKey}))
		}
	}

	aReq := stringSet(am["required"])
	for _, name := range slices.Sorted(maps.Keys(stringSet(bm["required"]))) {
		if aReq[name] {
			continue
		}
		q := p.with(segment{kind: segProperty, name: name})
		_, declared := aProps[name]
		switch {
		case c.dir == input:
			c.add(q, kindRequired.in, c.subject(q)+" is now required")
		case declared || !isFalse(aAdd.v) || patterns:
			c.add(q, kindRequired.out, c.subject(q)+" is no longer always present")
		default:
			c.add(q, kindPropertyRemoved, c.subject(q)+" was removed, but old callers expect it")
		}
	}
	c.lengthLimits(am, bm, p, "minProperties", "maxProperties", kindMinProps, kindMaxProps, "fields")
}

// property returns the schema that applies to the property name and whether
// the schema names it.
func property(n node, props map[string]any, name string, additional node) (node, bool) {
	if s, ok := props[name]; ok {
		return subschema(s, n.root, n.at("properties")+"/"+locToken(name)), true
	}
	return additional, false
}

// itemSchema returns the schema for element i of an array: its entry in
// prefix, the schema's prefixItems, or else items.
func itemSchema(n node, prefix []any, i int) node {
	if i < len(prefix) {
		return subschema(prefix[i], n.root, n.at("prefixItems")+"/"+strconv.Itoa(i))
	}
	return child(n, "items")
}

// child returns the subschema under kw, true when there is none.
func child(n node, kw string) node {
	m := asMap(n.v)
	if s, ok := m[kw]; ok {
		return subschema(s, n.root, n.at(kw))
	}
	return subschema(true, n.root, n.at(kw))
}

// types returns the JSON types a schema can accept.
func (c *comparer) types(n node, depth int) typeMask {
	if depth > maxEvalDepth {
		return tAll
	}
	if isFalse(n.v) {
		return 0
	}
	m := asMap(n.v)
	t := tAll
	if tv, ok := m["type"]; ok {
		t &= parseTypes(tv)
	}
	if vals := enumValues(m); vals != nil {
		var u typeMask
		for _, v := range vals {
			u |= valueType(v)
		}
		t &= u
	}
	if ref, ok := m["$ref"].(string); ok {
		if target, ok := resolveRef(n.root, ref); ok {
			t &= c.types(target, depth+1)
		}
	}
	if subs, ok := m["allOf"].([]any); ok {
		for i, sub := range subs {
			t &= c.types(subschema(sub, n.root, n.at("allOf")+"/"+strconv.Itoa(i)), depth+1)
		}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if subs, ok := m[kw].([]any); ok {
			var u typeMask
			for i, sub := range subs {
				u |= c.types(subschema(sub, n.root, n.at(kw)+"/"+strconv.Itoa(i)), depth+1)
			}
			t &= u
		}
	}
	return t
}

func parseTypes(v any) typeMask {
	var names []any
	switch v := v.(type) {
	case string:
		names = []any{v}
	case []any:
		names = v
	default:
		return tAll
	}
	var t typeMask
	for _, name := range names {
		switch name {
		case "null":
			t |= tNull
		case "boolean":
			t |= tBool
		case "object":
			t |= tObject
		case "array":
			t |= tArray
		case "string":
			t |= tString
		case "integer":
			t |= tInt
		case "number":
			t |= tNumber
		}
	}
	return t
}

func valueType(v any) typeMask {
	switch v := v.(type) {
	case nil:
		return tNull
	case bool:
		return tBool
	case string:
		return tString
	case []any:
		return tArray
	case map[string]any:
		return tObject
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		switch {
		case !ok:
			return tNumber
		case r.IsInt():
			return tInt
		default:
			return tFrac
		}
	}
	return 0
}

// describeTypes names a set of types in the plural, for messages.
func describeTypes(t typeMask) string {
	var names []string
	if t&tString != 0 {
		names = append(names, "strings")
	}
	switch t & tNumber {
	case tNumber:
		names = append(names, "numbers")
	case tInt:
		names = append(names, "integers")
	case tFrac:
		names = append(names, "non-integer numbers")
	}
	for _, n := range []struct {
		bit  typeMask
		name string
	}{{tBool, "booleans"}, {tObject, "objects"}, {tArray, "arrays"}, {tNull, "null"}} {
		if t&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	switch len(names) {
	case 0:
		return "nothing"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// describeValues lists enum values as JSON, the first few of them.
func describeValues(vals []any) string {
	const show = 8
	parts := make([]string, 0, min(len(vals), show)+1)
	for i, v := range vals {
		if i == show {
			parts = append(parts, fmt.Sprintf("… (%d values)", len(vals)))
			break
		}
		parts = append(parts, truncate(jsonText(v)))
	}
	return truncate(strings.Join(parts, ", "))
}

func quotePattern(s string) string { return truncate(strconv.Quote(s)) }

// keywordKind names the change for a value that keyword kw rejects.
func keywordKind(kw string, v any) kindPair {
	switch v.(type) {
	case map[string]any, []any:
		return kindEnumValue // kw is about something inside the value
	}
	switch kw {
	case "type":
		return kindType
	case "minimum", "exclusiveMinimum":
		return kindMinimum
	case "maximum", "exclusiveMaximum":
		return kindMaximum
	case "multipleOf":
		return kindMultipleOf
	case "minLength":
		return kindMinLength
	case "maxLength":
		return kindMaxLength
	case "pattern":
		return kindPattern
	}
	return kindEnumValue
}

func enumValues(m map[string]any) []any {
	if v, ok := m["const"]; ok {
		return []any{v}
	}
	if vals, ok := m["enum"].([]any); ok {
		return vals
	}
	return nil
}

// ratKeyword reads a numeric keyword; ok is false when it is absent or not a
// number big.Rat can hold.
func ratKeyword(m map[string]any, kw string) (r *big.Rat, text string, ok bool) {
	n, isNum := m[kw].(json.Number)
	if !isNum {
		return nil, "", false
	}
	r, ok = new(big.Rat).SetString(string(n))
	return r, string(n), ok
}

// verdict is the three-valued result of evaluating a schema on a value.
type verdict int8

const (
	no verdict = iota
	maybe
	yes
)

// accepts evaluates schema n on the value v, as far as the comparison
// models keywords: maybe means it could not decide. On no it also returns the
// keyword that rejected v.
func (c *comparer) accepts(n node, v any, depth int) (verdict, string) {
	c.steps++
	if depth > maxEvalDepth || c.steps > maxCompareSteps {
		return maybe, ""
	}
	if b, ok := n.v.(bool); ok {
		if b {
			return yes, ""
		}
		return no, "false"
	}
	m, ok := n.v.(map[string]any)
	if !ok {
		return maybe, ""
	}
	res, why := yes, ""
	note := func(r verdict, kw string) {
		if r < res {
			res, why = r, kw
		}
	}
	sub := func(kw string, s any) verdict {
		r, _ := c.accepts(subschema(s, n.root, n.at(kw)), v, depth+1)
		return r
	}
	num, isNum := v.(json.Number)
	str, isStr := v.(string)
	for _, kw := range slices.Sorted(maps.Keys(m)) {
		if res == no {
			break
		}
		val := m[kw]
		switch kw {
		case "$ref":
			ref, _ := val.(string)
			t, ok := resolveRef(n.root, ref)
			if !ok {
				note(maybe, kw)
				continue
			}
			r, w := c.accepts(t, v, depth+1)
			note(r, w)
		case "allOf":
			for _, s := range asSlice(val) {
				r, w := c.accepts(subschema(s, n.root, n.at("allOf")), v, depth+1)
				note(r, w)
			}
		case "anyOf":
			best := no
			for _, s := range asSlice(val) {
				best = max(best, sub(kw, s))
			}
			note(best, kw)
		case "oneOf":
			yeses, maybes := 0, 0
			for _, s := range asSlice(val) {
				switch sub(kw, s) {
				case yes:
					yeses++
				case maybe:
					maybes++
				}
			}
			switch {
			case yeses > 1, yeses+maybes == 0:
				note(no, kw)
			case yeses == 1 && maybes == 0:
			default:
				note(maybe, kw)
			}
		case "not":
			note(yes-sub(kw, val), kw)
		case "if":
			var r verdict
			switch sub(kw, val) {
			case yes:
				r = yes
				if then, ok := m["then"]; ok {
					r = sub("then", then)
				}
			case no:
				r = yes
				if els, ok := m["else"]; ok {
					r = sub("else", els)
				}
			default:
				r = maybe
			}
			note(r, kw)
		case "type":
			t := parseTypes(val)
			vt := valueType(v)
			switch {
			case t&vt == vt:
				note(yes, kw)
			case t&vt != 0:
				note(maybe, kw) // a number too large to tell whether it is an integer
			default:
				note(no, kw)
			}
		case "enum":
			best := no
			for _, e := range asSlice(val) {
				best = max(best, sameJSON(e, v))
			}
			note(best, kw)
		case "const":
			note(sameJSON(val, v), kw)
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf":
			if isNum {
				note(numberAccepts(kw, m, num), kw)
			}
		case "minLength", "maxLength":
			if isStr {
				note(countAccepts(kw, m, utf8.RuneCountInString(str)), kw)
			}
		case "pattern":
			if isStr {
				re := c.regexp(val)
				switch {
				case re == nil:
					note(maybe, kw)
				case !re.MatchString(str):
					note(no, kw)
				}
			}
		case "format":
			if isStr {
				note(maybe, kw)
			}
		case "unevaluatedProperties", "unevaluatedItems", "contains", "minContains", "maxContains",
			"propertyNames", "dependentRequired", "dependentSchemas", "dependencies",
			"$dynamicRef", "$recursiveRef":
			note(maybe, kw)
		}
	}
	if res == no {
		return res, why
	}
	switch v := v.(type) {
	case []any:
		r, w := c.arrayAccepts(n, m, v, depth)
		note(r, w)
	case map[string]any:
		r, w := c.objectAccepts(n, m, v, depth)
		note(r, w)
	}
	return res, why
}

func (c *comparer) arrayAccepts(n node, m map[string]any, v []any, depth int) (verdict, string) {
	if r := countAccepts("minItems", m, len(v)); r != yes {
		return r, "minItems"
	}
	if r := countAccepts("maxItems", m, len(v)); r != yes {
		return r, "maxItems"
	}
	res, why := yes, ""
	prefix, _ := m["prefixItems"].([]any)
	for i, item := range v {
		if r, w := c.accepts(itemSchema(n, prefix, i), item, depth+1); r < res {
			res, why = r, w
			if r == no {
				return res, why
			}
		}
	}
	if m["uniqueItems"] == true {
		for i := range v {
			for j := i + 1; j < len(v); j++ {
				if r := sameJSON(v[i], v[j]); r == yes {
					return no, "uniqueItems"
				} else if r == maybe && res == yes {
					res, why = maybe, "uniqueItems"
				}
			}
		}
	}
	return res, why
}

func (c *comparer) objectAccepts(n node, m map[string]any, v map[string]any, depth int) (verdict, string) {
	if r := countAccepts("minProperties", m, len(v)); r != yes {
		return r, "minProperties"
	}
	if r := countAccepts("maxProperties", m, len(v)); r != yes {
		return r, "maxProperties"
	}
	for name := range stringSet(m["required"]) {
		if _, ok := v[name]; !ok {
			return no, "required"
		}
	}
	props, _ := m["properties"].(map[string]any)
	patterns, _ := m["patternProperties"].(map[string]any)
	additional := child(n, "additionalProperties")
	res, why := yes, ""
	for _, name := range slices.Sorted(maps.Keys(v)) {
		var schemas []node
		if s, ok := props[name]; ok {
			schemas = append(schemas, subschema(s, n.root, n.at("properties")+"/"+locToken(name)))
		}
		for _, pat := range slices.Sorted(maps.Keys(patterns)) {
			re := c.regexp(pat)
			if re == nil {
				return maybe, "patternProperties"
			}
			if re.MatchString(name) {
				schemas = append(schemas, subschema(patterns[pat], n.root, n.at("patternProperties")+"/"+locToken(pat)))
			}
		}
		if len(schemas) == 0 {
			schemas = append(schemas, additional)
		}
		for _, s := range schemas {
			if r, w := c.accepts(s, v[name], depth+1); r < res {
				res, why = r, w
				if r == no {
					return res, why
				}
			}
		}
	}
	return res, why
}

func numberAccepts(kw string, m map[string]any, v json.Number) verdict {
	x, ok := new(big.Rat).SetString(string(v))
	bound, _, bok := ratKeyword(m, kw)
	if !ok || !bok {
		return maybe
	}
	var fits bool
	switch d := x.Cmp(bound); kw {
	case "minimum":
		fits = d >= 0
	case "exclusiveMinimum":
		fits = d > 0
	case "maximum":
		fits = d <= 0
	case "exclusiveMaximum":
		fits = d < 0
	case "multipleOf":
		if bound.Sign() <= 0 {
			return maybe
		}
		fits = new(big.Rat).Quo(x, bound).IsInt()
	}
	if fits {
		return yes
	}
	return no
}

// countAccepts checks a count against a min* or max* keyword.
func countAccepts(kw string, m map[string]any, n int) verdict {
	if _, ok := m[kw]; !ok {
		return yes
	}
	limit, _, ok := ratKeyword(m, kw)
	if !ok {
		return maybe
	}
	d := big.NewRat(int64(n), 1).Cmp(limit)
	if strings.HasPrefix(kw, "min") && d < 0 || strings.HasPrefix(kw, "max") && d > 0 {
		return no
	}
	return yes
}

// regexp compiles a pattern as the validator does (Go syntax), nil when it
// does not compile.
func (c *comparer) regexp(v any) *regexp.Regexp {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	if re, ok := c.regexps[s]; ok {
		return re
	}
	re, err := regexp.Compile(s)
	if err != nil {
		re = nil
	}
	c.regexps[s] = re
	return re
}

// sameJSON compares two JSON values as JSON Schema does: numbers by value.
func sameJSON(x, y any) verdict {
	switch x := x.(type) {
	case json.Number:
		yn, ok := y.(json.Number)
		if !ok {
			return no
		}
		if x == yn {
			return yes
		}
		xr, ok1 := new(big.Rat).SetString(string(x))
		yr, ok2 := new(big.Rat).SetString(string(yn))
		if !ok1 || !ok2 {
			return maybe
		}
		if xr.Cmp(yr) == 0 {
			return yes
		}
		return no
	case []any:
		ya, ok := y.([]any)
		if !ok || len(x) != len(ya) {
			return no
		}
		res := yes
		for i := range x {
			if res = min(res, sameJSON(x[i], ya[i])); res == no {
				return no
			}
		}
		return res
	case map[string]any:
		ym, ok := y.(map[string]any)
		if !ok || len(x) != len(ym) {
			return no
		}
		res := yes
		for k, xv := range x {
			yv, ok := ym[k]
			if !ok {
				return no
			}
			if res = min(res, sameJSON(xv, yv)); res == no {
				return no
			}
		}
		return res
	case nil, bool, string:
		if x == y {
			return yes
		}
		return no
	}
	return maybe
}

// equal reports whether the values of keyword kw (a whole schema for "")
// surely mean the same in both documents: equal as JSON, with any $ref in
// them pointing into definitions that both documents share.
func (c *comparer) equal(kw string, x, y any) bool {
	return sameJSON(x, y) == yes && c.refsShared(kw, x)
}

// equalKeywords reports whether am and bm agree on each of kws, present or
// absent.
func (c *comparer) equalKeywords(am, bm map[string]any, kws ...string) bool {
	for _, kw := range kws {
		x, xok := am[kw]
		y, yok := bm[kw]
		if xok != yok || xok && !c.equal(kw, x, y) {
			return false
		}
	}
	return true
}

func (c *comparer) refsShared(kw string, v any) bool {
	if kw == "$ref" {
		ref, _ := v.(string)
		return c.defsShared && intoDefinitions(ref)
	}
	return refsWithin(v, func(ref string) bool { return c.defsShared && intoDefinitions(ref) })
}

// refsWithin reports whether every $ref anywhere in v passes ok, and v has
// no dynamic references.
func refsWithin(v any, ok func(string) bool) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			switch k {
			case "$ref":
				if ref, isStr := sub.(string); isStr && !ok(ref) {
					return false
				}
			case "$dynamicRef", "$recursiveRef":
				return false
			}
			if !refsWithin(sub, ok) {
				return false
			}
		}
	case []any:
		for _, sub := range v {
			if !refsWithin(sub, ok) {
				return false
			}
		}
	}
	return true
}

func intoDefinitions(ref string) bool {
	return strings.HasPrefix(ref, "#/$defs/") || strings.HasPrefix(ref, "#/definitions/")
}

// sharedDefinitions reports whether two documents have the same $defs and
// definitions, referring only among themselves, so that a $ref into them
// means the same in both.
func sharedDefinitions(a, b any) bool {
	am, _ := a.(map[string]any)
	bm, _ := b.(map[string]any)
	for _, kw := range []string{"$defs", "definitions"} {
		x, xok := am[kw]
		y, yok := bm[kw]
		if xok != yok || xok && sameJSON(x, y) != yes {
			return false
		}
		if !refsWithin(x, intoDefinitions) {
			return false
		}
	}
	return true
}

// stripShared removes from b's top level the keywords a has identically.
// Only for use when a's instances are known to satisfy a's keywords, that is
// when checking a's values one by one.
func (c *comparer) stripShared(b node, am map[string]any) node {
	bm := asMap(b.v)
	var shared []string
	seen := make(map[string]bool)
	for _, g := range siblingGroups {
		for _, kw := range g {
			seen[kw] = true
		}
		if hasAny(bm, g...) && c.equalKeywords(am, bm, g...) {
			shared = append(shared, g...)
		}
	}
	for kw := range bm {
		if assertion[kw] && !seen[kw] && !strings.HasPrefix(kw, "unevaluated") && c.equalKeywords(am, bm, kw) {
			shared = append(shared, kw)
		}
	}
	if len(shared) == 0 {
		return b
	}
	slices.Sort(shared)
	return b.derive(without(bm, shared...), "#v:"+strings.Join(shared, ","))
}

// merge returns the conjunction of two schemas of one document as one
// schema, when their keywords do not interact.
func merge(x, y node) (node, bool) {
	switch {
	case isFalse(x.v) || isFalse(y.v):
		return x.derive(false, "&"+y.loc), true
	}
	xm, ym := asMap(x.v), asMap(y.v)
	if hasAny(xm, "unevaluatedProperties", "unevaluatedItems") || hasAny(ym, "unevaluatedProperties", "unevaluatedItems") {
		return node{}, false
	}
	for kw := range ym {
		if _, dup := xm[kw]; dup && assertion[kw] {
			return node{}, false
		}
	}
	for _, g := range siblingGroups {
		if hasAny(xm, g...) && hasAny(ym, g...) {
			return node{}, false
		}
	}
	m := without(xm)
	origins := make(map[string]string)
	for kw := range xm {
		if assertion[kw] {
			origins[kw] = x.origin(kw)
		}
	}
	for kw, v := range ym {
		if assertion[kw] {
			m[kw] = v
			origins[kw] = y.origin(kw)
		}
	}
	return node{v: m, root: x.root, loc: x.loc + "&" + y.loc, src: x.src, origins: origins}, true
}

func mergeAll(parts []node) (node, bool) {
	merged := parts[0]
	for _, p := range parts[1:] {
		var ok bool
		if merged, ok = merge(merged, p); !ok {
			return node{}, false
		}
	}
	return merged, true
}

// resolveRef follows a reference to a JSON pointer in the same document.
// The returned node's location is the pointer with each token escaped as
// locations are.
func resolveRef(root any, ref string) (node, bool) {
	frag, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return node{}, false
	}
	frag, err := url.PathUnescape(frag)
	if err != nil {
		return node{}, false
	}
	if frag == "" {
		return subschema(root, root, ""), true
	}
	if frag[0] != '/' {
		return node{}, false // an anchor
	}
	cur := root
	var loc strings.Builder
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := cur.(type) {
		case map[string]any:
			if cur, ok = x[tok]; !ok {
				return node{}, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return node{}, false
			}
			cur = x[i]
		default:
			return node{}, false
		}
		loc.WriteString("/" + locToken(tok))
	}
	switch cur.(type) {
	case map[string]any, bool:
		return subschema(cur, root, loc.String()), true
	}
	return node{}, false
}

// locToken escapes a name for use in a location. Besides RFC 6901 escaping it
// hides '#' and '&', which mark derived schemas.
func locToken(s string) string {
	s = escapeToken(s)
	if strings.ContainsAny(s, "#&") {
		s = strings.NewReplacer("#", "~2", "&", "~3").Replace(s)
	}
	return s
}

func (c *comparer) add(p path, kind, msg string) {
	c.changes = append(c.changes, Change{Pointer: p.pointer(), Kind: kind, Message: truncate(msg)})
}

// change records a change of kind at p, described by inMsg for input
// schemas and by outMsg for output schemas, each following the subject.
func (c *comparer) change(p path, kind kindPair, inMsg, outMsg string) {
	if c.dir == input {
		c.add(p, kind.in, c.subject(p)+" "+inMsg)
	} else {
		c.add(p, kind.out, c.subject(p)+" "+outMsg)
	}
}

func (c *comparer) unknown(p path, why string) {
	c.add(p, kindUnknown, c.subject(p)+" could not be proved compatible: "+why)
}

// subject names the place a change is at, to begin a message.
func (c *comparer) subject(p path) string {
	if len(p) == 0 {
		if c.dir == input {
			return "the input"
		}
		return "the output"
	}
	return "field " + strconv.Quote(p.display())
}

// wider names the schema that must accept everything the other does.
func (c *comparer) wider() string {
	if c.dir == input {
		return "new"
	}
	return "old"
}

func isFalse(v any) bool {
	b, ok := v.(bool)
	return ok && !b
}

// asMap returns a schema's keywords; true (and anything that is not an
// object) has none.
func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// trivial reports whether a schema's keywords constrain nothing.
func trivial(m map[string]any) bool {
	for kw := range m {
		if assertion[kw] {
			return false
		}
	}
	return true
}

func hasAny(m map[string]any, kws ...string) bool {
	for _, kw := range kws {
		if _, ok := m[kw]; ok {
			return true
		}
	}
	return false
}

// without returns a copy of m without kws.
func without(m map[string]any, kws ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(kws, k) {
			out[k] = v
		}
	}
	return out
}

func sameKeys(x, y map[string]any) bool {
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if _, ok := y[k]; !ok {
			return false
		}
	}
	return true
}

func stringSet(v any) map[string]bool {
	set := make(map[string]bool)
	for _, s := range asSlice(v) {
		if s, ok := s.(string); ok {
			set[s] = true
		}
	}
	return set
}
