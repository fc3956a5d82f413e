package otelx_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-dev/switchyard/internal/otelx"
	"github.com/switchyard-dev/switchyard/internal/otelx/otlptest"
)

const schemaURL = "https://opentelemetry.io/schemas/1.26.0"

var (
	remoteParent = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID("4bf92f3577b34da6a3ce929d0e0e4736"),
		SpanID:     mustSpanID("00f067aa0ba902b7"),
		TraceFlags: trace.FlagsSampled,
		TraceState: mustTraceState("vendor=a,other=b"),
		Remote:     true,
	})
	linked = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    mustTraceID("0af7651916cd43dd8448eb211c80319c"),
		SpanID:     mustSpanID("b7ad6b7169203331"),
		TraceState: mustTraceState("k=v"),
		Remote:     true,
	})
	// Every type of attribute value, zero values of the oneof included.
	allTypes = []attribute.KeyValue{
		attribute.String("s", "text"), attribute.String("s0", ""),
		attribute.Bool("b", true), attribute.Bool("b0", false),
		attribute.Int64("i", -42), attribute.Int64("i0", 0),
		attribute.Float64("f", 2.5), attribute.Float64("f0", 0),
		attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, 0, -1}),
		attribute.Float64Slice("fs", []float64{0.5, 0}),
		attribute.StringSlice("ss", []string{"a", ""}),
		attribute.ByteSlice("bytes", []byte{0, 1, 0xff}),
		attribute.Slice("mixed", attribute.StringValue("x"), attribute.Int64Value(7), attribute.SliceValue(attribute.BoolValue(true))),
		attribute.Map("map", attribute.String("k", "v"), attribute.Map("inner", attribute.Float64("pi", 3.14))),
		attribute.String("long", strings.Repeat("x", 300)), // a length of two varint bytes
		attribute.String("over", "the limit"),              // dropped
	}
)

func mustTraceID(s string) trace.TraceID {
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		panic(err)
	}
	return id
}

func mustSpanID(s string) trace.SpanID {
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		panic(err)
	}
	return id
}

func mustTraceState(s string) trace.TraceState {
	ts, err := trace.ParseTraceState(s)
	if err != nil {
		panic(err)
	}
	return ts
}

// makeSpans records spans of two resources and three scopes with every
// field OTLP has: kinds, a remote parent with a trace state, a link,
// events, statuses, attributes of every type, dropped counts.
func makeSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	var out []sdktrace.ReadOnlySpan
	for i, res := range []*resource.Resource{
		resource.NewWithAttributes(schemaURL, attribute.String("service.name", "greet"), attribute.String("service.instance.id", "greet-1")),
		resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.Int("n", 3)),
	} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res),
			sdktrace.WithSpanLimits(sdktrace.SpanLimits{AttributeCountLimit: len(allTypes) - 1, EventCountLimit: 2, LinkCountLimit: 1,
				AttributeValueLengthLimit: -1, AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 8}))
		a := tp.Tracer("scope-a", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL(schemaURL),
			trace.WithInstrumentationAttributes(attribute.String("lib", "x")))
		b := tp.Tracer("scope-b")

		ctx := trace.ContextWithRemoteSpanContext(context.Background(), remoteParent)
		ctx, server := a.Start(ctx, fmt.Sprintf("invoke %d", i), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(allTypes...),
			trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "queued")}},
				trace.Link{SpanContext: linked})) // over the limit: dropped
		server.AddEvent("dropped") // the oldest over the limit
		server.AddEvent("e2")
		server.AddEvent("retry", trace.WithAttributes(attribute.Int("yard.attempt", 2), attribute.Int("over", 1)))
		_, client := a.Start(ctx, "call catalog", trace.WithSpanKind(trace.SpanKindClient))
		client.SetStatus(codes.Error, "unavailable: \"catalog\" is down")
		client.End()
		for _, k := range []trace.SpanKind{trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKindInternal} {
			_, s := b.Start(ctx, k.String(), trace.WithSpanKind(k))
			s.End()
		}
		server.SetStatus(codes.Ok, "")
		server.End()
		_, root := tp.Tracer("").Start(context.Background(), "root")
		root.End()
		out = append(out, rec.Ended()...)
	}
	return out
}

