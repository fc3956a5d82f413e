package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/internal/devtls"
	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/registry"
)

// tlsFiles makes a local CA and a loopback server certificate, and
// returns the certificate and a pool trusting only that CA.
func tlsFiles(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	p, err := devtls.Ensure(t.TempDir(), devtls.DefaultHosts)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(p.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in " + p.CA)
	}
	return cert, pool
}

// httpsClient trusts only pool, and speaks HTTP/2 when the server offers it.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
}

// TestTLS: with Config.TLS the gateway serves HTTPS, HTTP/2 included, to
// clients that trust its CA; plain HTTP, clients that trust another CA and
// TLS below 1.2 get nothing.
func TestTLS(t *testing.T) {
	cert, pool := tlsFiles(t)
	// A configuration that would allow TLS 1.0 still gets 1.2 at least.
	e := newEnvWith(t, Config{RetryAfter: 2 * time.Second, AnonymousRate: 1e6,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10}})
	e.serveAccess("greet", registry.AccessPublic)
	base := "https://" + e.addr
	client := httpsClient(pool)

	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("GET /healthz over TLS: %d %s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("GET /healthz: %s, TLS %+v; want HTTP/2 over TLS 1.2 or later", resp.Proto, resp.TLS)
	}

	// A public function, anonymously, as a browser or curl would call it.
	resp, err = client.Post(base+"/fn/greet", "application/json", strings.NewReader(validPerson))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"message":"Hello, Ada of London"}` {
		t.Fatalf("POST /fn/greet over TLS: %d %s", resp.StatusCode, body)
	}

	// The same over HTTP/1.1.
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
	}}
	resp, err = h1.Post(base+"/fn/greet", "application/json", strings.NewReader(validPerson))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Errorf("POST /fn/greet over HTTP/1.1 and TLS: %d %s", resp.StatusCode, resp.Proto)
	}

	// Plain HTTP on the TLS port is no request: net/http answers 400
	// before the gateway sees anything, or the connection fails.
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + e.addr + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d, want a failure", resp.StatusCode)
		}
	}

	// A client trusting only the system's roots refuses the certificate.
	_, err = (&http.Client{Timeout: 10 * time.Second}).Get(base + "/healthz")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("client that does not trust the CA: %v, want an unknown authority", err)
	}

	// TLS 1.1 and below are not offered: the server refuses the hello.
	d := &net.Dialer{Timeout: 10 * time.Second}
	old := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.DialWithDialer(d, "tcp", e.addr, old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: %v, want the server's protocol version alert", err)
	}
}

// TestTLSConnCaps: the connection caps count TCP connections, before any
// TLS handshake: one that never says hello still holds its place.
func TestTLSConnCaps(t *testing.T) {
	cert, pool := tlsFiles(t)
	e := newEnvWith(t, Config{AnonymousRate: 1e6, MaxConns: 1,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	silent, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "the silent connection to be counted", func() bool {
		total, _ := e.gw.conns.Load().open()
		return total == 1
	})
	if resp, err := httpsClient(pool).Get("https://" + e.addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a connection over the cap was served: %d", resp.StatusCode)
	}
	silent.Close()
	natstest.WaitFor(t, 5*time.Second, "HTTPS to be served once the silent connection is gone", func() bool {
		client := httpsClient(pool)
		defer client.CloseIdleConnections()
		resp, err := client.Get("https://" + e.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestTLSWithoutCertificate: a TLS configuration that cannot serve is
// refused at New, not at the first handshake.
func TestTLSWithoutCertificate(t *testing.T) {
	_, err := New(context.Background(), nil, Config{TLS: &tls.Config{}})
	if err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("New with an empty TLS configuration: %v", err)
	}
}
