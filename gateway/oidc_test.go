package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// testProvider is a real OIDC provider (mockoidc) on loopback. Its
// keypair can be rotated while it serves: every request holds a read
// lock on it.
type testProvider struct {
	m        *mockoidc.MockOIDC
	mu       sync.RWMutex
	jwksHits atomic.Int64
}

func startProvider(t *testing.T) *testProvider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// KeyID is computed lazily and cached in the keypair: do it now, not
	// in concurrent handlers.
	if _, err := m.Keypair.KeyID(); err != nil {
		t.Fatal(err)
	}
	p := &testProvider{m: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.JWKSEndpoint {
				p.jwksHits.Add(1)
			}
			p.mu.RLock()
			defer p.mu.RUnlock()
			next.ServeHTTP(w, r)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// rotate makes the provider sign with, and publish, a new key only.
func (p *testProvider) rotate(t *testing.T) *mockoidc.Keypair {
	t.Helper()
	kp := randomKeypair(t)
	p.mu.Lock()
	p.m.Keypair = kp
	p.mu.Unlock()
	return kp
}

func (p *testProvider) keypair() *mockoidc.Keypair {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.m.Keypair
}

// randomKeypair makes a fresh RSA keypair, its kid computed.
func randomKeypair(t *testing.T) *mockoidc.Keypair {
	t.Helper()
	kp, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kp.KeyID(); err != nil {
		t.Fatal(err)
	}
	return kp
}

// login runs the authorization code flow against the provider as a
// client would, for user (nil: mockoidc's default user), and returns
// the ID and access tokens.
func (p *testProvider) login(t *testing.T, user mockoidc.User, scope string) (idToken, accessToken string) {
	t.Helper()
	if user != nil {
		p.m.QueueUser(user)
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	redirect := "http://127.0.0.1/callback"
	q := url.Values{
		"client_id":     {p.m.ClientID},
		"response_type": {"code"},
		"scope":         {scope},
		"state":         {"state-1"},
		"redirect_uri":  {redirect},
	}
	resp, err := client.Get(p.m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Query().Get("state"); got != "state-1" {
		t.Fatalf("authorize: state %q", got)
	}
	resp, err = client.PostForm(p.m.TokenEndpoint(), url.Values{
		"client_id":     {p.m.ClientID},
		"client_secret": {p.m.ClientSecret},
		"grant_type":    {"authorization_code"},
		"code":          {loc.Query().Get("code")},
		"redirect_uri":  {redirect},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %s", resp.Status)
	}
	var tr struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	if tr.IDToken == "" || tr.AccessToken == "" {
		t.Fatalf("token response without tokens: %+v", tr)
	}
	return tr.IDToken, tr.AccessToken
}

// claims are valid claims for the provider, to be changed by a test and
// signed with the provider's own keypair.
func (p *testProvider) claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   p.m.Issuer(),
		"aud":   p.m.ClientID,
		"sub":   "alice",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(5 * time.Minute).Unix(),
		"scope": "openid fn:orders fn:catalog",
	}
}

func (p *testProvider) sign(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	raw, err := p.keypair().SignJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (p *testProvider) newOIDC(t *testing.T, cfg OIDCConfig) *OIDC {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = p.m.Issuer()
	}
	if cfg.Audience == "" {
		cfg.Audience = p.m.ClientID
	}
	o, err := NewOIDC(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// scopedUser is a provider user whose ID token carries a scope claim.
type scopedUser struct{ sub, scope string }

func (u scopedUser) ID() string { return u.sub }

func (u scopedUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": u.sub})
}

func (u scopedUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &struct {
		*mockoidc.IDTokenClaims
		Scope string `json:"scope"`
	}{base, u.scope}, nil
}

func accept(t *testing.T, o *OIDC, raw string) *Principal {
	t.Helper()
	p, err := o.Authenticate(t.Context(), raw)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// refuse checks that raw is refused for reason, with an error that
// wraps ErrTokenInvalid and holds nothing of the token.
func refuse(t *testing.T, o *OIDC, raw, reason string) {
	t.Helper()
	p, err := o.Authenticate(t.Context(), raw)
	if err == nil {
		t.Fatalf("accepted, principal %+v; want refused (%s)", p, reason)
	}
	if p != nil {
		t.Errorf("refused with a principal %+v", p)
	}
	checkTokenError(t, err, raw)
	var te *TokenError
	if errors.As(err, &te) && te.Reason != reason {
		t.Errorf("reason %q, want %q", te.Reason, reason)
	}
}

func checkTokenError(t testing.TB, err error, raw string) {
	t.Helper()
	if !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("error %v does not wrap ErrTokenInvalid", err)
	}
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *TokenError", err)
	}
	msg := err.Error()
	for part := range strings.SplitSeq(raw, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Fatalf("error %q holds part of the token", msg)
		}
	}
}

func TestOIDCAuthorizationCodeFlow(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})

	idToken, accessToken := p.login(t, scopedUser{sub: "bob", scope: "openid fn:orders profile fn:catalog"}, "openid profile")
	got := accept(t, o, idToken)
	want := &Principal{
		Kind:      PrincipalToken,
		ID:        p.m.Issuer() + "#bob",
		Name:      "bob",
		Functions: []string{"orders", "catalog"},
	}
	if !principalEqual(got, want) {
		t.Fatalf("principal %+v, want %+v", got, want)
	}
	if !got.Grants("orders") || got.Grants("billing") {
		t.Errorf("grants: orders %v, billing %v", got.Grants("orders"), got.Grants("billing"))
	}

	// mockoidc's access token is a JWT for the same audience without a
	// scope claim: a principal granted nothing.
	got = accept(t, o, accessToken)
	if got.Name != "bob" || len(got.Functions) != 0 {
		t.Errorf("access token principal %+v", got)
	}
}