func exporter(t *testing.T, vars map[string]string) sdktrace.SpanExporter {
	t.Helper()
	exp, err := otelx.NewExporter(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// TestExportFields: every field of every span arrives, decoded by the
// generated OTLP types of a strict receiver (no unknown field), grouped
// by resource and scope.
func TestExportFields(t *testing.T) {
	rcv := otlptest.Start(t)
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL})
	spans := makeSpans(t)
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if log := rcv.Log(); len(log) != 1 || log[0].Status != http.StatusOK {
		t.Fatalf("requests %+v", log)
	}
	got := rcv.ResourceSpans()
	if len(got) != 2 {
		t.Fatalf("%d ResourceSpans, want 2 (one per resource)", len(got))
	}
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	n := 0
	for _, rs := range got {
		var scopes []string
		for _, ss := range rs.GetScopeSpans() {
			scopes = append(scopes, ss.GetScope().GetName())
			for _, s := range ss.GetSpans() {
				n++
				want := byID[hex.EncodeToString(s.GetSpanId())]
				if want == nil {
					t.Errorf("span %v was not sent", s)
					continue
				}
				res := want.Resource()
				if rs.GetSchemaUrl() != res.SchemaURL() ||
					!proto.Equal(&commonpb.KeyValueList{Values: rs.GetResource().GetAttributes()}, &commonpb.KeyValueList{Values: wantKVs(res.Attributes())}) {
					t.Errorf("span %q under resource %v (schema %q), want %v", want.Name(), rs.GetResource(), rs.GetSchemaUrl(), res)
				}
				sc := want.InstrumentationScope()
				if ss.GetScope().GetName() != sc.Name || ss.GetScope().GetVersion() != sc.Version || ss.GetSchemaUrl() != sc.SchemaURL ||
					!proto.Equal(&commonpb.KeyValueList{Values: ss.GetScope().GetAttributes()}, &commonpb.KeyValueList{Values: wantKVs(sc.Attributes.ToSlice())}) {
					t.Errorf("span %q in scope %v, want %+v", want.Name(), ss.GetScope(), sc)
				}
				if !proto.Equal(s, wantSpan(want)) {
					t.Errorf("span %q:\n got %v\nwant %v", want.Name(), s, wantSpan(want))
				}
			}
		}
		// One ScopeSpans per scope, in the order of their first span.
		if want := "scope-a,scope-b,go.opentelemetry.io/otel/sdk/tracer"; strings.Join(scopes, ",") != want {
			t.Errorf("scopes %q, want %s", scopes, want)
		}
	}
	if n != len(spans) {
		t.Fatalf("%d spans arrived, %d sent", n, len(spans))
	}
	// The dropped counts were really checked.
	for _, s := range spans {
		if s.Name() == "invoke 0" && (s.DroppedAttributes() != 1 || s.DroppedEvents() != 1 || s.DroppedLinks() != 1 || s.Events()[1].DroppedAttributeCount != 1) {
			t.Errorf("span %q dropped attributes %d, events %d, links %d", s.Name(), s.DroppedAttributes(), s.DroppedEvents(), s.DroppedLinks())
		}
	}
}

