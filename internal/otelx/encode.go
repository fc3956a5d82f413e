package otelx

import (
	"math"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP messages this file writes, with their field numbers, from
// opentelemetry/proto/{trace,common,resource}/v1 (the request body of
// POST /v1/traces, ExportTraceServiceRequest, has the wire shape of
// TracesData: field 1, repeated ResourceSpans). Encoding with protowire
// rather than the generated tracepb types keeps the protobuf runtime
// (reflection, descriptors) and the generated OTLP packages out of every
// function binary; otlptest decodes what this writes with the generated
// types, and rejects fields they do not know.
const (
	tracesDataResourceSpans = 1

	resourceSpansResource   = 1
	resourceSpansScopeSpans = 2
	resourceSpansSchemaURL  = 3

	resourceAttributes = 1

	scopeSpansScope     = 1
	scopeSpansSpans     = 2
	scopeSpansSchemaURL = 3

	scopeName       = 1
	scopeVersion    = 2
	scopeAttributes = 3

	spanTraceID           = 1
	spanSpanID            = 2
	spanTraceState        = 3
	spanParentSpanID      = 4
	spanName              = 5
	spanKind              = 6
	spanStartTime         = 7
	spanEndTime           = 8
	spanAttributes        = 9
	spanDroppedAttributes = 10
	spanEvents            = 11
	spanDroppedEvents     = 12
	spanLinks             = 13
	spanDroppedLinks      = 14
	spanStatus            = 15
	spanFlags             = 16

	eventTime              = 1
	eventName              = 2
	eventAttributes        = 3
	eventDroppedAttributes = 4

	linkTraceID           = 1
	linkSpanID            = 2
	linkTraceState        = 3
	linkAttributes        = 4
	linkDroppedAttributes = 5
	linkFlags             = 6

	statusMessage = 2
	statusCode    = 3

	keyValueKey   = 1
	keyValueValue = 2

	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKvlist = 6
	anyBytes  = 7

	arrayValues  = 1
	kvlistValues = 1

	// OTLP's Status.StatusCode (not the numbering of otel/codes).
	statusCodeOK    = 1
	statusCodeError = 2

	// SpanFlags: bits 0-7 are the W3C trace flags.
	flagsHasIsRemote = 0x100
	flagsIsRemote    = 0x200
)

// appendTraces appends spans to b as an OTLP TracesData (and so
// ExportTraceServiceRequest) message: grouped by resource, then by
// instrumentation scope, each group in the order of its first span.
func appendTraces(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	type scopeGroup struct {
		scope instrumentation.Scope
		spans []sdktrace.ReadOnlySpan
	}
	type resourceGroup struct {
		res    *resource.Resource
		scopes []*scopeGroup
	}
	type scopeKey struct {
		res   attribute.Distinct
		scope instrumentation.Scope
	}
	var groups []*resourceGroup
	byResource := map[attribute.Distinct]*resourceGroup{}
	byScope := map[scopeKey]*scopeGroup{}
	for _, s := range spans {
		if s == nil {
			continue
		}
		res, scope := s.Resource(), s.InstrumentationScope()
		rk := res.Equivalent()
		rg := byResource[rk]
		if rg == nil {
			rg = &resourceGroup{res: res}
			byResource[rk] = rg
			groups = append(groups, rg)
		}
		sk := scopeKey{rk, scope}
		sg := byScope[sk]
		if sg == nil {
			sg = &scopeGroup{scope: scope}
			byScope[sk] = sg
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, s)
	}

	w := pbWriter{b: b}
	for _, rg := range groups {
		rs := w.open(tracesDataResourceSpans)
		if rg.res != nil {
			r := w.open(resourceSpansResource)
			for it := rg.res.Iter(); it.Next(); {
				w.keyValue(resourceAttributes, it.Attribute())
			}
			w.close(r)
		}
		for _, sg := range rg.scopes {
			ss := w.open(resourceSpansScopeSpans)
			if sg.scope != (instrumentation.Scope{}) {
				sc := w.open(scopeSpansScope)
				w.string(scopeName, sg.scope.Name)
				w.string(scopeVersion, sg.scope.Version)
				for it := sg.scope.Attributes.Iter(); it.Next(); {
					w.keyValue(scopeAttributes, it.Attribute())
				}
				w.close(sc)
			}
			for _, s := range sg.spans {
				w.span(s)
			}
			w.string(scopeSpansSchemaURL, sg.scope.SchemaURL)
			w.close(ss)
		}
		w.string(resourceSpansSchemaURL, rg.res.SchemaURL())
		w.close(rs)
	}
	return w.b
}

func (w *pbWriter) span(s sdktrace.ReadOnlySpan) {
	m := w.open(scopeSpansSpans)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	w.bytes(spanTraceID, tid[:])
	w.bytes(spanSpanID, sid[:])
	w.string(spanTraceState, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		w.bytes(spanParentSpanID, psid[:])
	}
	w.string(spanName, s.Name())
	w.uint(spanKind, kindOf(s.SpanKind()))
	w.fixed64(spanStartTime, unixNano(s.StartTime()))
	w.fixed64(spanEndTime, unixNano(s.EndTime()))
	for _, kv := range s.Attributes() {
		w.keyValue(spanAttributes, kv)
	}
	w.uint(spanDroppedAttributes, count(s.DroppedAttributes()))
	for _, e := range s.Events() {
		em := w.open(spanEvents)
		w.fixed64(eventTime, unixNano(e.Time))
		w.string(eventName, e.Name)
		for _, kv := range e.Attributes {
			w.keyValue(eventAttributes, kv)
		}
		w.uint(eventDroppedAttributes, count(e.DroppedAttributeCount))
		w.close(em)
	}
	w.uint(spanDroppedEvents, count(s.DroppedEvents()))
	for _, l := range s.Links() {
		lm := w.open(spanLinks)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		w.bytes(linkTraceID, ltid[:])
		w.bytes(linkSpanID, lsid[:])
		w.string(linkTraceState, l.SpanContext.TraceState().String())
		for _, kv := range l.Attributes {
			w.keyValue(linkAttributes, kv)
		}
		w.uint(linkDroppedAttributes, count(l.DroppedAttributeCount))
		w.fixed32(linkFlags, flagsOf(l.SpanContext.TraceFlags(), l.SpanContext.IsRemote()))
		w.close(lm)
	}
	w.uint(spanDroppedLinks, count(s.DroppedLinks()))
	if st := s.Status(); st.Code != codes.Unset || st.Description != "" {
		sm := w.open(spanStatus)
		w.string(statusMessage, st.Description)
		switch st.Code {
		case codes.Ok:
			w.uint(statusCode, statusCodeOK)
		case codes.Error:
			w.uint(statusCode, statusCodeError)
		}
		w.close(sm)
	}
	w.fixed32(spanFlags, flagsOf(sc.TraceFlags(), parent.IsRemote()))
	w.close(m)
}

// kindOf is OTLP's Span.SpanKind of k (the same numbers, checked).
func kindOf(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer:
		return uint64(k)
	}
	return 0 // SPAN_KIND_UNSPECIFIED
}

