package schemas

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// schemaURL is the name a schema is compiled under. It is a fixed in-memory
// name rather than a real location: references inside the schema resolve
// against it, and nothing is ever loaded from it.
const (
	schemaBase = "yard:///"
	schemaURL  = schemaBase + "schema.json"
)

// maxSchemaDepth bounds the nesting of a schema document and of a Go value
// given to Validate. Schemas come from function authors, not from the wire, and
// nest about twice as deep as the types they describe, so the bound is looser
// than DefaultMaxDepth.
const maxSchemaDepth = 512

// ErrExternalRef is wrapped by the error Compile returns when a schema refers
// to anything outside itself: another URL through $ref, or a meta-schema other
// than the standard drafts through $schema.
var ErrExternalRef = errors.New("external reference blocked")

// Schema is a compiled JSON Schema. It is immutable and safe for concurrent
// use, so one compiled Schema can serve every request for a function version.
type Schema struct {
	compiled   *jsonschema.Schema
	raw        []byte
	hash       string
	byLocation map[string]*jsonschema.Schema // see index
}

// Compile compiles a JSON Schema document.
//
// The draft is the one named by "$schema", 2020-12 when there is none. The
// "format" keyword is asserted, not just annotated: a date-time field must hold
// a date-time. The schema must be self-contained: a $ref may only point inside
// the document, and any other reference, to http, https, file or anything
// else, fails with an error wrapping ErrExternalRef before any network or file
// access happens. A document with duplicate keys is refused, as Decode refuses
// a body with them, because it has no single meaning.
func Compile(raw []byte) (*Schema, error) {
	s, _, err := compile(raw)
	return s, err
}

