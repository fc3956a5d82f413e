// Package otlptest is an OTLP/HTTP trace receiver for tests: an
// httptest server on loopback that decodes ExportTraceServiceRequest
// protobufs (gzip or not) with the generated OTLP types and keeps the
// spans it was sent. It is strict: a body with a field the OTLP schema
// does not know, anywhere, is answered 400 and kept out. It can also
// refuse requests (Reject) and answer with a partial success.
//
// It decodes into tracepb.TracesData, which has the wire shape of
// ExportTraceServiceRequest (field 1, repeated ResourceSpans): the
// collector package that declares the latter also holds its gRPC
// service, and would bring gRPC into the module for a test helper.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Span is one received span with its resource's service name.
type Span struct {
	Service      string
	Resource     map[string]string
	Name         string
	Kind         tracepb.Span_SpanKind
	TraceID      string // hex
	SpanID       string // hex
	ParentSpanID string // hex; "" for a root
	Attributes   map[string]string
	Links        []string // linked span ids, hex
	StatusError  bool
}

// Request is what the receiver saw of one request, accepted or not.
type Request struct {
	Header http.Header // as sent (Content-Encoding: gzip included)
	Status int         // the status it was answered with
	Error  string      // why it was answered 400, if it was
}

// Receiver collects the spans exported to it.
type Receiver struct {
	URL      string // pass as OTEL_EXPORTER_OTLP_ENDPOINT
	srv      *httptest.Server
	mu       sync.Mutex
	spans    []Span
	data     []*tracepb.ResourceSpans
	requests int
	log      []Request
	rejects  []reject
	partial  *partial
}

type reject struct {
	status     int
	retryAfter string
}

type partial struct {
	rejected int64
	message  string
}

// Start runs a receiver until the test ends.
func Start(t testing.TB) *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// StartTLS runs a receiver on https (its certificate is the receiver's
// Certificate) until the test ends.
func StartTLS(t testing.TB) *Receiver {
	r := &Receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused by untrusting clients
	r.srv.StartTLS()
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// CertificatePEM is the PEM of the certificate a StartTLS receiver
// serves, for OTEL_EXPORTER_OTLP_CERTIFICATE.
func (r *Receiver) CertificatePEM() []byte {
	c := r.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Reject has the next request answered with status (and a Retry-After
// header when retryAfter is not ""), its spans dropped; each call queues
// one more such answer, in order.
func (r *Receiver) Reject(status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects = append(r.rejects, reject{status, retryAfter})
}

// PartialSuccess has every later accepted request answered with a
// partial_success saying rejected spans were refused, with message.
func (r *Receiver) PartialSuccess(rejected int64, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = &partial{rejected, message}
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	r.mu.Lock()
	entry := Request{Header: req.Header.Clone()}
	var rej *reject
	if len(r.rejects) > 0 {
		rej = &r.rejects[0]
		r.rejects = r.rejects[1:]
	}
	r.mu.Unlock()
	if rej != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		if rej.retryAfter != "" {
			w.Header().Set("Retry-After", rej.retryAfter)
		}
		entry.Status = rej.status
		r.record(entry)
		http.Error(w, http.StatusText(rej.status), rej.status)
		return
	}
	msg, err := decode(req)
	if err != nil {
		entry.Status, entry.Error = http.StatusBadRequest, err.Error()
		r.record(entry)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		service := res["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Service: service, Resource: res, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Attributes: attrs(s.GetAttributes()),
					StatusError: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, hex.EncodeToString(l.GetSpanId()))
				}
				got = append(got, sp)
			}
		}
	}
	entry.Status = http.StatusOK
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.data = append(r.data, msg.GetResourceSpans()...)
	r.requests++
	r.log = append(r.log, entry)
	p := r.partial
	r.mu.Unlock()
	// An ExportTraceServiceResponse: partial_success (1) {
	// rejected_spans (1), error_message (2) } when there is one.
	var out []byte
	if p != nil {
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(p.rejected))
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, p.message)
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, ps)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) record(e Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, e)
}

// decode reads an export request's body strictly: protobuf content,
// gzip when it says so, and no field the schema does not know.
func decode(req *http.Request) (*tracepb.TracesData, error) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return nil, fmt.Errorf("Content-Type %q, want application/x-protobuf", ct)
	}
	var body io.Reader = req.Body
	switch ce := req.Header.Get("Content-Encoding"); ce {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	default:
		return nil, fmt.Errorf("Content-Encoding %q", ce)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var msg tracepb.TracesData
	if err := proto.Unmarshal(data, &msg); err != nil {
		return nil, err
	}
	if path := unknownField(msg.ProtoReflect(), "TracesData"); path != "" {
		return nil, fmt.Errorf("a field the OTLP schema does not know, in %s", path)
	}
	return &msg, nil
}

// unknownField is the path to the first message under m holding fields
// its type does not declare; "" when there is none.
func unknownField(m protoreflect.Message, path string) string {
	if len(m.GetUnknown()) > 0 {
		return path
	}
	var found string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && found == ""; i++ {
				found = unknownField(l.Get(i).Message(), fmt.Sprintf("%s.%s[%d]", path, fd.Name(), i))
			}
		} else {
			found = unknownField(v.Message(), path+"."+string(fd.Name()))
		}
		return found == ""
	})
	return found
}

// attrs flattens attributes to strings (as the OTLP JSON form shows them).
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		var s string
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			s = x.StringValue
		case *commonpb.AnyValue_IntValue:
			s = strconv.FormatInt(x.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			s = strconv.FormatBool(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			s = strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		default:
			s = v.String()
		}
		out[kv.GetKey()] = s
	}
	return out
}

// Spans returns a copy of the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// ResourceSpans returns the decoded bodies of the accepted requests
// (their ResourceSpans, in order), for checks of every field. They are
// shared: do not change them.
func (r *Receiver) ResourceSpans() []*tracepb.ResourceSpans {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.ResourceSpans(nil), r.data...)
}

// Log returns what the receiver saw of each request so far, refused
// ones too, in order.
func (r *Receiver) Log() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.log...)
}

// Requests is how many export requests were accepted.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}