// flagsOf is a span's or link's SpanFlags: the W3C trace flags, and
// whether the parent (or linked) context is remote.
func flagsOf(tf trace.TraceFlags, remote bool) uint32 {
	f := uint32(tf) | flagsHasIsRemote
	if remote {
		f |= flagsIsRemote
	}
	return f
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(max(0, t.UnixNano()))
}

func count(n int) uint64 { return uint64(min(max(0, n), math.MaxUint32)) }

// pbWriter appends protobuf fields to b. Fields with their type's zero
// value are left out, as proto3 encoders do, except in AnyValue's oneof,
// where the field's presence is the value's type.
type pbWriter struct{ b []byte }

// open starts an embedded message field num and returns where its body
// starts, for close. It reserves one byte for the length, enough for
// bodies under 128 bytes; close moves longer ones along.
func (w *pbWriter) open(num protowire.Number) int {
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = append(w.b, 0)
	return len(w.b)
}

// close ends the message that open started at start, writing its length.
func (w *pbWriter) close(start int) {
	n := len(w.b) - start
	size := protowire.SizeVarint(uint64(n))
	if size > 1 {
		w.b = slices.Grow(w.b, size-1)[:len(w.b)+size-1]
		copy(w.b[start+size-1:], w.b[start:start+n])
	}
	protowire.AppendVarint(w.b[start-1:start-1], uint64(n))
}