func TestOIDCArrayClaim(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{Claim: "groups"})
	user := mockoidc.DefaultUser()
	user.Subject = "carol"
	user.Groups = []string{"fn:orders", "admins", "fn:*", "fn:orders"}
	idToken, _ := p.login(t, user, "openid groups")
	got := accept(t, o, idToken)
	if want := []string{"orders", "*"}; !slices.Equal(got.Functions, want) {
		t.Fatalf("functions %q, want %q", got.Functions, want)
	}
	if !got.Grants("anything") {
		t.Error("fn:* does not grant every function")
	}
}

func TestOIDCGrants(t *testing.T) {
	p := startProvider(t)
	now := time.Now()
	cases := []struct {
		name   string
		cfg    OIDCConfig
		claim  any // the value of the grant claim; nil leaves it out
		want   []string
		refuse bool
	}{
		{name: "space separated", claim: "openid fn:orders  fn:catalog email", want: []string{"orders", "catalog"}},
		{name: "wildcard", claim: "fn:*", want: []string{"*"}},
		{name: "no prefixed value", claim: "openid orders", want: nil},
		{name: "bare prefix", claim: "fn: fn:orders", want: []string{"orders"}},
		{name: "duplicates", claim: "fn:a fn:a fn:b", want: []string{"a", "b"}},
		{name: "array", claim: []string{"fn:orders", "openid"}, want: []string{"orders"}},
		{name: "absent", claim: nil, want: nil},
		{name: "custom prefix", cfg: OIDCConfig{Prefix: "switchyard/"}, claim: "fn:orders switchyard/catalog", want: []string{"catalog"}},
		{name: "custom claim", cfg: OIDCConfig{Claim: "functions"}, claim: []string{"fn:x"}, want: []string{"x"}},
		{name: "array of non-strings", claim: []any{"fn:a", 1}, refuse: true},
		{name: "number", claim: 42, refuse: true},
		{name: "object", claim: map[string]string{"fn": "a"}, refuse: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := p.newOIDC(t, tc.cfg)
			c := p.claims(now)
			delete(c, "scope")
			if tc.claim != nil {
				c[o.claim] = tc.claim
			}
			raw := p.sign(t, c)
			if tc.refuse {
				refuse(t, o, raw, "malformed claims")
				return
			}
			if got := accept(t, o, raw); !slices.Equal(got.Functions, tc.want) {
				t.Fatalf("functions %q, want %q", got.Functions, tc.want)
			}
		})
	}
}

