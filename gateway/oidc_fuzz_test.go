package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

const fuzzIssuer, fuzzAudience = "https://login.example.com", "switchyard"

// fuzzOIDC is an OIDC on a key set file (no network) holding an EC key
// and mockoidc's default RSA key, the private halves of which it returns.
func fuzzOIDC(f *testing.F) (*OIDC, *ecdsa.PrivateKey, *mockoidc.Keypair) {
	f.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := mockoidc.DefaultKeypair()
	if err != nil {
		f.Fatal(err)
	}
	kid, err := kp.KeyID()
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "jwks.json")
	writeFile(f, path, jwksJSON(f,
		jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"},
		jose.JSONWebKey{Key: kp.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}))
	o, err := NewOIDC(f.Context(), OIDCConfig{Issuer: fuzzIssuer, Audience: fuzzAudience, JWKSFile: path})
	if err != nil {
		f.Fatal(err)
	}
	return o, ec, kp
}

// FuzzOIDCAuthenticate feeds arbitrary strings to Authenticate. None is
// signed by the keys in force (seeds that are, are refused for their
// claims, and any change to them breaks the signature), so none may be
// accepted; every refusal is a TokenError that holds nothing of the input.
func FuzzOIDCAuthenticate(f *testing.F) {
	o, ec, kp := fuzzOIDC(f)
	now := time.Now()
	claims := map[string]any{"iss": fuzzIssuer, "aud": fuzzAudience, "sub": "s", "exp": now.Add(-time.Hour).Unix(), "scope": "fn:*"}
	expired := signES256(f, ec, "ec", claims)
	claims["exp"] = now.Add(time.Hour).Unix()
	claims["aud"] = "other"
	wrongAud, err := kp.SignJWT(jwt.MapClaims(claims))
	if err != nil {
		f.Fatal(err)
	}
	claims["aud"] = fuzzAudience
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	stranger := signES256(f, other, "ec", claims)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	hmac, err := hs.SignedString([]byte("secret-secret-secret-secret-1234"))
	if err != nil {
		f.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	none := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(payload) + "."
	for _, s := range []string{
		"", ".", "..", "...", "a.b.c", "eyJhbGciOiJFUzI1NiJ9..", "eyJhbGciOiJFUzI1NiJ9.e30.",
		`{"payload":"e30","signatures":[]}`, "a.b.c.d.e", strings.Repeat("A", maxTokenBytes+1),
		expired, wrongAud, stranger, hmac, none,
		expired + " ", " " + wrongAud, strings.Replace(stranger, ".", "..", 1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := o.Authenticate(t.Context(), raw)
		if err == nil {
			t.Fatalf("accepted %q as %+v", raw, p)
		}
		if p != nil {
			t.Fatalf("refused with a principal %+v", p)
		}
		checkTokenError(t, err, raw)
	})
}

// FuzzOIDCClaims signs arbitrary payloads with a key in force, to reach
// the claim checks: whatever the payload, Authenticate must not panic,
// and what it accepts must satisfy every rule.
func FuzzOIDCClaims(f *testing.F) {
	o, ec, _ := fuzzOIDC(f)
	exp := time.Now().Add(time.Hour).Unix()
	for _, c := range []map[string]any{
		{"iss": fuzzIssuer, "aud": fuzzAudience, "sub": "s", "exp": exp, "scope": "fn:a fn:b"},
		{"iss": fuzzIssuer, "aud": []any{fuzzAudience, 1}, "sub": "s", "exp": exp},
		{"iss": fuzzIssuer, "aud": fuzzAudience, "sub": "s", "exp": 1e300, "nbf": -1},
		{"iss": fuzzIssuer, "aud": fuzzAudience, "sub": "s", "exp": exp, "scope": []any{"fn:*", nil}},
	} {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	f.Add([]byte(`{"iss":"` + fuzzIssuer + `","aud":"` + fuzzAudience + `","sub":"s","exp":1e999}`))
	f.Add([]byte(`{"iss":"` + fuzzIssuer + `","iss":"x","aud":"` + fuzzAudience + `","sub":"s","exp":99999999999}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ec}, (&jose.SignerOptions{}).WithHeader("kid", "ec"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		p, err := o.Authenticate(t.Context(), raw)
		if err != nil {
			checkTokenError(t, err, raw)
			return
		}
		// Claim names are case-sensitive (RFC 7519); encoding/json matches
		// struct fields case-insensitively, so read the exact names.
		var claims map[string]json.RawMessage
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatalf("accepted a payload that does not decode: %v", err)
		}
		var c struct {
			Iss, Sub string
			Aud      json.RawMessage
			Exp      float64
		}
		for name, into := range map[string]any{"iss": &c.Iss, "sub": &c.Sub, "exp": &c.Exp} {
			if err := json.Unmarshal(claims[name], into); err != nil {
				t.Fatalf("accepted %s with claim %s %s: %v", payload, name, claims[name], err)
			}
		}
		c.Aud = claims["aud"]
		if c.Iss != fuzzIssuer || c.Sub == "" || p.Name != c.Sub || p.ID != fuzzIssuer+"#"+c.Sub || p.Kind != PrincipalToken {
			t.Fatalf("accepted %s as %+v", payload, p)
		}
		if aud, ok := claimAudience(c.Aud); !ok || !slices.Contains(aud, fuzzAudience) {
			t.Fatalf("accepted %s with audience %s", payload, c.Aud)
		}
		if time.Unix(int64(c.Exp), 0).Add(o.skew + time.Second).Before(time.Now()) {
			t.Fatalf("accepted %s, expired", payload)
		}
		for _, fn := range p.Functions {
			if fn == "" || strings.ContainsAny(fn, " \t\n") {
				t.Fatalf("accepted %s granting %q", payload, fn)
			}
		}
	})
}