// compile is Compile, also returning the document decoded.
func compile(raw []byte) (s *Schema, doc any, err error) {
	// The compiler is not built for hostile documents; whatever trips it must
	// come back as an error, not take the gateway down.
	defer func() {
		if r := recover(); r != nil {
			s, doc, err = nil, nil, fmt.Errorf("schemas: compile: %v", r)
		}
	}()
	doc, err = Decode(raw, DecodeLimits{MaxDepth: maxSchemaDepth})
	if err != nil {
		return nil, nil, fmt.Errorf("schemas: compile: schema is not valid JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	// The compiler asks LoadURL for every document it does not hold. It holds
	// this schema and the standard meta-schemas, so anything asked for is
	// external. Setting the hook per compiler keeps the package-level loaders,
	// which other code may change, out of the picture.
	c.LoadURL = func(u string) (io.ReadCloser, error) {
		// A relative reference arrives resolved against schemaURL; show it as
		// the author wrote it.
		u = strings.TrimPrefix(u, schemaBase)
		return nil, fmt.Errorf("%w: %q (a schema must be self-contained)", ErrExternalRef, u)
	}
	if err := c.AddResource(schemaURL, bytes.NewReader(raw)); err != nil {
		return nil, nil, compileError(err)
	}
	compiled, err := c.Compile(schemaURL)
	if err != nil {
		return nil, nil, compileError(err)
	}
	// The compiler follows a definition only when something refers to it, so
	// a broken or external $ref in an unused definition would go unnoticed.
	// Compiling each definition on its own holds all of them to the rules.
	for _, loc := range definitions(doc) {
		if _, err := c.Compile(schemaURL + loc); err != nil {
			return nil, nil, compileError(err)
		}
	}
	raw = bytes.Clone(raw)
	return &Schema{compiled: compiled, raw: raw, hash: hashDoc(raw, doc), byLocation: index(compiled)}, doc, nil
}

// Keywords whose values are schemas, as the compiler lists them for every
// draft: a schema, an array of schemas, or an object of named schemas.
var (
	schemaKeywords = []string{
		"not", "additionalProperties", "items", "additionalItems", "propertyNames",
		"contains", "if", "then", "else", "unevaluatedProperties", "unevaluatedItems",
		"contentSchema",
	}
	schemaArrayKeywords = []string{"allOf", "anyOf", "oneOf", "items", "prefixItems"}
	schemaMapKeywords   = []string{"definitions", "$defs", "properties", "patternProperties", "dependencies", "dependentSchemas"}
)

// definitions returns the locations ("#/$defs/x", escaped as the compiler
// expects) of every definition in the schema doc, sorted so that the first
// problem reported is always the same one.
func definitions(doc any) []string {
	var locs []string
	var walk func(doc any, loc string)
	walk = func(doc any, loc string) {
		m, ok := doc.(map[string]any)
		if !ok {
			return
		}
		EachSubschema(m, func(kw, step string, sub any) {
			if kw == "$defs" || kw == "definitions" {
				switch sub.(type) {
				case map[string]any, bool:
					locs = append(locs, loc+step)
				}
			}
			walk(sub, loc+step)
		})
	}
	walk(doc, "#")
	slices.Sort(locs)
	return locs
}

// EachSubschema calls fn for every value of the schema m that sits where a
// schema may be, with its keyword and the location step that leads to it:
// "/not", "/allOf/0", or "/$defs/x" with the name escaped as the compiler
// expects. The values need not be schemas; fn decides what to make of them.
func EachSubschema(m map[string]any, fn func(kw, step string, sub any)) {
	for _, kw := range schemaKeywords {
		if sub, ok := m[kw]; ok {
			fn(kw, "/"+kw, sub)
		}
	}
	for _, kw := range schemaArrayKeywords {
		if subs, ok := m[kw].([]any); ok {
			for i, sub := range subs {
				fn(kw, "/"+kw+"/"+strconv.Itoa(i), sub)
			}
		}
	}
	for _, kw := range schemaMapKeywords {
		if subs, ok := m[kw].(map[string]any); ok {
			for name, sub := range subs {
				fn(kw, "/"+kw+"/"+url.PathEscape(escapeToken(name)), sub)
			}
		}
	}
}

// index maps the location of every compiled subschema to it, so that a
// violation can be worded from the schema's own values: the validator prints
// enum values with Go syntax, in which the number 5 and the string "5" look
// the same.
func index(root *jsonschema.Schema) map[string]*jsonschema.Schema {
	seen := make(map[string]*jsonschema.Schema)
	var walk func(s *jsonschema.Schema)
	walk = func(s *jsonschema.Schema) {
		if s == nil {
			return
		}
		if _, ok := seen[s.Location]; ok {
			return
		}
		seen[s.Location] = s
		for _, sub := range []*jsonschema.Schema{
			s.Ref, s.RecursiveRef, s.DynamicRef, s.Not, s.If, s.Then, s.Else,
			s.PropertyNames, s.UnevaluatedProperties, s.Items2020, s.Contains,
			s.UnevaluatedItems, s.ContentSchema,
		} {
			walk(sub)
		}
		for _, subs := range [][]*jsonschema.Schema{s.AllOf, s.AnyOf, s.OneOf, s.PrefixItems} {
			for _, sub := range subs {
				walk(sub)
			}
		}
		for _, sub := range s.Properties {
			walk(sub)
		}
		for _, sub := range s.PatternProperties {
			walk(sub)
		}
		for _, sub := range s.DependentSchemas {
			walk(sub)
		}
		for _, dep := range s.Dependencies {
			if sub, ok := dep.(*jsonschema.Schema); ok {
				walk(sub)
			}
		}
		for _, v := range []any{s.AdditionalProperties, s.AdditionalItems, s.Items} {
			switch v := v.(type) {
			case *jsonschema.Schema:
				walk(v)
			case []*jsonschema.Schema:
				for _, sub := range v {
					walk(sub)
				}
			}
		}
	}
	walk(root)
	return seen
}

// compileError rewords the compiler's errors, which are written for a schema
// file on disk, for a schema that has no location of its own.
func compileError(err error) error {
	if errors.Is(err, ErrExternalRef) {
		// The loader's error carries the URL; the compiler adds only noise.
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.HasPrefix(e.Error(), ErrExternalRef.Error()) {
				return fmt.Errorf("schemas: compile: %w", e)
			}
		}
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		// The schema broke the meta-schema: list where, as Validate would.
		var b strings.Builder
		for i, v := range flatten(ve, nil) {
			if i > 0 {
				b.WriteString("; ")
			}
			if v.Pointer != "" {
				b.WriteString(v.Pointer + ": ")
			}
			b.WriteString(v.Message)
		}
		return fmt.Errorf("schemas: compile: schema is not valid: %s", b.String())
	}
	msg := err.Error()
	var se *jsonschema.SchemaError
	if errors.As(err, &se) && se.Err != nil {
		msg = se.Err.Error()
	}
	msg = strings.TrimPrefix(msg, "jsonschema: ")
	msg = strings.ReplaceAll(msg, schemaURL, "")
	return fmt.Errorf("schemas: compile: %s", msg)
}

// Raw returns a copy of the document the schema was compiled from.
func (s *Schema) Raw() []byte { return bytes.Clone(s.raw) }

// Hash returns Hash(s.Raw()), computed once at compile time.
func (s *Schema) Hash() string { return s.hash }

// Violation is one way a value fails a schema. It is the element of the
// "errors" list in Switchyard's error body.
type Violation struct {
	// Pointer is the RFC 6901 pointer of the offending value in the instance:
	// "" for the root, "/items/0/qty" for a field. For a missing property it
	// names the property that should be there.
	Pointer string `json:"pointer"`
	// Message says what is wrong, for people; it starts in lower case and is
	// not meant to be parsed.
	Message string `json:"message"`
}

// Validate checks v against the schema and returns every violation, nil when
// v is valid.
//
// v is normally what Decode returns. Any other Go value is checked as it
// would marshal to JSON; a value that cannot be marshalled is one violation
// at the root.
//
// The validator reports a tree of failed keywords; Validate keeps its leaves,
// so each offending field appears with its own pointer, and sorts them by
// pointer. A missing required property is reported at the property itself
// ("missing property \"name\"" at "/name"), and a property the schema does not
// allow at that property ("unknown property" at "/extra"), because that is the
// field a client has to fix. When a value matches none of the alternatives of
// anyOf or oneOf, the alternatives of the wrong type are left out, and if all
// are of the wrong type the result is one violation naming every type allowed.
func (s *Schema) Validate(v any) []Violation {
	return s.validate(v, true)
}

func (s *Schema) validate(v any, retry bool) (out []Violation) {
	defer func() {
		if r := recover(); r != nil {
			out = []Violation{{Message: truncate(fmt.Sprintf("cannot validate value: %v", r))}}
		}
	}()
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return flatten(ve, s.byLocation)
	}
	var bad jsonschema.InvalidJSONTypeError
	if retry && errors.As(err, &bad) {
		// A Go value such as a struct or a map[string]string: validate what
		// it marshals to, which is what a client would receive.
		b, err := json.Marshal(v)
		if err != nil {
			return []Violation{{Message: truncate("value has no JSON form: " + err.Error())}}
		}
		doc, err := Decode(b, DecodeLimits{MaxDepth: maxSchemaDepth})
		if err != nil {
			return []Violation{{Message: truncate("value has no JSON form: " + err.Error())}}
		}
		return s.validate(doc, false)
	}
	return []Violation{{Message: truncate(strings.TrimPrefix(err.Error(), "jsonschema: "))}}
}

