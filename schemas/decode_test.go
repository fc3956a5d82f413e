package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		lim    DecodeLimits
		msg    string
		ptr    string
		offset int64
	}{
		{"empty", ``, DecodeLimits{}, "empty body", "", 0},
		{"only white space", " \n\t\r ", DecodeLimits{}, "empty body", "", 5},

		{"invalid UTF-8 in a value", "{\"a\":\"ok\xffok\"}", DecodeLimits{}, "invalid UTF-8", "/a", 8},
		{"invalid UTF-8 in a key", "{\"k\xc3\":1}", DecodeLimits{}, "invalid UTF-8", "", 3},
		{"invalid UTF-8 deep in an array", "[1,[\"\xed\xa0\x80\"]]", DecodeLimits{}, "invalid UTF-8", "/1/0", 5},
		{"invalid UTF-8 after an escape", "[\"\\n\xff\"]", DecodeLimits{}, "invalid UTF-8", "/0", 4},
		{"invalid UTF-8 outside strings", "[1,\xff]", DecodeLimits{}, "invalid UTF-8", "/1", 3},
		{"invalid UTF-8 after the value", "{} \xfe", DecodeLimits{}, "invalid UTF-8", "", 3},

		{"truncated object", `{"a":1`, DecodeLimits{}, "unexpected end of JSON input", "", 6},
		{"truncated key", `{"a`, DecodeLimits{}, "unexpected end of JSON input", "", 3},
		{"truncated value", `{"a":[1,{"b":`, DecodeLimits{}, "unexpected end of JSON input", "/a/1/b", 13},
		{"truncated literal", `[tru`, DecodeLimits{}, "unexpected end of JSON input", "/0", 4},
		{"truncated escape", `"\u12`, DecodeLimits{}, "unexpected end of JSON input", "", 5},
		{"truncated number", `[1e`, DecodeLimits{}, "unexpected end of JSON input", "/0", 3},
		{"exponent out of range", `{"id":1e6055550}`, DecodeLimits{}, "numeric literal out of range: exponent beyond 9999", "/id", 6},
		{"negative exponent out of range", `[2.5E-10000]`, DecodeLimits{}, "numeric literal out of range: exponent beyond 9999", "/0", 1},
		{"missing value", `{"a":}`, DecodeLimits{}, "invalid character '}' looking for beginning of value", "/a", 5},
		{"missing colon", `{"a" 1}`, DecodeLimits{}, "invalid character '1' after object key", "", 5},
		{"trailing comma in object", `{"a":1,}`, DecodeLimits{}, "invalid character '}' looking for beginning of object key string", "", 7},
		{"trailing comma in array", `[1,]`, DecodeLimits{}, "invalid character ']' looking for beginning of value", "/1", 3},
		{"missing comma", `[1 2]`, DecodeLimits{}, "invalid character '2' after array element", "", 3},
		{"unquoted key", `{a:1}`, DecodeLimits{}, "invalid character 'a' looking for beginning of object key string", "", 1},
		{"single quotes", `['a']`, DecodeLimits{}, `invalid character '\'' looking for beginning of value`, "/0", 1},
		{"bad literal", `[nul1]`, DecodeLimits{}, "invalid character '1' in literal null (expecting 'l')", "/0", 4},
		{"leading zero", `[01]`, DecodeLimits{}, "invalid character '1' after array element", "", 2},
		{"bare minus", `-`, DecodeLimits{}, "unexpected end of JSON input", "", 1},
		{"minus letter", `-a`, DecodeLimits{}, "invalid character 'a' in numeric literal", "", 1},
		{"dot without digits", `1.e5`, DecodeLimits{}, "invalid character 'e' after decimal point in numeric literal", "", 2},
		{"plus sign", `+1`, DecodeLimits{}, "invalid character '+' looking for beginning of value", "", 0},
		{"NaN", `NaN`, DecodeLimits{}, "invalid character 'N' looking for beginning of value", "", 0},
		{"control character in string", "[\"a\tb\"]", DecodeLimits{}, `invalid character '\t' in string literal`, "/0", 3},
		{"bad escape", `{"a":"\x41"}`, DecodeLimits{}, "invalid character 'x' in string escape code", "/a", 7},
		{"bad unicode escape", `"\u12g4"`, DecodeLimits{}, `invalid character 'g' in \u hexadecimal character escape`, "", 5},
		{"non-ASCII where a value starts", `[é]`, DecodeLimits{}, "invalid character 'é' looking for beginning of value", "/0", 1},

		{"trailing object", `{}{}`, DecodeLimits{}, "trailing data after JSON value", "", 2},
		{"trailing word", `{"a":1} x`, DecodeLimits{}, "trailing data after JSON value", "", 8},
		{"trailing number", `1 2`, DecodeLimits{}, "trailing data after JSON value", "", 2},
		{"trailing bracket", `[1]]`, DecodeLimits{}, "trailing data after JSON value", "", 3},
		{"trailing NUL", "{}\x00", DecodeLimits{}, "trailing data after JSON value", "", 2},

		{"duplicate key", `{"a":1,"a":2}`, DecodeLimits{}, `duplicate key "a"`, "/a", 7},
		{"duplicate key, same value", `{"a":1,"b":2,"a":1}`, DecodeLimits{}, `duplicate key "a"`, "/a", 13},
		{"duplicate nested key", `{"x":{"y":[{"k":1},{"k":1,"k":2}]}}`, DecodeLimits{}, `duplicate key "k"`, "/x/y/1/k", 26},
		{"duplicate key spelled with escapes", `{"a":1,"\u0061":2}`, DecodeLimits{}, `duplicate key "a"`, "/a", 7},
		{"duplicate key that needs escaping", `{"a/b~":1,"a/b~":2}`, DecodeLimits{}, `duplicate key "a/b~"`, "/a~1b~0", 10},

		{"too deep array", strings.Repeat("[", 10000), DecodeLimits{}, "nesting deeper than 64", strings.Repeat("/0", 64), 64},
		{"too deep object", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), DecodeLimits{}, "nesting deeper than 64", strings.Repeat("/a", 64), 320},
		{"one past a custom limit", `[[[1]]]`, DecodeLimits{MaxDepth: 2}, "nesting deeper than 2", "/0/0", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Decode([]byte(tt.body), tt.lim)
			if err == nil {
				t.Fatalf("accepted as %#v", v)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Message != tt.msg || de.Pointer != tt.ptr || de.Offset != tt.offset {
				t.Errorf("got message %q pointer %q offset %d\nwant message %q pointer %q offset %d",
					de.Message, de.Pointer, de.Offset, tt.msg, tt.ptr, tt.offset)
			}
			if json.Valid([]byte(tt.body)) && !strictOnly(de) {
				t.Errorf("encoding/json accepts the body, so the refusal must be one of Decode's own: %v", err)
			}
		})
	}
}