// wantSpan is the OTLP span of s, built with the generated types from
// the specification's mapping, independently of the exporter's encoder.
func wantSpan(s sdktrace.ReadOnlySpan) *tracepb.Span {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	p := &tracepb.Span{
		TraceId: tid[:], SpanId: sid[:], TraceState: sc.TraceState().String(), Name: s.Name(),
		Kind:              tracepb.Span_SpanKind(s.SpanKind()),
		StartTimeUnixNano: uint64(s.StartTime().UnixNano()), EndTimeUnixNano: uint64(s.EndTime().UnixNano()),
		Attributes: wantKVs(s.Attributes()), DroppedAttributesCount: uint32(s.DroppedAttributes()),
		DroppedEventsCount: uint32(s.DroppedEvents()), DroppedLinksCount: uint32(s.DroppedLinks()),
		Flags: uint32(sc.TraceFlags()) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK),
	}
	if s.Parent().IsRemote() {
		p.Flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	if psid := s.Parent().SpanID(); psid.IsValid() {
		p.ParentSpanId = psid[:]
	}
	for _, e := range s.Events() {
		p.Events = append(p.Events, &tracepb.Span_Event{TimeUnixNano: uint64(e.Time.UnixNano()), Name: e.Name,
			Attributes: wantKVs(e.Attributes), DroppedAttributesCount: uint32(e.DroppedAttributeCount)})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		f := uint32(l.SpanContext.TraceFlags()) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
		if l.SpanContext.IsRemote() {
			f |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
		}
		p.Links = append(p.Links, &tracepb.Span_Link{TraceId: ltid[:], SpanId: lsid[:], TraceState: l.SpanContext.TraceState().String(),
			Attributes: wantKVs(l.Attributes), DroppedAttributesCount: uint32(l.DroppedAttributeCount), Flags: f})
	}
	switch st := s.Status(); st.Code {
	case codes.Ok:
		p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK, Message: st.Description}
	case codes.Error:
		p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: st.Description}
	}
	return p
}

func wantKVs(kvs []attribute.KeyValue) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for _, kv := range kvs {
		out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: wantValue(kv.Value)})
	}
	return out
}

func wantValue(v attribute.Value) *commonpb.AnyValue {
	arr := func(vs []*commonpb.AnyValue) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
	}
	var vs []*commonpb.AnyValue
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.BOOLSLICE:
		for _, x := range v.AsBoolSlice() {
			vs = append(vs, wantValue(attribute.BoolValue(x)))
		}
	case attribute.INT64SLICE:
		for _, x := range v.AsInt64Slice() {
			vs = append(vs, wantValue(attribute.Int64Value(x)))
		}
	case attribute.FLOAT64SLICE:
		for _, x := range v.AsFloat64Slice() {
			vs = append(vs, wantValue(attribute.Float64Value(x)))
		}
	case attribute.STRINGSLICE:
		for _, x := range v.AsStringSlice() {
			vs = append(vs, wantValue(attribute.StringValue(x)))
		}
	case attribute.SLICE:
		for _, x := range v.AsSlice() {
			vs = append(vs, wantValue(x))
		}
	case attribute.MAP:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: wantKVs(v.AsMap())}}}
	default:
		return &commonpb.AnyValue{}
	}
	return arr(vs)
}

// TestExportHeadersGzip: the configured headers are sent (the traces
// variable winning over the generic one), the body is gzipped when
// asked, and the receiver reads it.
func TestExportHeadersGzip(t *testing.T) {
	rcv := otlptest.Start(t)
	exp := exporter(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":           rcv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS":            "x-ignored=1",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS":     "Authorization=Bearer%20s3cr%3Dt, x-scope-orgid = acme ,content-type=text/plain",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
	})
	spans := makeSpans(t)
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	log := rcv.Log()
	if len(log) != 1 || log[0].Status != http.StatusOK {
		t.Fatalf("requests %+v", log)
	}
	h := log[0].Header
	for k, want := range map[string]string{
		"Authorization":    "Bearer s3cr=t",
		"X-Scope-Orgid":    "acme",
		"Content-Encoding": "gzip",
		"Content-Type":     "application/x-protobuf", // ours, not the header's
		"X-Ignored":        "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(h.Get("User-Agent"), "switchyard") {
		t.Errorf("User-Agent %q", h.Get("User-Agent"))
	}
	if n := len(rcv.Spans()); n != len(spans) {
		t.Errorf("%d spans arrived, want %d", n, len(spans))
	}
}