func TestOIDCTimes(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{}) // skew 30s
	now := time.Now()
	cases := []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string // "" accepts
	}{
		{"valid", func(jwt.MapClaims) {}, ""},
		{"expired beyond skew", func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }, "token is expired"},
		{"expired within skew", func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }, ""},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }, "token has no expiry"},
		{"exp null", func(c jwt.MapClaims) { c["exp"] = nil }, "malformed claims"},
		{"exp a string", func(c jwt.MapClaims) { c["exp"] = "9999999999" }, "malformed claims"},
		{"exp fractional", func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Minute).Unix()) + 0.5 }, ""},
		{"exp too far", func(c jwt.MapClaims) { c["exp"] = 1e300 }, "malformed claims"},
		{"nbf beyond skew", func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() }, "token is not valid yet"},
		{"nbf within skew", func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() }, ""},
		{"no nbf", func(c jwt.MapClaims) { delete(c, "nbf") }, ""},
		{"iat beyond skew", func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Minute).Unix() }, "token is issued in the future"},
		{"iat within skew", func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Second).Unix() }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := p.claims(now)
			tc.edit(c)
			raw := p.sign(t, c)
			if tc.reason == "" {
				accept(t, o, raw)
			} else {
				refuse(t, o, raw, tc.reason)
			}
		})
	}

	// The skew is the configured one, not a library's constant: with
	// 2m, a token expired 90s ago and one valid in 90s pass; with the
	// clock moved past exp+2m, the first no longer does.
	wide := p.newOIDC(t, OIDCConfig{Skew: 2 * time.Minute})
	c := p.claims(now)
	c["exp"] = now.Add(-90 * time.Second).Unix()
	expired := p.sign(t, c)
	accept(t, wide, expired)
	refuse(t, o, expired, "token is expired")
	c = p.claims(now)
	c["nbf"] = now.Add(90 * time.Second).Unix()
	accept(t, wide, p.sign(t, c))
	wide.now = func() time.Time { return now.Add(31 * time.Second) }
	refuse(t, wide, expired, "token is expired")
}

func TestOIDCIssuerAudienceSubject(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})
	now := time.Now()
	cases := []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string
	}{
		{"wrong audience", func(c jwt.MapClaims) { c["aud"] = "someone-else" }, "wrong audience"},
		{"no audience", func(c jwt.MapClaims) { delete(c, "aud") }, "wrong audience"},
		{"audience list without ours", func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} }, "wrong audience"},
		{"audience list with ours", func(c jwt.MapClaims) { c["aud"] = []string{"a", p.m.ClientID} }, ""},
		{"audience a number", func(c jwt.MapClaims) { c["aud"] = 7 }, "malformed claims"},
		{"wrong issuer", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, "wrong issuer"},
		{"issuer with a trailing slash", func(c jwt.MapClaims) { c["iss"] = p.m.Issuer() + "/" }, "wrong issuer"},
		{"no issuer", func(c jwt.MapClaims) { delete(c, "iss") }, "wrong issuer"},
		{"no subject", func(c jwt.MapClaims) { delete(c, "sub") }, "token has no subject"},
		{"subject not a string", func(c jwt.MapClaims) { c["sub"] = 12 }, "malformed claims"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := p.claims(now)
			tc.edit(c)
			raw := p.sign(t, c)
			if tc.reason == "" {
				accept(t, o, raw)
			} else {
				refuse(t, o, raw, tc.reason)
			}
		})
	}
}

// b64json is the base64url of v's JSON: for the few tokens that are by
// nature hand-made.
func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestOIDCRefusesAlgNone(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})
	kid, _ := p.keypair().KeyID()
	payload := b64json(t, p.claims(time.Now()))
	for _, header := range []map[string]string{
		{"alg": "none"},
		{"alg": "none", "typ": "JWT", "kid": kid},
		{"alg": "None"},
		{"alg": "NONE"},
	} {
		raw := b64json(t, header) + "." + payload + "."
		refuse(t, o, raw, "signing algorithm not allowed")
	}
	// Even a "none" token carrying a real signature of the same input
	// is refused on its header.
	signed := p.sign(t, p.claims(time.Now()))
	parts := strings.Split(signed, ".")
	refuse(t, o, b64json(t, map[string]string{"alg": "none"})+"."+parts[1]+"."+parts[2], "signing algorithm not allowed")
}