// leaf is a violation together with the keyword that produced it, which the
// anyOf/oneOf handling needs.
type leaf struct {
	Violation
	keyword string
}

// flatten turns the validator's error tree into sorted, unique violations.
// byLocation, which may be nil, lets messages quote the schema exactly.
func flatten(ve *jsonschema.ValidationError, byLocation map[string]*jsonschema.Schema) []Violation {
	c := collector{byLocation: byLocation}
	c.collect(ve)
	leaves := c.leaves
	out := make([]Violation, 0, len(leaves))
	for _, l := range leaves {
		out = append(out, l.Violation)
	}
	slices.SortFunc(out, func(a, b Violation) int {
		if c := comparePointers(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.Compact(out)
}

type collector struct {
	byLocation map[string]*jsonschema.Schema
	leaves     []leaf
}

func (c *collector) collect(ve *jsonschema.ValidationError) {
	kw := keyword(ve.KeywordLocation)
	switch {
	case len(ve.Causes) == 0, kw == "minContains":
		// minContains lists every item that did not match "contains" as a
		// cause, but the fault is the count, not any one item.
		c.leaf(ve, kw)
	case (kw == "anyOf" || kw == "oneOf") && ve.Message == kw+" failed":
		c.alternatives(ve)
	default:
		for _, cause := range ve.Causes {
			c.collect(cause)
		}
	}
}

// alternatives reports a value that matched no branch of anyOf or oneOf. A
// branch that failed only because the value has another type says nothing
// useful about what to fix (a nullable field does not need to hear it is not
// null), so those are dropped while any other branch has something to say.
func (c *collector) alternatives(ve *jsonschema.ValidationError) {
	at := pointer(ve.InstanceLocation)
	var kept []leaf
	var expected []string
	got := ""
	for _, cause := range ve.Causes {
		sub := collector{byLocation: c.byLocation}
		sub.collect(cause)
		branch := sub.leaves
		if len(branch) == 1 && branch[0].keyword == "type" && branch[0].Pointer == at {
			if want, g, ok := parseTypeMessage(branch[0].Message); ok {
				expected = append(expected, want)
				got = g
				continue
			}
		}
		kept = append(kept, branch...)
	}
	switch {
	case len(kept) > 0:
		c.leaves = append(c.leaves, kept...)
	case len(expected) > 0:
		c.add(at, "expected "+strings.Join(expected, " or ")+", but got "+got, "type")
	default:
		c.leaf(ve, "")
	}
}

// parseTypeMessage splits the validator's "expected string, but got number".
func parseTypeMessage(msg string) (want, got string, ok bool) {
	rest, ok := strings.CutPrefix(msg, "expected ")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, ", but got ")
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+len(", but got "):], true
}

func (c *collector) add(ptr, msg, kw string) {
	c.leaves = append(c.leaves, leaf{Violation{ptr, truncate(msg)}, kw})
}

// leaf turns one failed keyword into violations. The validator's messages are
// kept except where they point at the wrong field, misquote the schema, or
// quote the offending value, which may be large and is named by the pointer.
func (c *collector) leaf(ve *jsonschema.ValidationError, kw string) {
	at := pointer(ve.InstanceLocation)
	msg := ve.Message
	// dependentRequired (and draft 7 dependencies) name a property that must
	// be present when another one is: report it where it is missing, as for
	// required. The keyword location ends in an index, so go by the message.
	if rest, ok := strings.CutPrefix(msg, "property "); ok {
		if name, rest, ok := parseQuoted(rest); ok {
			if rest, ok := strings.CutPrefix(rest, " is required, if "); ok {
				if other, rest, ok := parseQuoted(rest); ok && rest == " property exists" {
					c.add(at+"/"+escapeToken(name), "missing property "+strconv.Quote(name)+", required with "+strconv.Quote(other), "required")
					return
				}
			}
		}
	}
	switch kw {
	case "required":
		if list, ok := strings.CutPrefix(msg, "missing properties: "); ok {
			if names, ok := parseQuotedList(list); ok {
				for _, name := range names {
					c.add(at+"/"+escapeToken(name), "missing property "+strconv.Quote(name), kw)
				}
				return
			}
		}
	case "additionalProperties":
		if list, ok := strings.CutPrefix(msg, "additionalProperties "); ok {
			if list, ok := strings.CutSuffix(list, " not allowed"); ok {
				if names, ok := parseQuotedList(list); ok {
					for _, name := range names {
						c.add(at+"/"+escapeToken(name), "unknown property", kw)
					}
					return
				}
			}
		}
	case "minContains", "maxContains":
		// "valid must be >= 2, but got 1" counts the items matching contains.
		op, words := ">= ", "at least "
		if kw == "maxContains" {
			op, words = "<= ", "at most "
		}
		if rest, ok := strings.CutPrefix(msg, "valid must be "+op); ok {
			if n, got, ok := strings.Cut(rest, ", but got "); ok {
				items := " matching items"
				if n == "1" {
					items = " matching item"
				}
				msg = "must contain " + words + n + items + ", but has " + got
			}
		}
	case "unevaluatedProperties":
		// A property no keyword accounted for; the pointer already names it.
		if msg == "not allowed" {
			msg = "unknown property"
		}
	case "format":
		if i := strings.LastIndex(msg, " is not valid '"); i >= 0 && strings.HasSuffix(msg, "'") {
			msg = "must be a valid " + msg[i+len(" is not valid '"):len(msg)-1]
		}
	case "enum":
		if s := c.schemaOf(ve, kw); s != nil && len(s.Enum) > 0 {
			if len(s.Enum) == 1 {
				msg = "value must be " + jsonText(s.Enum[0])
			} else {
				vals := make([]string, len(s.Enum))
				for i, v := range s.Enum {
					vals[i] = jsonText(v)
				}
				msg = "value must be one of " + strings.Join(vals, ", ")
			}
		}
	case "const":
		if s := c.schemaOf(ve, kw); s != nil && len(s.Constant) > 0 {
			msg = "value must be " + jsonText(s.Constant[0])
		}
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		// The validator prints the bound as a float64, which rounds large
		// integers; print integral bounds exactly.
		if s := c.schemaOf(ve, kw); s != nil {
			bound := map[string]*big.Rat{
				"minimum": s.Minimum, "maximum": s.Maximum,
				"exclusiveMinimum": s.ExclusiveMinimum, "exclusiveMaximum": s.ExclusiveMaximum,
			}[kw]
			op, found, ok := strings.Cut(msg, " but found ")
			if bound != nil && bound.IsInt() && ok {
				if i := strings.LastIndexByte(op, ' '); i >= 0 {
					msg = op[:i+1] + bound.Num().String() + " but found " + found
				}
			}
		}
	}
	c.add(at, msg, kw)
}

// schemaOf returns the compiled schema holding the keyword that failed, nil
// when it is not known.
func (c *collector) schemaOf(ve *jsonschema.ValidationError, kw string) *jsonschema.Schema {
	loc, ok := strings.CutSuffix(ve.AbsoluteKeywordLocation, "/"+kw)
	if !ok {
		return nil
	}
	return c.byLocation[loc]
}

// jsonText renders a schema value as JSON, the notation a client sees.
func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// keyword returns the last step of a keyword location, the keyword that failed.
func keyword(loc string) string {
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// pointer converts the validator's instance location to RFC 6901. Its tokens
// are RFC 6901 escaped and then URL path escaped ("/a%20b" for the key "a b");
// only the second escaping has to go.
func pointer(loc string) string {
	if !strings.Contains(loc, "%") {
		return loc
	}
	tokens := strings.Split(loc, "/")
	for i, t := range tokens {
		if u, err := url.PathUnescape(t); err == nil {
			tokens[i] = u
		}
	}
	return strings.Join(tokens, "/")
}

// parseQuotedList reads the validator's list of property names, each quoted
// as 'name' with Go escapes (plus \' for a quote) and joined by ", ".
func parseQuotedList(s string) ([]string, bool) {
	var names []string
	for {
		name, rest, ok := parseQuoted(s)
		if !ok {
			return nil, false
		}
		names = append(names, name)
		if rest == "" {
			return names, true
		}
		if s, ok = strings.CutPrefix(rest, ", "); !ok {
			return nil, false
		}
	}
}

// parseQuoted reads one name quoted by the validator from the start of s.
func parseQuoted(s string) (name, rest string, ok bool) {
	if s == "" || s[0] != '\'' {
		return "", "", false
	}
	// Rewrite 'x' as a Go string literal and let strconv undo the escapes.
	var lit strings.Builder
	lit.WriteByte('"')
	i := 1
	for ; i < len(s) && s[i] != '\''; i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			if s[i] != '\'' {
				lit.WriteByte('\\')
			}
			lit.WriteByte(s[i])
		case '"':
			lit.WriteString(`\"`)
		default:
			lit.WriteByte(s[i])
		}
	}
	if i >= len(s) {
		return "", "", false
	}
	lit.WriteByte('"')
	name, err := strconv.Unquote(lit.String())
	if err != nil {
		return "", "", false
	}
	return name, s[i+1:], true
}

