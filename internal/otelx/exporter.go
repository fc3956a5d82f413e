package otelx

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// exporter is an sdktrace.SpanExporter speaking OTLP/HTTP with protobuf
// bodies (POST /v1/traces, application/x-protobuf), as the OTLP
// specification describes it: gzip when asked, the configured headers,
// and retries of 429, 502, 503, 504 and transport failures with
// exponential backoff or the server's Retry-After, all within the
// timeout of one export. The batch span processor calls it off the
// request path.
type exporter struct {
	cfg      *exporterConfig
	shownURL string // the URL for errors: its password redacted
	client   *http.Client
	stop     context.Context // canceled by Shutdown: in-flight exports end
	cancel   context.CancelFunc
	stopped  atomic.Bool
}

var _ sdktrace.SpanExporter = (*exporter)(nil)

// userAgent identifies the exporter to the receiver.
const userAgent = "switchyard-otlp-exporter (OTLP/HTTP protobuf)"

// Retry pacing, when the receiver does not say (Retry-After): the first
// wait, doubled at each retry up to the last, each with ±25% jitter.
var (
	retryInitial = 250 * time.Millisecond
	retryMax     = 4 * time.Second
)

// Response bodies are read this far (a partial success, an error's
// message); the rest is drained up to drainLimit, so the connection is
// reused, and then dropped.
const (
	responseLimit = 64 << 10
	drainLimit    = 256 << 10
)

func newExporter(cfg *exporterConfig) *exporter {
	tr := http.DefaultTransport.(*http.Transport).Clone() // proxies from the environment, as before
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls
	}
	stop, cancel := context.WithCancel(context.Background())
	return &exporter{
		cfg:      cfg,
		shownURL: cfg.url.Redacted(),
		client: &http.Client{
			Transport: tr,
			// No redirects: net/http would carry the configured headers,
			// credentials, to wherever a receiver points. A 3xx is an
			// error that says where, for the operator to configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		stop:   stop,
		cancel: cancel,
	}
}

// MarshalLog is what the SDK's debug log shows of the exporter (it logs
// the tracer provider's configuration): never the headers.
func (e *exporter) MarshalLog() any {
	return struct {
		Type, URL string
	}{"otlp/http+protobuf (switchyard)", e.shownURL}
}

var errShutdown = errors.New("otlp: exporter is shut down")

// ExportSpans sends spans in one request, retrying as the specification
// allows until it is accepted, refused for good, or the timeout passes.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	if e.stopped.Load() {
		return errShutdown
	}
	// A new buffer each time: the transport may still read a body after
	// Do returns (a receiver that answered early), so none is reused.
	body := appendTraces(make([]byte, 0, 512*len(spans)), spans)
	if e.cfg.gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, _ = zw.Write(body)
		if err := zw.Close(); err != nil {
			return fmt.Errorf("otlp: gzip: %w", err)
		}
		body = zb.Bytes()
	}

	ctx, cancel := context.WithTimeout(ctx, e.cfg.timeout)
	defer cancel()
	defer context.AfterFunc(e.stop, cancel)()

	for attempt := 1; ; attempt++ {
		retryAfter, err := e.post(ctx, body)
		if err == nil {
			return nil
		}
		var r retryable
		if !errors.As(err, &r) {
			return err
		}
		wait := retryAfter
		if wait <= 0 {
			wait = backoff(attempt)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (gave up after %d attempts: the next one, in %v, would pass the %v timeout)",
				err, attempt, wait.Round(time.Millisecond), e.cfg.timeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up after %d attempts: %w)", err, attempt, context.Cause(ctx))
		}
	}
}

// backoff is the wait before retry attempt+1 when the server gave no
// Retry-After.
func backoff(attempt int) time.Duration {
	d := retryMax
	if attempt < 16 {
		d = min(retryMax, retryInitial<<(attempt-1))
	}
	return d - d/4 + rand.N(d/2+1)
}

