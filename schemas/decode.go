package schemas

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting limit Decode applies when DecodeLimits.MaxDepth
// is zero. Real payloads rarely nest past a dozen levels; 64 leaves room for
// them while keeping a hostile body of brackets cheap to refuse.
const DefaultMaxDepth = 64

// maxDepthCap bounds DecodeLimits.MaxDepth whatever the caller asks for: the
// parser recurses once per level, and encoding/json stops at the same depth.
const maxDepthCap = 10000

// DecodeLimits bounds what Decode accepts from an untrusted body. The size of
// the body is bounded by whoever reads it (the gateway, the SDK), not here.
type DecodeLimits struct {
	// MaxDepth is the deepest nesting of objects and arrays allowed; the root
	// object or array is depth 1. Zero means DefaultMaxDepth; values above
	// 10000 are treated as 10000.
	MaxDepth int
}

// DecodeError reports why Decode refused a body. Pointer is the RFC 6901
// pointer of the value being read when the problem was found ("" for the root,
// or when no better place is known); Offset is the byte offset of the
// offending input, len(body) when the body ended too soon.
type DecodeError struct {
	Pointer string
	Offset  int64
	Message string
}

func (e *DecodeError) Error() string {
	if e.Pointer == "" {
		return e.Message
	}
	return e.Message + " at " + e.Pointer
}

// Decode parses one JSON document from an untrusted body into the generic form
// that Schema.Validate takes: map[string]any, []any, json.Number, string, bool
// and nil.
//
// It is stricter than json.Unmarshal on purpose. Two readers of one body must
// never disagree about what it says, so duplicate keys (which parsers resolve
// differently), invalid UTF-8 (which encoding/json silently replaces) and data
// after the value are refused. Numbers stay json.Number so that large integers
// such as IDs are not rounded through float64. Nesting is checked as each
// bracket is read, so a body of a million '[' is refused after MaxDepth of them
// instead of being scanned to the end.
//
// Decode runs on every request, so it is a single pass over the bytes rather
// than a walk over encoding/json's Decoder.Token, which costs several times
// json.Unmarshal. It accepts exactly the documents json.Valid accepts (less the
// refusals above) and yields what encoding/json yields with UseNumber; the
// fuzz test holds it to both.
//
// Every refusal is a *DecodeError.
func Decode(data []byte, lim DecodeLimits) (any, error) {
	p := parser{data: data, maxDepth: lim.MaxDepth}
	if p.maxDepth <= 0 {
		p.maxDepth = DefaultMaxDepth
	}
	if p.maxDepth > maxDepthCap {
		p.maxDepth = maxDepthCap
	}
	p.skipSpace()
	if p.pos == len(data) {
		return nil, &DecodeError{Offset: int64(len(data)), Message: "empty body"}
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err.finish()
	}
	p.skipSpace()
	if p.pos < len(data) {
		if e := p.badUTF8(); e != nil {
			return nil, e.finish()
		}
		return nil, &DecodeError{Offset: int64(p.pos), Message: "trailing data after JSON value"}
	}
	return v, nil
}

// parser is a recursive descent parser over the JSON grammar of RFC 8259.
// Recursion is bounded by maxDepth, which is checked before descending.
type parser struct {
	data     []byte
	pos      int
	maxDepth int
}

// parseError is a DecodeError under construction. The pointer is only needed
// when something fails, so instead of tracking the path on every value each
// enclosing object or array adds its token while the error travels up.
type parseError struct {
	DecodeError
	rev []string // reference tokens, innermost first, already escaped
}

func (e *parseError) within(token string) *parseError {
	e.rev = append(e.rev, token)
	return e
}

func (e *parseError) finish() *DecodeError {
	var b strings.Builder
	for i := len(e.rev) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(e.rev[i])
	}
	e.Pointer = b.String()
	return &e.DecodeError
}

func (p *parser) fail(off int, msg string) *parseError {
	return &parseError{DecodeError: DecodeError{Offset: int64(off), Message: msg}}
}

func (p *parser) eof() *parseError {
	return p.fail(len(p.data), "unexpected end of JSON input")
}

// unexpected reports the byte at p.pos, which does not fit where it stands.
// The message follows encoding/json's wording, e.g. "invalid character 'x'
// after array element", so errors read the same whichever parser a client
// knows.
func (p *parser) unexpected(context string) *parseError {
	if p.pos >= len(p.data) {
		return p.eof()
	}
	if e := p.badUTF8(); e != nil {
		return e
	}
	r, _ := utf8.DecodeRune(p.data[p.pos:])
	return p.fail(p.pos, "invalid character "+strconv.QuoteRune(r)+" "+context)
}

// badUTF8 reports invalid UTF-8 at p.pos, so that a stray byte is named for
// what it is rather than as an odd character.
func (p *parser) badUTF8() *parseError {
	if p.pos < len(p.data) && p.data[p.pos] >= utf8.RuneSelf {
		if r, size := utf8.DecodeRune(p.data[p.pos:]); r == utf8.RuneError && size == 1 {
			return p.fail(p.pos, "invalid UTF-8")
		}
	}
	return nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses the value starting at p.pos (after white space). depth is the
// nesting of the enclosing container, 0 at the root.
func (p *parser) value(depth int) (any, *parseError) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, p.eof()
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.unexpected("looking for beginning of value")
}

func (p *parser) tooDeep() *parseError {
	return p.fail(p.pos, "nesting deeper than "+strconv.Itoa(p.maxDepth))
}

