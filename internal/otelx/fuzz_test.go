package otelx_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard-dev/switchyard/internal/otelx"
)

// The only shapes a headers error may take: a position, and a key once
// it is a valid header name; never anything of a value.
var headersError = regexp.MustCompile(`^entry [0-9]+( is not key=value|: the key is not a valid header name| \([!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+\): the value (is not percent-encoded properly|has a control character))$`)

// FuzzParseHeaders: OTEL_EXPORTER_OTLP_HEADERS never panics the parser;
// what it takes net/http can send, and reads back the same once
// re-encoded; what it refuses is refused without quoting a value.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{
		"", "a=b", "api-key=a%2Cb%3Dc, x-b = 2 ,", "Authorization=Bearer%20tok", "novalue", "=v", "k=%", "k=%zz",
		"k=a%0Db", "a b=c", "k=v,,k=w", "k=\t v \t", "k=%E2%82%AC", "k=\xff", "k=a=b=c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := otelx.ParseHeaders(s)
		if err != nil {
			if !headersError.MatchString(err.Error()) {
				t.Fatalf("%q: error %q has a shape that may show a value", s, err)
			}
			return
		}
		var parts []string
		for k, vs := range h {
			if len(vs) != 1 || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("%q: %q=%q", s, k, vs)
			}
			v := vs[0]
			if v != strings.TrimSpace(v) || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("%q: %s value %q", s, k, v)
			}
			parts = append(parts, k+"="+percentEncode(v))
		}
		again, err := otelx.ParseHeaders(strings.Join(parts, ","))
		if err != nil || len(again) != len(h) {
			t.Fatalf("%q: re-encoded %q: %v, %v", s, parts, again, err)
		}
		for k := range h {
			if again.Get(k) != h.Get(k) {
				t.Fatalf("%q: %s is %q, re-encoded %q", s, k, h.Get(k), again.Get(k))
			}
		}
	})
}

func percentEncode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

// FuzzParseExportResponse: a receiver's answer, whatever its bytes,
// never panics the exporter, and a well-formed partial success, among
// fields it does not know, reads back as it was written.
func FuzzParseExportResponse(f *testing.F) {
	f.Add(int64(3), "attribute too long", []byte{})
	f.Add(int64(0), "", []byte{0x08, 0x01})
	f.Add(int64(-1), "\xff", []byte{0x1a, 0x02, 0x08})
	f.Add(int64(1), "x", []byte{0x0b, 0x0c}) // a group
	f.Fuzz(func(t *testing.T, rejected int64, msg string, junk []byte) {
		_, _, _ = otelx.ParseExportResponse(junk)
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(rejected))
		ps = protowire.AppendTag(ps, 9, protowire.BytesType) // unknown, skipped
		ps = protowire.AppendBytes(ps, junk)
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
		var b []byte
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type) // unknown, skipped
		b = protowire.AppendFixed64(b, 7)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ps)
		n, m, err := otelx.ParseExportResponse(b)
		if err != nil || n != rejected || m != msg {
			t.Fatalf("(%d, %q) read back as (%d, %q), %v", rejected, msg, n, m, err)
		}
		if s := otelx.Sanitize(msg); len(s) > 300+len("…") || strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("sanitized %q to %q", msg, s)
		}
	})
}