func TestDecodeErrorString(t *testing.T) {
	_, err := Decode([]byte(`{"a":{"b":1,"b":2}}`), DecodeLimits{})
	if got, want := err.Error(), `duplicate key "b" at /a/b`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = Decode([]byte(`{} x`), DecodeLimits{})
	if got, want := err.Error(), "trailing data after JSON value"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestDecodeHostileNesting checks that deep bodies are refused as soon as the
// limit is passed: the allocation count would grow with the body otherwise.
func TestDecodeHostileNesting(t *testing.T) {
	const mib = 1 << 20
	bodies := map[string][]byte{
		"1 MiB of [":          bytes.Repeat([]byte("["), mib),
		"1 MiB of {\"a\":":    bytes.Repeat([]byte(`{"a":`), mib/5),
		"1 MiB of [{\"a\":":   bytes.Repeat([]byte(`[{"a":`), mib/6),
		"10000 deep, closed":  []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)),
		"huge limit, 1 MiB [": bytes.Repeat([]byte("["), mib),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			lim := DecodeLimits{}
			if strings.HasPrefix(name, "huge limit") {
				lim.MaxDepth = 1 << 30 // capped at 10000, so this still ends early
			}
			allocs := testing.AllocsPerRun(3, func() {
				_, err := Decode(body, lim)
				var de *DecodeError
				if !errors.As(err, &de) || !strings.HasPrefix(de.Message, "nesting deeper than") {
					t.Fatalf("got %v, want a nesting error", err)
				}
			})
			if allocs > 200 && lim.MaxDepth == 0 {
				t.Errorf("%v allocations: the body was not refused early", allocs)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		lim  DecodeLimits
		want any
	}{
		{"object", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, DecodeLimits{}, map[string]any{
			"a": json.Number("1"), "b": []any{true, false, nil}, "c": map[string]any{"d": "e"},
		}},
		{"big integers kept exactly", `{"id":123456789012345678901234567890,"n":-9007199254740993}`, DecodeLimits{},
			map[string]any{"id": json.Number("123456789012345678901234567890"), "n": json.Number("-9007199254740993")}},
		{"number forms kept as written", `[0,-0,1.50,1e3,1E+3,2.5e-7]`, DecodeLimits{},
			[]any{json.Number("0"), json.Number("-0"), json.Number("1.50"), json.Number("1e3"), json.Number("1E+3"), json.Number("2.5e-7")}},
		{"exponents up to 9999", `[1e9999,1e-9999,1e400]`, DecodeLimits{},
			[]any{json.Number("1e9999"), json.Number("1e-9999"), json.Number("1e400")}},
		{"scalar roots", `"s"`, DecodeLimits{}, "s"},
		{"null root", `null`, DecodeLimits{}, nil},
		{"empty containers", `{"o":{},"a":[]}`, DecodeLimits{}, map[string]any{"o": map[string]any{}, "a": []any{}}},
		{"white space everywhere", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n\t ", DecodeLimits{}, map[string]any{"a": []any{json.Number("1"), json.Number("2")}}},
		{"escapes", `"\"\\\/\b\f\n\r\t\u00e9\u20AC"`, DecodeLimits{}, "\"\\/\b\f\n\r\té€"},
		{"surrogate pair", `"\ud83d\ude00"`, DecodeLimits{}, "😀"},
		{"lone surrogates become U+FFFD", `["\ud800","\udc00x","\ud800\u0041"]`, DecodeLimits{}, []any{"\ufffd", "\ufffdx", "\ufffdA"}},
		{"UTF-8 text", `{"名前":"Ada 👩‍💻"}`, DecodeLimits{}, map[string]any{"名前": "Ada 👩‍💻"}},
		{"same key in sibling objects", `[{"a":1},{"a":2}]`, DecodeLimits{}, []any{map[string]any{"a": json.Number("1")}, map[string]any{"a": json.Number("2")}}},
		{"exactly the default depth", strings.Repeat("[", 64) + strings.Repeat("]", 64), DecodeLimits{}, nest(64)},
		{"exactly a custom depth", `[[1]]`, DecodeLimits{MaxDepth: 2}, []any{[]any{json.Number("1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body), tt.lim)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func nest(depth int) any {
	v := []any{}
	for range depth - 1 {
		v = []any{v}
	}
	return v
}

// strictOnly reports whether a refusal is one that encoding/json would not
// make: everything else Decode refuses, json.Valid refuses too.
func strictOnly(err *DecodeError) bool {
	return err.Message == "invalid UTF-8" ||
		strings.HasPrefix(err.Message, "duplicate key ") ||
		strings.HasPrefix(err.Message, "nesting deeper than ") ||
		strings.HasPrefix(err.Message, "numeric literal out of range")
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `[]`, `null`, `true`, `-0.5e+10`, `"\u00e9\ud83d\ude00\ud800"`,
		`{"a":1,"a":2}`, `{"a":{"b":[1,{"c":null}]}}`, `{}{}`, `{"a":1} x`, `[1,]`,
		"\"\xff\"", "{\"\xff\":1}", `123456789012345678901234567890`, `[[[[[[[[[[]]]]]]]]]]`,
		`{"a\/b":"\"","":""}`, "[1,\n2\t,3\r]", `01`, `1.`, `"\x"`, validOrder,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data, DecodeLimits{})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if de.Offset < 0 || de.Offset > int64(len(data)) {
				t.Fatalf("offset %d outside the body of %d bytes", de.Offset, len(data))
			}
			if json.Valid(data) && !strictOnly(de) {
				t.Fatalf("json.Valid accepts %q, Decode says %v", data, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted %q, which json.Valid refuses", data)
		}
		// Same result as the standard decoder with numbers kept as text.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", data, err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json says %#v", data, v, want)
		}
		// Encoding and decoding again is stable.
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("cannot encode %#v: %v", v, err)
		}
		again, err := Decode(out, DecodeLimits{})
		if err != nil {
			t.Fatalf("re-encoded %q refused: %v", out, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed %#v into %#v", v, again)
		}
	})
}

// benchBody is a typical request of about 300 bytes.
var benchBody = []byte(`{"order_id":"ord_01HZX3K9Q2","customer":{"id":12345678901234567,"name":"Ada Lovelace","email":"ada@example.com"},"items":[{"sku":"BK-001","qty":2,"price":12.5},{"sku":"PN-204","qty":1,"price":3.75}],"currency":"EUR","gift":false,"note":null,"placed_at":"2024-05-01T12:34:56Z"}`)

// BenchmarkDecode compares Decode with json.Unmarshal into any, the baseline
// it must keep up with; compare the ns/op of the two sub-benchmarks.
func BenchmarkDecode(b *testing.B) {
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			if _, err := Decode(benchBody, DecodeLimits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			var v any
			if err := json.Unmarshal(benchBody, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Decoder.UseNumber", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(benchBody))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	s := orderSchema(b)
	doc, err := Decode([]byte(validOrder), DecodeLimits{})
	if err != nil {
		b.Fatal(err)
	}
	bad, err := Decode([]byte(`{"id":1,"lines":[{"qty":0}],"x":1}`), DecodeLimits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if vs := s.Validate(doc); vs != nil {
				b.Fatal(vs)
			}
		}
	})
	b.Run("invalid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if vs := s.Validate(bad); vs == nil {
				b.Fatal("accepted")
			}
		}
	})
}