func TestOIDCRefusesHMACWithPublicKey(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})
	kp := p.keypair()
	kid, _ := kp.KeyID()
	pkix, err := x509.MarshalPKIXPublicKey(kp.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// The attacker knows the public key and signs with it as an HMAC
	// secret, in the encodings a confused verifier might use.
	secrets := [][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(kp.PublicKey)}),
		pkix,
		kp.PublicKey.N.Bytes(),
	}
	for _, method := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		for _, secret := range secrets {
			tok := jwt.NewWithClaims(method, p.claims(time.Now()))
			tok.Header["kid"] = kid
			raw, err := tok.SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			refuse(t, o, raw, "signing algorithm not allowed")
		}
	}
	// Nor can a configuration let HMAC in.
	for _, alg := range []string{"HS256", "HS384", "HS512", "none"} {
		if _, err := NewOIDC(t.Context(), OIDCConfig{Issuer: p.m.Issuer(), Audience: "a", Algorithms: []string{"RS256", alg}}); err == nil {
			t.Errorf("Algorithms with %s accepted", alg)
		}
	}
}

func TestOIDCPinsAlgorithms(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{Algorithms: []string{"ES256"}})
	// An RS256 token by the provider's own key is refused when only
	// ES256 is allowed.
	refuse(t, o, p.sign(t, p.claims(time.Now())), "signing algorithm not allowed")
}

func TestOIDCRefusesUnknownKey(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})
	now := time.Now()
	stranger := randomKeypair(t)

	hits := p.jwksHits.Load()
	raw, err := stranger.SignJWT(p.claims(now))
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, o, raw, "unknown signing key")
	// Unknown kids make the gateway look for new keys, but at most once
	// per refresh interval however many such tokens come.
	for range 5 {
		refuse(t, o, raw, "unknown signing key")
	}
	if got := p.jwksHits.Load() - hits; got > 1 {
		t.Errorf("%d key set fetches for unknown kids, want at most 1", got)
	}

	// A stranger's signature under the provider's kid is a bad
	// signature, and no reason to fetch keys.
	providerKid, _ := p.keypair().KeyID()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, p.claims(now))
	tok.Header["kid"] = providerKid
	forged, err := tok.SignedString(stranger.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	hits = p.jwksHits.Load()
	refuse(t, o, forged, "bad signature")
	if got := p.jwksHits.Load() - hits; got != 0 {
		t.Errorf("%d key set fetches for a known kid", got)
	}

	// Nor is a key embedded in the token's own header trusted.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: stranger.PrivateKey},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(p.claims(now))
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, o, embedded, "unknown signing key")

	// A token altered after signing.
	good := p.sign(t, p.claims(now))
	parts := strings.Split(good, ".")
	c := p.claims(now)
	c["scope"] = "fn:*"
	refuse(t, o, parts[0]+"."+b64json(t, c)+"."+parts[2], "bad signature")
}

func TestOIDCKeyRotation(t *testing.T) {
	p := startProvider(t)
	o := p.newOIDC(t, OIDCConfig{})
	// A short refresh interval, so that the test need not wait 10s.
	o.keys.(*remoteKeys).minRefresh = 100 * time.Millisecond

	oldToken, _ := p.login(t, scopedUser{sub: "dave", scope: "fn:orders"}, "openid")
	accept(t, o, oldToken)

	p.rotate(t)
	newToken, _ := p.login(t, scopedUser{sub: "dave", scope: "fn:orders"}, "openid")
	if kidOf(t, newToken) == kidOf(t, oldToken) {
		t.Fatal("rotation kept the kid")
	}
	// The new kid is unknown to the cache; once the refresh interval
	// since the last fetch has passed, it makes the gateway fetch the
	// provider's keys again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := o.Authenticate(t.Context(), newToken)
		if err == nil {
			break
		}
		checkTokenError(t, err, newToken)
		if time.Now().After(deadline) {
			t.Fatalf("token signed by the rotated key still refused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := accept(t, o, newToken); got.Name != "dave" || !slices.Equal(got.Functions, []string{"orders"}) {
		t.Errorf("principal %+v", got)
	}
	// The provider no longer publishes the old key: its tokens are over.
	refuse(t, o, oldToken, "unknown signing key")
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

func TestOIDCExplicitJWKSURL(t *testing.T) {
	p := startProvider(t)
	// No discovery: the key set URL is given.
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: p.m.Issuer(), Audience: p.m.ClientID, JWKSURL: p.m.JWKSEndpoint()})
	if err != nil {
		t.Fatal(err)
	}
	accept(t, o, p.sign(t, p.claims(time.Now())))
}