// TestExportRetry: 503 and 429 are retried (429's Retry-After honoured)
// until the receiver takes the spans, which then arrive once; a 400 is
// not retried.
func TestExportRetry(t *testing.T) {
	defer otelx.FastRetries(20*time.Millisecond, 100*time.Millisecond)()
	rcv := otlptest.Start(t)
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
	spans := makeSpans(t)

	rcv.Reject(http.StatusServiceUnavailable, "")
	rcv.Reject(http.StatusTooManyRequests, "1")
	start := time.Now()
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("done in %v: Retry-After: 1 was not honoured", d)
	}
	var statuses []int
	for _, r := range rcv.Log() {
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[503 429 200]" {
		t.Errorf("answers %v, want [503 429 200]", statuses)
	}
	if n := len(rcv.Spans()); n != len(spans) {
		t.Errorf("%d spans arrived, want %d once", n, len(spans))
	}

	rcv.Reject(http.StatusBadRequest, "")
	err := exp.ExportSpans(context.Background(), spans)
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") {
		t.Fatalf("after a 400: %v", err)
	}
	if n := len(rcv.Log()); n != 4 {
		t.Errorf("%d requests, want 4: a 400 is not retried", n)
	}
}

// TestExportRetryBounded: retries stop at the timeout; a Retry-After
// beyond it ends them at once rather than waiting.
func TestExportRetryBounded(t *testing.T) {
	defer otelx.FastRetries(50*time.Millisecond, 100*time.Millisecond)()
	rcv := otlptest.Start(t)
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_EXPORTER_OTLP_TIMEOUT": "700"})
	spans := makeSpans(t)
	for range 100 {
		rcv.Reject(http.StatusBadGateway, "")
	}
	start := time.Now()
	err := exp.ExportSpans(context.Background(), spans)
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway") || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("error %v", err)
	}
	if d > 2*time.Second {
		t.Errorf("gave up after %v, past the 700 ms timeout", d)
	}
	if n := len(rcv.Log()); n < 3 {
		t.Errorf("%d attempts in 700 ms", n)
	}

	rcv2 := otlptest.Start(t)
	exp2 := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv2.URL})
	rcv2.Reject(http.StatusServiceUnavailable, "60")
	start = time.Now()
	err = exp2.ExportSpans(context.Background(), spans)
	if err == nil || !strings.Contains(err.Error(), "503") || time.Since(start) > time.Second {
		t.Fatalf("Retry-After: 60 with a 10 s timeout: %v after %v", err, time.Since(start))
	}
}

// TestExportRetryConnection: a receiver that is not there yet is tried
// again within the timeout.
func TestExportRetryConnection(t *testing.T) {
	defer otelx.FastRetries(20*time.Millisecond, 50*time.Millisecond)()
	rcv := otlptest.Start(t)
	var (
		mu      sync.Mutex
		proxied int
	)
	// A front that drops the first two connections, then passes on.
	front := startFront(t, rcv.URL, func() bool {
		mu.Lock()
		defer mu.Unlock()
		proxied++
		return proxied > 2
	})
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": front})
	if err := exp.ExportSpans(context.Background(), makeSpans(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rcv.Requests() != 1 || proxied < 3 {
		t.Fatalf("%d requests accepted, %d connections", rcv.Requests(), proxied)
	}
}

// TestPartialSuccess: a partial success is reported through the OTel
// error handler, and not retried.
func TestPartialSuccess(t *testing.T) {
	errs := make(chan error, 10)
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { errs <- err }))
	defer otel.SetErrorHandler(prev)

	rcv := otlptest.Start(t)
	rcv.PartialSuccess(3, "attribute too long\nsee limits")
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL})
	if err := exp.ExportSpans(context.Background(), makeSpans(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		var ps *otelx.PartialSuccessError
		if !errors.As(err, &ps) || ps.Rejected != 3 || ps.Message != "attribute too long\nsee limits" {
			t.Fatalf("handled %v", err)
		}
		if msg := err.Error(); msg != "otlp: the receiver rejected 3 spans: attribute too long see limits" {
			t.Errorf("logged %q", msg)
		}
	default:
		t.Fatal("partial success not reported")
	}
	if n := len(rcv.Log()); n != 1 {
		t.Errorf("%d requests: a partial success was retried", n)
	}
}