func (p *parser) object(depth int) (any, *parseError) {
	if depth > p.maxDepth {
		return nil, p.tooDeep()
	}
	p.pos++ // '{'
	m := make(map[string]any)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.unexpected("looking for beginning of object key string")
		}
		keyOff := p.pos
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, p.fail(keyOff, "duplicate key "+strconv.Quote(key)).within(escapeToken(key))
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.unexpected("after object key")
		}
		p.pos++
		v, err := p.value(depth)
		if err != nil {
			return nil, err.within(escapeToken(key))
		}
		m[key] = v
		closed, ok := p.afterElement('}')
		switch {
		case !ok:
			return nil, p.unexpected("after object key:value pair")
		case closed:
			return m, nil
		}
	}
}

// afterElement consumes what follows a member of an object or array: a
// comma (more follow) or the closing byte (closed). ok is false for
// anything else, with the position left at the offending byte.
func (p *parser) afterElement(closer byte) (closed, ok bool) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return false, false
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return false, true
	case closer:
		p.pos++
		return true, true
	}
	return false, false
}

func (p *parser) array(depth int) (any, *parseError) {
	if depth > p.maxDepth {
		return nil, p.tooDeep()
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err.within(strconv.Itoa(len(a)))
		}
		a = append(a, v)
		closed, ok := p.afterElement(']')
		switch {
		case !ok:
			return nil, p.unexpected("after array element")
		case closed:
			return a, nil
		}
	}
}

func (p *parser) literal(word string) *parseError {
	for i := 1; i < len(word); i++ {
		p.pos++
		if p.pos >= len(p.data) {
			return p.eof()
		}
		if p.data[p.pos] != word[i] {
			return p.unexpected("in literal " + word + " (expecting " + strconv.QuoteRune(rune(word[i])) + ")")
		}
	}
	p.pos++
	return nil
}

// number checks the number grammar of RFC 8259 and keeps the text as it is.
func (p *parser) number() (any, *parseError) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos >= len(d):
		return nil, p.eof()
	case d[p.pos] == '0':
		p.pos++
	case '1' <= d[p.pos] && d[p.pos] <= '9':
		p.skipDigits()
	default:
		return nil, p.unexpected("in numeric literal")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if err := p.someDigits("after decimal point in numeric literal"); err != nil {
			return nil, err
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		digits := p.pos
		if err := p.someDigits("in exponent of numeric literal"); err != nil {
			return nil, err
		}
		// JSON sets no bound, but the validator works with exact rationals:
		// an exponent in the millions makes it fail (and would cost it
		// megabytes). No float64 needs more than 3 digits.
		if e, err := strconv.Atoi(string(d[digits:p.pos])); err != nil || e > maxExponent {
			return nil, p.fail(start, fmt.Sprintf("numeric literal out of range: exponent beyond %d", maxExponent))
		}
	}
	return json.Number(d[start:p.pos]), nil
}

// maxExponent bounds the exponent of a numeric literal (1e400 is in, well
// past float64; 1e6000000 is out).
const maxExponent = 9999

func (p *parser) skipDigits() {
	for p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9' {
		p.pos++
	}
}

func (p *parser) someDigits(context string) *parseError {
	if p.pos >= len(p.data) {
		return p.eof()
	}
	if c := p.data[p.pos]; c < '0' || c > '9' {
		return p.unexpected(context)
	}
	p.skipDigits()
	return nil
}

// string parses the string literal at p.pos. Most strings have no escapes, and
// those are copied out of the input in one piece.
func (p *parser) string() (string, *parseError) {
	d := p.data
	start := p.pos + 1
	i := start
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(d[start:i]), nil
		case c == '\\':
			return p.unescape(start, i)
		case c < ' ':
			p.pos = i
			return "", p.unexpected("in string literal")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail(i, "invalid UTF-8")
			}
			i += size
		}
	}
	return "", p.eof()
}

// unescape finishes a string literal that has escapes, start being the first
// byte after the opening quote and i the first backslash. It decodes as
// encoding/json does, down to turning an unpaired surrogate into U+FFFD.
func (p *parser) unescape(start, i int) (string, *parseError) {
	d := p.data
	b := make([]byte, i-start, i-start+16)
	copy(b, d[start:i])
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(b), nil
		case c == '\\':
			i++
			if i >= len(d) {
				return "", p.eof()
			}
			switch d[i] {
			case '"', '\\', '/':
				b = append(b, d[i])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, err := p.hex4(i + 1)
				if err != nil {
					return "", err
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// Only a well-formed \uXXXX right after can complete the
					// pair; anything else leaves it unpaired and unconsumed.
					if i+6 <= len(d) && d[i] == '\\' && d[i+1] == 'u' {
						if r2, err := p.hex4(i + 2); err == nil {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								b = utf8.AppendRune(b, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				p.pos = i
				return "", p.unexpected("in string escape code")
			}
			i++
		case c < ' ':
			p.pos = i
			return "", p.unexpected("in string literal")
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail(i, "invalid UTF-8")
			}
			b = append(b, d[i:i+size]...)
			i += size
		}
	}
	return "", p.eof()
}

// hex4 reads the four hex digits of a \u escape starting at off.
func (p *parser) hex4(off int) (rune, *parseError) {
	var r rune
	for j := off; j < off+4; j++ {
		if j >= len(p.data) {
			return 0, p.eof()
		}
		c := p.data[j]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			p.pos = j
			return 0, p.unexpected(`in \u hexadecimal character escape`)
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// escapeToken escapes one reference token as RFC 6901 requires.
func escapeToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
