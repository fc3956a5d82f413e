package otelx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The exporter's variables, as the OTLP exporter specification names
// them. Each OTEL_EXPORTER_OTLP_X has a OTEL_EXPORTER_OTLP_TRACES_X that
// wins over it when set.
const (
	EnvHeaders           = "OTEL_EXPORTER_OTLP_HEADERS"
	EnvTimeout           = "OTEL_EXPORTER_OTLP_TIMEOUT"
	EnvCompression       = "OTEL_EXPORTER_OTLP_COMPRESSION"
	EnvCertificate       = "OTEL_EXPORTER_OTLP_CERTIFICATE"
	EnvClientCertificate = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
	EnvClientKey         = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
	EnvProtocol          = "OTEL_EXPORTER_OTLP_PROTOCOL"
)

const (
	// DefaultTimeout bounds one export, retries included, when
	// OTEL_EXPORTER_OTLP_TIMEOUT does not say.
	DefaultTimeout = 10 * time.Second
	tracesPath     = "/v1/traces"
	protoHTTP      = "http/protobuf"
)

// exporterConfig is what the OTEL_EXPORTER_OTLP_* variables ask of the
// exporter. It is only ever held by pointer, so that printing a value
// that holds one (%v of the exporter, a debug log) shows an address,
// never a header value.
type exporterConfig struct {
	url     *url.URL
	headers http.Header // secrets: never in an error or a log
	timeout time.Duration
	gzip    bool
	tls     *tls.Config // nil: the system's roots
}

// lookup returns the trace-specific variant of the generic variable
// name (OTEL_EXPORTER_OTLP_TRACES_X for OTEL_EXPORTER_OTLP_X) when it is
// set, else name itself, with its value, trimmed.
func lookup(getenv func(string) string, name string) (string, string) {
	specific := strings.Replace(name, "OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_", 1)
	if v := strings.TrimSpace(getenv(specific)); v != "" {
		return specific, v
	}
	return name, strings.TrimSpace(getenv(name))
}

// loadConfig reads the exporter's configuration from getenv, and the
// files it names with readFile. Every value it cannot honour exactly is
// an error naming its variable (never quoting a header value): tracing
// then stays off rather than exporting somewhere, or in some way, other
// than the operator asked.
func loadConfig(getenv func(string) string, readFile func(string) ([]byte, error)) (*exporterConfig, error) {
	cfg := &exporterConfig{timeout: DefaultTimeout}

	if name, v := lookup(getenv, EnvProtocol); v != "" && !strings.EqualFold(v, protoHTTP) {
		return nil, fmt.Errorf("%s=%s is not supported: traces are exported over %s only (unset it or set it to %s)", name, v, protoHTTP, protoHTTP)
	}

	var err error
	if v := strings.TrimSpace(getenv(EnvTracesEndpoint)); v != "" {
		// The signal's own URL is used as it is ("/" when it has no path).
		if cfg.url, err = parseEndpoint(EnvTracesEndpoint, v); err != nil {
			return nil, err
		}
		if cfg.url.Path == "" {
			cfg.url.Path = "/"
		}
	} else {
		// The base URL gets the signal's path.
		if cfg.url, err = parseEndpoint(EnvEndpoint, strings.TrimSpace(getenv(EnvEndpoint))); err != nil {
			return nil, err
		}
		cfg.url.Path = strings.TrimSuffix(cfg.url.Path, "/") + tracesPath
		cfg.url.RawPath = ""
	}

	if name, v := lookup(getenv, EnvHeaders); v != "" {
		if cfg.headers, err = parseHeaders(v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}

	if name, v := lookup(getenv, EnvTimeout); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 || ms > int64(24*time.Hour/time.Millisecond) {
			return nil, fmt.Errorf("%s=%s: want a positive number of milliseconds", name, v)
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}

	if name, v := lookup(getenv, EnvCompression); v != "" {
		switch strings.ToLower(v) {
		case "gzip":
			cfg.gzip = true
		case "none":
		default:
			return nil, fmt.Errorf("%s=%s is not supported: want gzip or none", name, v)
		}
	}

	if cfg.url.Scheme == "https" {
		if cfg.tls, err = loadTLS(getenv, readFile); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func parseEndpoint(name, v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		// url.Parse quotes its input; the URL may hold a password.
		return nil, fmt.Errorf("%s is not a URL", name)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%s=%s: want an http:// or https:// URL", name, u.Redacted())
	}
	return u, nil
}

// loadTLS reads the CA file and the client key pair the variables name,
// if any; nil when there are none.
func loadTLS(getenv func(string) string, readFile func(string) ([]byte, error)) (*tls.Config, error) {
	var c *tls.Config
	if name, file := lookup(getenv, EnvCertificate); file != "" {
		pem, err := readFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in %s", name, file)
		}
		c = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	certName, certFile := lookup(getenv, EnvClientCertificate)
	keyName, keyFile := lookup(getenv, EnvClientKey)
	if certFile == "" && keyFile == "" {
		return c, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("%s and %s go together: set both or neither", certName, keyName)
	}
	certPEM, err := readFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certName, err)
	}
	keyPEM, err := readFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyName, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors describe the PEM blocks, not their bytes.
		return nil, fmt.Errorf("%s, %s: %w", certName, keyName, err)
	}
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c.Certificates = []tls.Certificate{pair}
	return c, nil
}

// parseHeaders parses the headers variable's value: comma-separated
// key=value pairs, values percent-encoded (the W3C Baggage form, as the
// OTLP exporter specification has it). Empty entries are skipped; a
// later key wins over an earlier one. The errors name the entry (by
// position) and, once it is known to be a valid header name, its key,
// but never a value: header values are credentials.
func parseHeaders(s string) (http.Header, error) {
	h := http.Header{}
	for i, entry := range strings.Split(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		k = strings.TrimSpace(k)
		if !validHeaderName(k) {
			return nil, fmt.Errorf("entry %d: the key is not a valid header name", i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): the value is not percent-encoded properly", i+1, k)
		}
		v = strings.TrimSpace(v)
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("entry %d (%s): the value has a control character", i+1, k)
		}
		h.Set(k, v)
	}
	return h, nil
}

// validHeaderName reports whether k is an HTTP token (RFC 9110).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http will send v as a header
// value: no control characters but horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