func TestOIDCDiscoveryChecksIssuer(t *testing.T) {
	p := startProvider(t)
	_, err := NewOIDC(t.Context(), OIDCConfig{Issuer: p.m.Issuer() + "/", Audience: "a"})
	if err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("issuer with a trailing slash: err %v", err)
	}
	_, err = NewOIDC(t.Context(), OIDCConfig{Issuer: p.m.Addr() + "/elsewhere", Audience: "a"})
	if err == nil {
		t.Fatal("issuer without a discovery document accepted")
	}
}

func TestOIDCKeysUnavailable(t *testing.T) {
	// A key set server that, once the gateway has its keys, hangs.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jwksJSON(t, jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"})
	release := make(chan struct{})
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) > 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	defer srv.Close()
	defer close(release)

	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: "https://issuer.example", Audience: "a", JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	o.keys.(*remoteKeys).minRefresh = 0
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := signES256(t, other, "k2", map[string]any{"iss": "https://issuer.example", "aud": "a", "sub": "s", "exp": time.Now().Add(time.Minute).Unix()})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = o.Authenticate(ctx, raw)
	if !errors.Is(err, ErrTokenKeysUnavailable) || !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("err %v, want ErrTokenKeysUnavailable and ErrTokenInvalid", err)
	}
	checkTokenError(t, err, raw)
}