// TestExportTLS: an https receiver is trusted through
// OTEL_EXPORTER_OTLP_CERTIFICATE; without it the export fails at once
// (no retries of a certificate that will not verify).
func TestExportTLS(t *testing.T) {
	rcv := otlptest.StartTLS(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, rcv.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_EXPORTER_OTLP_CERTIFICATE": ca})
	spans := makeSpans(t)
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if rcv.Requests() != 1 {
		t.Fatalf("%d requests", rcv.Requests())
	}

	untrusted := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL})
	start := time.Now()
	err := untrusted.ExportSpans(context.Background(), spans)
	if err == nil || !strings.Contains(err.Error(), "certificate") || time.Since(start) > 2*time.Second {
		t.Fatalf("untrusted receiver: %v after %v", err, time.Since(start))
	}
}

// TestExportShutdown: Shutdown ends an export waiting to retry, and
// exports after it fail.
func TestExportShutdown(t *testing.T) {
	rcv := otlptest.Start(t)
	exp, err := otelx.NewExporter(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	rcv.Reject(http.StatusServiceUnavailable, "5")
	spans := makeSpans(t)
	done := make(chan error)
	go func() { done <- exp.ExportSpans(context.Background(), spans) }()
	for len(rcv.Log()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || time.Since(start) > time.Second {
		t.Fatalf("export during shutdown: %v after %v", err, time.Since(start))
	}
	if err := exp.ExportSpans(context.Background(), spans); err == nil {
		t.Fatal("export after shutdown")
	}
}

// TestSecretsNotShown: a header value shows in no error, no rendering
// of the exporter, no log of its configuration.
func TestSecretsNotShown(t *testing.T) {
	const secret = "sup3rs3cret"
	for _, v := range []string{
		"Authorization=Bearer " + secret + ",broken " + secret,
		"Authorization " + secret,
		secret + "\x01=x",
		"Authorization=" + secret + "%zz",
		"Authorization=" + secret + "%0a" + secret,
		"a=b,,Bearer " + secret,
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", v)
		shutdown, err := otelx.Setup(context.Background(), "greet")
		if err == nil {
			t.Errorf("headers %q taken", v)
			_ = shutdown(context.Background())
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_HEADERS") {
			t.Errorf("headers %q: %v", v, err)
		}
		if otelx.Enabled() {
			t.Fatal("enabled after an error")
		}
	}

	rcv := otlptest.Start(t)
	exp := exporter(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": strings.Replace(rcv.URL, "http://", "http://user:"+secret+"@", 1),
		"OTEL_EXPORTER_OTLP_HEADERS":  "Authorization=" + secret,
	})
	rcv.Reject(http.StatusUnauthorized, "")
	err := exp.ExportSpans(context.Background(), makeSpans(t))
	if err == nil {
		t.Fatal("a 401 was taken")
	}
	shown := []string{err.Error(), fmt.Sprintf("%v %+v %#v", exp, exp, exp)}
	if m, ok := exp.(interface{ MarshalLog() any }); ok {
		shown = append(shown, fmt.Sprintf("%+v", m.MarshalLog()))
	} else {
		t.Error("no MarshalLog: the SDK's debug log would show the exporter's fields")
	}
	for _, s := range shown {
		if strings.Contains(s, secret) {
			t.Errorf("secret shown: %s", s)
		}
	}
	if got := rcv.Log()[0].Header.Get("Authorization"); got != secret {
		t.Errorf("Authorization %q", got)
	}
}

// TestNoRedirects: a redirect is not followed (it would carry the
// headers elsewhere); the error says where it pointed.
func TestNoRedirects(t *testing.T) {
	rcv := otlptest.Start(t)
	redirect := httptest.NewServer(http.RedirectHandler(rcv.URL+"/v1/traces", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	exp := exporter(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": redirect.URL, "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret"})
	err := exp.ExportSpans(context.Background(), makeSpans(t))
	if err == nil || !strings.Contains(err.Error(), "307 Temporary Redirect to "+rcv.URL+"/v1/traces") {
		t.Fatalf("after a redirect: %v", err)
	}
	if n := len(rcv.Log()); n != 0 {
		t.Fatalf("the redirect was followed: %d requests", n)
	}
}

// TestProtocol: http/protobuf is the only protocol; asking for another
// is an error naming the variable, and tracing stays off.
func TestProtocol(t *testing.T) {
	rcv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	for _, c := range []struct{ name, value, err string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported"},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc is not supported"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", ""},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/Protobuf", ""},
	} {
		t.Run(c.name+"="+c.value, func(t *testing.T) {
			t.Setenv(c.name, c.value)
			shutdown, err := otelx.Setup(context.Background(), "greet")
			defer func() { _ = shutdown(context.Background()) }()
			if c.err == "" {
				if err != nil || !otelx.Enabled() {
					t.Fatalf("Setup: %v, enabled %v", err, otelx.Enabled())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Setup: %v, want %q", err, c.err)
			}
			if otelx.Enabled() {
				t.Fatal("enabled after an error")
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		url     string
		timeout time.Duration
		gzip    bool
		err     string
	}{
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, url: "http://c:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, url: "http://c:4318/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": " https://c/otlp/ "}, url: "https://c/otlp/v1/traces", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/custom/path"},
			url: "http://t:9/custom/path", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9"}, url: "http://t:9/", timeout: 10 * time.Second},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
			url: "http://c/v1/traces", timeout: 2500 * time.Millisecond, gzip: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "300",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none"},
			url: "http://c/v1/traces", timeout: 300 * time.Millisecond},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, err: "OTEL_EXPORTER_OTLP_TIMEOUT=10s"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-1"}, err: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=-1"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, err: "OTEL_EXPORTER_OTLP_COMPRESSION=zstd is not supported"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"}, err: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://c:4317"}, err: "want an http:// or https:// URL"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://u:pw@[::1"}, err: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is not a URL"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, err: "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem"}, err: "set both or neither"},
		// A CA file is for https: an http endpoint does not read it.
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, url: "http://c/v1/traces", timeout: 10 * time.Second},
	} {
		got, err := otelx.LoadConfig(env(c.env))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: %v, want an error with %q", c.env, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("%v: %v shows a password", c.env, err)
			}
			continue
		}
		if err != nil || got.URL != c.url || got.Timeout != c.timeout || got.Gzip != c.gzip {
			t.Errorf("%v: %+v, %v; want %s %v gzip %v", c.env, got, err, c.url, c.timeout, c.gzip)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := otelx.ParseHeaders(" api-key = a%2Cb%3Dc , x-b=,,x-c=x+y%20z ,x-b=2, ")
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Api-Key": {"a,b=c"}, "X-B": {"2"}, "X-C": {"x+y z"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("%v, want %v", h, want)
	}
	for _, bad := range []string{"novalue", "=v", "a b=c", "k=%", "k=a%0db", "k=a\nb", "k=a%00", "ok=1,bad"} {
		if _, err := otelx.ParseHeaders(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"-1":                            0,
		"soon":                          0,
		"Thu, 02 Jan 2025 03:04:15 GMT": 10 * time.Second,
		"Thu, 02 Jan 2025 03:04:00 GMT": 0, // past
	} {
		if got := otelx.ParseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}

// startFront listens on loopback and passes connections on to the
// receiver at target once pass says so, closing earlier ones unanswered;
// it returns its URL.
func startFront(t *testing.T, target string, pass func() bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := strings.TrimPrefix(target, "http://")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !pass() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