// comparePointers orders pointers token by token, array indexes by number, so
// that "/items/2" comes before "/items/10". Indexes sort before names, which
// keeps the order total when an object has keys such as "9" and "10!".
func comparePointers(a, b string) int {
	for a != "" && b != "" {
		var ta, tb string
		ta, a = nextToken(a)
		tb, b = nextToken(b)
		if ta == tb {
			continue
		}
		ia, ib := isIndex(ta), isIndex(tb)
		switch {
		case ia && ib:
			// Canonical decimals: the shorter is smaller, then digit order.
			if c := cmp.Compare(len(ta), len(tb)); c != 0 {
				return c
			}
		case ia:
			return -1
		case ib:
			return 1
		}
		return strings.Compare(ta, tb)
	}
	return cmp.Compare(len(a), len(b))
}

// isIndex reports whether a reference token is an array index as RFC 6901
// writes it: decimal digits without leading zeros.
func isIndex(tok string) bool {
	if tok == "" || (tok[0] == '0' && len(tok) > 1) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return false
		}
	}
	return true
}

// nextToken splits "/a/b" into "a" and "/b".
func nextToken(p string) (token, rest string) {
	p = p[1:]
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// maxMessage bounds a message, which may quote a number or a pattern of any
// length, so that an error body stays small.
const maxMessage = 200

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
