package devtls

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	p, err := Ensure(dir, DefaultHosts)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{p.Key: 0o600, dir + "/" + caKey: 0o600, p.Cert: 0o644} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", path, st, err)
		}
	}
	// A TLS handshake on loopback with a client trusting only the CA.
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(p.CA)
	pool.AppendCertsFromPEM(b)
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.Close()

	// Kept when still good; the server certificate is made again for a
	// new host, by the same CA.
	before, _ := os.ReadFile(p.Cert)
	if _, err := Ensure(dir, DefaultHosts); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(p.Cert); string(after) != string(before) {
		t.Fatal("a good certificate was replaced")
	}
	caBefore, _ := os.ReadFile(p.CA)
	if _, err := Ensure(dir, append(DefaultHosts, "yard.test")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.Cert)
	caAfter, _ := os.ReadFile(p.CA)
	if string(after) == string(before) || string(caAfter) != string(caBefore) {
		t.Fatal("new host: want a new server certificate from the same CA")
	}
}