func TestNewOIDCConfigErrors(t *testing.T) {
	p := startProvider(t)
	iss, aud := p.m.Issuer(), p.m.ClientID
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, jwksFile, jwksJSON(t, jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k"}))
	symmetric := filepath.Join(t.TempDir(), "hmac.json")
	writeFile(t, symmetric, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}`))
	encOnly := filepath.Join(t.TempDir(), "enc.json")
	writeFile(t, encOnly, jwksJSON(t, jose.JSONWebKey{Key: &key.PublicKey, KeyID: "k", Use: "enc"}))

	cases := []struct {
		name string
		cfg  OIDCConfig
	}{
		{"no issuer", OIDCConfig{Audience: aud}},
		{"no audience", OIDCConfig{Issuer: iss}},
		{"alg none", OIDCConfig{Issuer: iss, Audience: aud, Algorithms: []string{"none"}}},
		{"alg HS256", OIDCConfig{Issuer: iss, Audience: aud, Algorithms: []string{"HS256"}}},
		{"alg unknown", OIDCConfig{Issuer: iss, Audience: aud, Algorithms: []string{"rs256"}}},
		{"skew too large", OIDCConfig{Issuer: iss, Audience: aud, Skew: 6 * time.Minute}},
		{"skew negative", OIDCConfig{Issuer: iss, Audience: aud, Skew: -time.Second}},
		{"URL and file", OIDCConfig{Issuer: iss, Audience: aud, JWKSURL: p.m.JWKSEndpoint(), JWKSFile: jwksFile}},
		{"missing file", OIDCConfig{Issuer: iss, Audience: aud, JWKSFile: filepath.Join(t.TempDir(), "absent.json")}},
		{"symmetric keys only", OIDCConfig{Issuer: iss, Audience: aud, JWKSFile: symmetric}},
		{"encryption keys only", OIDCConfig{Issuer: iss, Audience: aud, JWKSFile: encOnly}},
		{"JWKS URL not http", OIDCConfig{Issuer: iss, Audience: aud, JWKSURL: "file:///etc/passwd"}},
		{"JWKS URL not a key set", OIDCConfig{Issuer: iss, Audience: aud, JWKSURL: p.m.DiscoveryEndpoint()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if o, err := NewOIDC(t.Context(), tc.cfg); err == nil {
				t.Fatalf("accepted: %+v", o)
			}
		})
	}
	// And the defaults.
	o := p.newOIDC(t, OIDCConfig{})
	if o.skew != DefaultOIDCSkew || o.claim != "scope" || o.prefix != "fn:" ||
		!slices.Equal(o.algs, []jose.SignatureAlgorithm{jose.RS256, jose.ES256}) {
		t.Errorf("defaults: skew %v claim %q prefix %q algs %v", o.skew, o.claim, o.prefix, o.algs)
	}
}

func TestOIDCJWKSFile(t *testing.T) {
	const iss, aud = "https://login.example.com", "switchyard"
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path, jwksJSON(t, jose.JSONWebKey{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}))

	// No network: no HTTP client is ever used.
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: iss, Audience: aud, JWKSFile: path, HTTPClient: failingClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	claims := func() map[string]any {
		return map[string]any{"iss": iss, "aud": []string{aud}, "sub": "svc-1", "exp": time.Now().Add(time.Minute).Unix(), "scope": "fn:orders"}
	}
	tok1 := signES256(t, k1, "k1", claims())
	tok2 := signES256(t, k2, "k2", claims())
	if got := accept(t, o, tok1); got.ID != iss+"#svc-1" || !slices.Equal(got.Functions, []string{"orders"}) {
		t.Fatalf("principal %+v", got)
	}
	refuse(t, o, tok2, "unknown signing key")
	// An RS256 token cannot be checked by an EC key.
	kp := randomKeypair(t)
	rs, err := kp.SignJWT(jwt.MapClaims(claims()))
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, o, rs, "unknown signing key")

	// The operator rotates: the file now holds k2 only. The file is
	// another one now, so it is read again at once: the old key, known
	// to the cache, is gone for the next token.
	replaceFile(t, path, jwksJSON(t, jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"}))
	refuse(t, o, tok1, "unknown signing key")
	accept(t, o, tok2)

	// A broken file keeps the last good keys.
	replaceFile(t, path, []byte(`{"keys": [`))
	accept(t, o, tok2)
	// So does a file that is gone for a while.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	accept(t, o, tok2)

	// A file holding private keys serves their public halves, and keys
	// without kid are all tried.
	replaceFile(t, path, jwksJSON(t, jose.JSONWebKey{Key: k1, Algorithm: "ES256"}))
	accept(t, o, signES256(t, k1, "", claims()))
	refuse(t, o, tok2, "unknown signing key")
}

// A key whose JWK names an algorithm checks only tokens of that algorithm,
// even one the configuration allows and the key could compute.
func TestOIDCKeyAlgorithm(t *testing.T) {
	const iss, aud = "https://login.example.com", "switchyard"
	kp := randomKeypair(t)
	kid, _ := kp.KeyID()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, path, jwksJSON(t, jose.JSONWebKey{Key: kp.PublicKey, KeyID: kid, Algorithm: "RS512", Use: "sig"}))
	o, err := NewOIDC(t.Context(), OIDCConfig{Issuer: iss, Audience: aud, JWKSFile: path, Algorithms: []string{"RS256", "RS512"}})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"iss": iss, "aud": aud, "sub": "s", "exp": time.Now().Add(time.Minute).Unix()}
	rs256, err := kp.SignJWT(claims)
	if err != nil {
		t.Fatal(err)
	}
	refuse(t, o, rs256, "bad signature")
	tok := jwt.NewWithClaims(jwt.SigningMethodRS512, claims)
	tok.Header["kid"] = kid
	rs512, err := tok.SignedString(kp.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	accept(t, o, rs512)
}

// failingClient fails the test if it is used.
func failingClient(t *testing.T) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("unexpected HTTP request to %s", r.URL)
		return nil, errors.New("no network")
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func signES256(t testing.TB, key *ecdsa.PrivateKey, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func jwksJSON(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceFile writes path atomically, as an operator's tooling should.
func replaceFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, b)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func principalEqual(a, b *Principal) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Name == b.Name &&
		slices.Equal(a.Functions, b.Functions) && a.Rate == b.Rate && a.Burst == b.Burst
}

func TestOIDCNilRefuses(t *testing.T) {
	var o *OIDC
	refuse(t, o, "a.b.c", "no token verifier is configured")
}