func (w *pbWriter) string(num protowire.Number, s string) {
	if s != "" {
		w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
		w.b = protowire.AppendString(w.b, s)
	}
}

func (w *pbWriter) bytes(num protowire.Number, p []byte) {
	if len(p) > 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
		w.b = protowire.AppendBytes(w.b, p)
	}
}

func (w *pbWriter) uint(num protowire.Number, v uint64) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, v)
	}
}

func (w *pbWriter) fixed64(num protowire.Number, v uint64) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.Fixed64Type)
		w.b = protowire.AppendFixed64(w.b, v)
	}
}

func (w *pbWriter) fixed32(num protowire.Number, v uint32) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.Fixed32Type)
		w.b = protowire.AppendFixed32(w.b, v)
	}
}

// keyValue writes kv as a KeyValue message in field num.
func (w *pbWriter) keyValue(num protowire.Number, kv attribute.KeyValue) {
	m := w.open(num)
	w.string(keyValueKey, string(kv.Key))
	w.anyValue(keyValueValue, kv.Value)
	w.close(m)
}

// anyValue writes v as an AnyValue message in field num. An empty value
// is an AnyValue with no field set.
func (w *pbWriter) anyValue(num protowire.Number, v attribute.Value) {
	m := w.open(num)
	switch v.Type() {
	case attribute.EMPTY:
	case attribute.BOOL:
		w.oneofBool(v.AsBool())
	case attribute.INT64:
		w.oneofInt(v.AsInt64())
	case attribute.FLOAT64:
		w.oneofDouble(v.AsFloat64())
	case attribute.STRING:
		w.oneofString(v.AsString())
	case attribute.BYTESLICE:
		w.b = protowire.AppendTag(w.b, anyBytes, protowire.BytesType)
		w.b = protowire.AppendBytes(w.b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		a := w.open(anyArray)
		for _, x := range v.AsBoolSlice() {
			e := w.open(arrayValues)
			w.oneofBool(x)
			w.close(e)
		}
		w.close(a)
	case attribute.INT64SLICE:
		a := w.open(anyArray)
		for _, x := range v.AsInt64Slice() {
			e := w.open(arrayValues)
			w.oneofInt(x)
			w.close(e)
		}
		w.close(a)
	case attribute.FLOAT64SLICE:
		a := w.open(anyArray)
		for _, x := range v.AsFloat64Slice() {
			e := w.open(arrayValues)
			w.oneofDouble(x)
			w.close(e)
		}
		w.close(a)
	case attribute.STRINGSLICE:
		a := w.open(anyArray)
		for _, x := range v.AsStringSlice() {
			e := w.open(arrayValues)
			w.oneofString(x)
			w.close(e)
		}
		w.close(a)
	case attribute.SLICE:
		a := w.open(anyArray)
		for _, x := range v.AsSlice() {
			w.anyValue(arrayValues, x)
		}
		w.close(a)
	case attribute.MAP:
		l := w.open(anyKvlist)
		for _, kv := range v.AsMap() {
			w.keyValue(kvlistValues, kv)
		}
		w.close(l)
	default:
		w.oneofString("INVALID") // as the otlptrace exporters do
	}
	w.close(m)
}

func (w *pbWriter) oneofBool(x bool) {
	w.b = protowire.AppendTag(w.b, anyBool, protowire.VarintType)
	w.b = protowire.AppendVarint(w.b, protowire.EncodeBool(x))
}

func (w *pbWriter) oneofInt(x int64) {
	w.b = protowire.AppendTag(w.b, anyInt, protowire.VarintType)
	w.b = protowire.AppendVarint(w.b, uint64(x))
}

func (w *pbWriter) oneofDouble(x float64) {
	w.b = protowire.AppendTag(w.b, anyDouble, protowire.Fixed64Type)
	w.b = protowire.AppendFixed64(w.b, math.Float64bits(x))
}

func (w *pbWriter) oneofString(x string) {
	w.b = protowire.AppendTag(w.b, anyString, protowire.BytesType)
	w.b = protowire.AppendString(w.b, x)
}