// retryable marks an error worth another attempt.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// post makes one attempt. It returns a retryable error for the answers
// and failures worth another attempt, with the wait the server asked
// for, if it did.
func (e *exporter) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.url.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range e.cfg.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req) // its errors carry the URL without a password
	if err != nil {
		if ctx.Err() != nil || isTLSError(err) {
			return 0, fmt.Errorf("otlp: %w", err)
		}
		return 0, retryable{fmt.Errorf("otlp: %w", err)} // refused, reset: the receiver may be back soon
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
		resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, responseLimit))
	if err != nil && resp.StatusCode/100 == 2 {
		// Accepted: only the partial success could not be read.
		otel.Handle(fmt.Errorf("otlp: POST %s: reading the response: %w", e.shownURL, err))
		return 0, nil
	}
	protobuf := isProtobuf(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 == 2 {
		if !protobuf || len(data) == 0 {
			return 0, nil
		}
		rejected, msg, err := parseExportResponse(data)
		switch {
		case err != nil:
			otel.Handle(fmt.Errorf("otlp: POST %s: the response is not an ExportTraceServiceResponse: %w", e.shownURL, err))
		case rejected != 0 || msg != "":
			// Accepted in part: the specification says not to retry.
			otel.Handle(&PartialSuccessError{Rejected: rejected, Message: msg})
		}
		return 0, nil
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		if u, err := resp.Request.URL.Parse(loc); err == nil {
			return 0, fmt.Errorf("otlp: POST %s: %s to %s: redirects are not followed (they would carry the headers); configure that URL", e.shownURL, resp.Status, u.Redacted())
		}
	}
	failure := fmt.Errorf("otlp: POST %s: %s%s", e.shownURL, resp.Status, describeBody(data, protobuf))
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), retryable{failure}
	}
	return 0, failure
}

// Shutdown ends in-flight exports and makes later ones fail. The batch
// span processor calls it after its last export.
func (e *exporter) Shutdown(ctx context.Context) error {
	e.stopped.Store(true)
	e.cancel()
	e.client.CloseIdleConnections()
	return ctx.Err()
}

// PartialSuccessError is what the receiver said of the spans it
// rejected from a request it otherwise accepted. The exporter reports it
// through otel.Handle (the process's OpenTelemetry error handler, a log
// line by default); it is not retried.
type PartialSuccessError struct {
	Rejected int64
	Message  string
}

func (p *PartialSuccessError) Error() string {
	msg := p.Message
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("otlp: the receiver rejected %d spans: %s", p.Rejected, sanitize(msg))
}

// parseExportResponse reads an ExportTraceServiceResponse:
// partial_success (1) { rejected_spans (1, int64), error_message (2) }.
// Unknown fields are skipped, as protobuf decoders do.
func parseExportResponse(b []byte) (rejected int64, msg string, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
			switch {
			case num == 1 && typ == protowire.VarintType:
				rejected = int64(n)
			case num == 2 && typ == protowire.BytesType:
				msg = string(v)
			}
			return nil
		})
	})
	return rejected, msg, err
}

// parseStatus reads the message of a google.rpc.Status, which OTLP/HTTP
// receivers answer failures with: code (1), message (2), details (3).
func parseStatus(b []byte) (string, error) {
	var msg string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num == 2 && typ == protowire.BytesType {
			msg = string(v)
		}
		return nil
	})
	return msg, err
}

// eachField calls f with each field of the protobuf message b: its
// number, wire type, and value (bytes for length-delimited fields, n for
// the others). Groups are skipped whole.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, tn := protowire.ConsumeTag(b)
		if tn < 0 {
			return protowire.ParseError(tn)
		}
		b = b[tn:]
		var (
			v  []byte
			n  uint64
			vn int
		)
		switch typ {
		case protowire.VarintType:
			n, vn = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, vn = protowire.ConsumeFixed32(b)
			n = uint64(x)
		case protowire.Fixed64Type:
			n, vn = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, vn = protowire.ConsumeBytes(b)
		default:
			vn = protowire.ConsumeFieldValue(num, typ, b)
		}
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		b = b[vn:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

func isProtobuf(contentType string) bool {
	ct, _, _ := strings.Cut(strings.ToLower(contentType), ";")
	ct = strings.TrimSpace(ct)
	return ct == "application/x-protobuf" || ct == "application/protobuf"
}

// describeBody is ": message" for an error response's body: the
// google.rpc.Status message of a protobuf one, the start of any other,
// sanitized; "" when there is nothing to say.
func describeBody(data []byte, protobuf bool) string {
	var msg string
	if protobuf {
		if m, err := parseStatus(data); err == nil {
			msg = m
		}
	} else {
		msg = string(data)
	}
	msg = sanitize(msg)
	if msg == "" {
		return ""
	}
	return ": " + msg
}

// sanitize makes text from the receiver fit one log line: valid UTF-8,
// no control characters, at most 300 bytes.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) > 300 {
		cut := 300
		for cut > 0 && !isRuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// parseRetryAfter is the wait a Retry-After value asks for (seconds or
// an HTTP date); 0 when there is none or it makes no sense.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// isTLSError reports whether err is a failure to verify the receiver's
// certificate, which another attempt will not mend.
func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &alert)
}
