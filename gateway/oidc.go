package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults and bounds of OIDCConfig.
const (
	DefaultOIDCSkew   = 30 * time.Second
	MaxOIDCSkew       = 5 * time.Minute
	DefaultOIDCClaim  = "scope"
	DefaultOIDCPrefix = "fn:"
)

const (
	// maxTokenBytes bounds the bearer tokens Authenticate looks at.
	maxTokenBytes = 16 << 10
	// maxOIDCDocBytes bounds discovery documents and key sets.
	maxOIDCDocBytes = 1 << 20
	// defaultKeyRefresh is the least time between two fetches of the
	// provider's key set that tokens naming an unknown key may cause.
	defaultKeyRefresh = 10 * time.Second
	// fileKeyRefresh is the same for a key set file whose size and time
	// did not change.
	fileKeyRefresh  = time.Second
	oidcHTTPTimeout = 10 * time.Second
)

// oidcAlgorithms are the signing algorithms a configuration may allow:
// asymmetric ones only. "none" and the HMAC family are refused, so that a
// public key can never be used as a shared secret.
var oidcAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// ErrTokenInvalid is wrapped by every error Authenticate returns: the
// token does not authenticate anyone, and the caller answers 401.
var ErrTokenInvalid = errors.New("invalid bearer token")

// ErrTokenKeysUnavailable is also wrapped when the token could not be
// checked because the provider's keys could not be had (network, file).
// It is still a 401 for the client; it is worth a log line for operators.
var ErrTokenKeysUnavailable = errors.New("token signing keys unavailable")

// TokenError is why a bearer token was refused. Its text is one of a
// fixed set of reasons and never holds the token or any claim from it.
type TokenError struct {
	Reason string
	keys   bool // the keys could not be had
}

func (e *TokenError) Error() string { return "invalid bearer token: " + e.Reason }

// Unwrap lets errors.Is match ErrTokenInvalid (always) and
// ErrTokenKeysUnavailable (when that is why).
func (e *TokenError) Unwrap() []error {
	if e.keys {
		return []error{ErrTokenInvalid, ErrTokenKeysUnavailable}
	}
	return []error{ErrTokenInvalid}
}

func tokenErr(reason string) error { return &TokenError{Reason: reason} }

// OIDCConfig tells the gateway which OIDC / JWT bearer tokens to accept.
type OIDCConfig struct {
	// Issuer is required; a token's iss must equal it exactly.
	Issuer string
	// Audience is required; a token's aud must contain it.
	Audience string
	// JWKSURL is where the provider's keys are; empty discovers it from
	// Issuer/.well-known/openid-configuration.
	JWKSURL string
	// JWKSFile is a local key set file used instead of the network; it
	// is read again when it changes. Exclusive with JWKSURL.
	JWKSFile string
	// Algorithms are the signing algorithms allowed; default RS256 and
	// ES256. "none" and HS* are refused.
	Algorithms []string
	// Skew is the clock skew allowed on exp, nbf and iat; default 30s,
	// at most 5m.
	Skew time.Duration
	// Claim is the claim that lists the functions granted, a
	// space-separated string or a JSON array of strings; default "scope".
	Claim string
	// Prefix marks the values of Claim that name functions; default
	// "fn:", so "fn:orders openid" grants orders. "fn:*" grants every
	// function that is not internal.
	Prefix string
	// HTTPClient fetches discovery and keys; default one with a 10s
	// timeout.
	HTTPClient *http.Client
}

// OIDC authenticates bearer tokens issued by one OIDC provider. It is
// safe for concurrent use.
type OIDC struct {
	issuer   string
	audience string
	algs     []jose.SignatureAlgorithm
	skew     time.Duration
	claim    string
	prefix   string
	keys     keySource
	now      func() time.Time
}

// keySource hands out the provider's public keys. refresh asks for a
// fresher copy than the cached one, because a token names a key that is
// not in it; sources bound how often that reaches the network or disk.
type keySource interface {
	keys(ctx context.Context, refresh bool) ([]jose.JSONWebKey, error)
}

// NewOIDC checks cfg and readies the key set: it reads JWKSFile, or
// discovers the key set URL when JWKSURL is empty, and fetches the keys
// once so that a bad configuration fails now rather than on every request.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oidc: issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("oidc: audience is required")
	}
	if cfg.JWKSURL != "" && cfg.JWKSFile != "" {
		return nil, errors.New("oidc: set a JWKS URL or a JWKS file, not both")
	}
	o := &OIDC{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		skew:     cfg.Skew,
		claim:    cfg.Claim,
		prefix:   cfg.Prefix,
		now:      time.Now,
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256", "ES256"}
	}
	for _, a := range algs {
		if !oidcAlgorithms[a] {
			return nil, fmt.Errorf("oidc: signing algorithm %q is not allowed (use RS*, PS*, ES* or EdDSA)", a)
		}
		if !slices.Contains(o.algs, jose.SignatureAlgorithm(a)) {
			o.algs = append(o.algs, jose.SignatureAlgorithm(a))
		}
	}
	switch {
	case o.skew == 0:
		o.skew = DefaultOIDCSkew
	case o.skew < 0 || o.skew > MaxOIDCSkew:
		return nil, fmt.Errorf("oidc: clock skew %v is out of range (0 to %v)", o.skew, MaxOIDCSkew)
	}
	if o.claim == "" {
		o.claim = DefaultOIDCClaim
	}
	if o.prefix == "" {
		o.prefix = DefaultOIDCPrefix
	}

	if cfg.JWKSFile != "" {
		fk := &fileKeys{path: cfg.JWKSFile}
		if _, err := fk.keys(ctx, false); err != nil {
			return nil, fmt.Errorf("oidc: %w", err)
		}
		o.keys = fk
		return o, nil
	}

	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: oidcHTTPTimeout}
	}
	jwksURL := cfg.JWKSURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = discoverJWKS(ctx, client, cfg.Issuer); err != nil {
			return nil, fmt.Errorf("oidc: discovery: %w", err)
		}
	}
	if err := checkHTTPURL(jwksURL); err != nil {
		return nil, fmt.Errorf("oidc: JWKS URL: %w", err)
	}
	rk := &remoteKeys{url: jwksURL, client: client, minRefresh: defaultKeyRefresh}
	if _, err := rk.keys(ctx, false); err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	o.keys = rk
	return o, nil
}

// Authenticate checks a bearer token (without the "Bearer " prefix) and
// returns whom it stands for. Every refusal wraps ErrTokenInvalid.
func (o *OIDC) Authenticate(ctx context.Context, raw string) (*Principal, error) {
	if o == nil {
		return nil, tokenErr("no token verifier is configured")
	}
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, tokenErr("malformed token")
	}
	// A JWT is three base64url parts; the JSON serialization of JWS and
	// encrypted tokens (five parts) are not bearer tokens here.
	if strings.Count(raw, ".") != 2 || strings.ContainsFunc(raw, notBase64URLOrDot) {
		return nil, tokenErr("malformed token")
	}
	if alg, ok := tokenAlg(raw); !ok {
		return nil, tokenErr("malformed token")
	} else if !slices.Contains(o.algs, jose.SignatureAlgorithm(alg)) {
		return nil, tokenErr("signing algorithm not allowed")
	}
	jws, err := jose.ParseSignedCompact(raw, o.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, tokenErr("malformed token")
	}
	payload, err := o.verifySignature(ctx, jws)
	if err != nil {
		return nil, err
	}
	return o.checkClaims(payload)
}

func notBase64URLOrDot(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// tokenAlg reads the alg of a compact JWT's header, so that a refusal for
// the algorithm says so.
func tokenAlg(raw string) (string, bool) {
	head, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return "", false
	}
	return h.Alg, true
}

// verifySignature finds the key the token names and checks the
// signature with it. A token naming a key not in the cached set asks the
// source for fresh keys once: that is how rotation reaches the gateway.
func (o *OIDC) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	keys, err := o.keys.keys(ctx, false)
	if err != nil {
		return nil, &TokenError{Reason: "signing keys unavailable", keys: true}
	}
	payload, known := tryKeys(jws, keys)
	if payload != nil {
		return payload, nil
	}
	if !known {
		if keys, err = o.keys.keys(ctx, true); err != nil {
			return nil, &TokenError{Reason: "signing keys unavailable", keys: true}
		}
		if payload, known = tryKeys(jws, keys); payload != nil {
			return payload, nil
		}
	}
	if !known {
		return nil, tokenErr("unknown signing key")
	}
	return nil, tokenErr("bad signature")
}

// tryKeys verifies jws with the keys that match its kid (every key when
// it names none) and algorithm. known reports whether some key had its
// kid.
func tryKeys(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) (payload []byte, known bool) {
	h := jws.Signatures[0].Header
	alg := h.Algorithm
	for i := range keys {
		k := &keys[i]
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if h.KeyID != "" {
			known = true
		}
		if k.Algorithm != "" && k.Algorithm != alg || !keyFits(k.Key, alg) {
			continue
		}
		if p, err := jws.Verify(k.Key); err == nil {
			return p, true
		}
	}
	return nil, known
}

// keyFits reports whether key can check signatures made with alg.
func keyFits(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// checkClaims checks a verified payload's registered claims and builds
// the principal. No claim value is ever put in an error.
func (o *OIDC) checkClaims(payload []byte) (*Principal, error) {
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, tokenErr("malformed claims")
	}
	var iss, sub string
	if !claimString(claims, "iss", &iss) || !claimString(claims, "sub", &sub) {
		return nil, tokenErr("malformed claims")
	}
	if iss != o.issuer {
		return nil, tokenErr("wrong issuer")
	}
	aud, ok := claimAudience(claims["aud"])
	if !ok {
		return nil, tokenErr("malformed claims")
	}
	if !slices.Contains(aud, o.audience) {
		return nil, tokenErr("wrong audience")
	}
	exp, hasExp, ok1 := claimTime(claims, "exp")
	nbf, hasNbf, ok2 := claimTime(claims, "nbf")
	iat, hasIat, ok3 := claimTime(claims, "iat")
	if !ok1 || !ok2 || !ok3 {
		return nil, tokenErr("malformed claims")
	}
	now := o.now()
	switch {
	case !hasExp:
		return nil, tokenErr("token has no expiry")
	case !now.Before(exp.Add(o.skew)):
		return nil, tokenErr("token is expired")
	case hasNbf && now.Add(o.skew).Before(nbf):
		return nil, tokenErr("token is not valid yet")
	case hasIat && now.Add(o.skew).Before(iat):
		return nil, tokenErr("token is issued in the future")
	}
	if sub == "" {
		return nil, tokenErr("token has no subject")
	}
	fns, ok := o.grants(claims[o.claim])
	if !ok {
		return nil, tokenErr("malformed claims")
	}
	return &Principal{
		Kind:      PrincipalToken,
		ID:        iss + "#" + sub,
		Name:      sub,
		Functions: fns,
	}, nil
}

// grants reads the functions granted from the claim's value: a
// space-separated string or an array of strings, of which those with
// the prefix count. An absent or null claim grants nothing.
func (o *OIDC) grants(raw json.RawMessage) ([]string, bool) {
	if raw == nil || bytes.Equal(raw, []byte("null")) {
		return nil, true
	}
	var values []string
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		values = strings.Fields(s)
	} else if err := json.Unmarshal(raw, &values); err != nil {
		return nil, false
	}
	var fns []string
	for _, v := range values {
		fn, ok := strings.CutPrefix(v, o.prefix)
		if !ok || fn == "" || strings.ContainsFunc(fn, isSpaceOrControl) || slices.Contains(fns, fn) {
			continue
		}
		fns = append(fns, fn)
	}
	return fns, true
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// claimString reads an optional string claim: absent is "", any other
// type is malformed.
func claimString(claims map[string]json.RawMessage, name string, dst *string) bool {
	raw, ok := claims[name]
	if !ok {
		return true
	}
	return json.Unmarshal(raw, dst) == nil && !bytes.Equal(raw, []byte("null"))
}

// claimAudience reads aud, a string or an array of strings.
func claimAudience(raw json.RawMessage) ([]string, bool) {
	if raw == nil {
		return nil, true
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil && !bytes.Equal(raw, []byte("null")) {
		return []string{one}, true
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, false
	}
	return many, true
}

// maxNumericDate is the last second of year 9999; later dates are
// refused rather than overflowing time arithmetic.
const maxNumericDate = 253402300799

// claimTime reads a NumericDate claim (seconds since the epoch, a JSON
// number). has says whether the claim is there, ok whether it is sound.
func claimTime(claims map[string]json.RawMessage, name string) (t time.Time, has, ok bool) {
	raw, present := claims[name]
	if !present {
		return time.Time{}, false, true
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || bytes.Equal(raw, []byte("null")) ||
		math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}

// discoverJWKS reads the provider's discovery document and returns its
// jwks_uri, after checking that it speaks for issuer.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	body, err := getDoc(ctx, client, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("decoding the discovery document: %w", err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("the provider says its issuer is %q, not %q", doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("the discovery document has no jwks_uri")
	}
	return doc.JWKSURI, nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

// getDoc GETs a JSON document of bounded size.
func getDoc(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOIDCDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if len(body) > maxOIDCDocBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, maxOIDCDocBytes)
	}
	return body, nil
}

// parseJWKS reads a JSON Web Key Set and keeps the public signing keys
// it can use: RSA, EC and Ed25519 ones whose use, if given, is "sig".
// Private keys are reduced to their public half; symmetric keys and keys
// of unknown types are skipped. A set with no usable key is an error.
func parseJWKS(b []byte) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("decoding the key set: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, pub)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no usable signing key")
	}
	return keys, nil
}

// remoteKeys is the provider's key set at a URL, cached. Refreshes are
// shared by concurrent callers and at most one per minRefresh.
type remoteKeys struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	mu       sync.Mutex
	cached   []jose.JSONWebKey
	fetched  time.Time // when the last fetch started
	inflight *keyFetch
}

type keyFetch struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

func (r *remoteKeys) keys(ctx context.Context, refresh bool) ([]jose.JSONWebKey, error) {
	r.mu.Lock()
	if r.cached != nil && (!refresh || time.Since(r.fetched) < r.minRefresh) {
		keys := r.cached
		r.mu.Unlock()
		return keys, nil
	}
	f := r.inflight
	if f == nil {
		f = &keyFetch{done: make(chan struct{})}
		r.inflight = f
		r.fetched = time.Now()
		// The fetch outlives the request that asked for it, so that a
		// client hanging up does not fail the others waiting on it.
		go r.fetch(context.WithoutCancel(ctx), f)
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.keys, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *remoteKeys) fetch(ctx context.Context, f *keyFetch) {
	ctx, cancel := context.WithTimeout(ctx, oidcHTTPTimeout)
	defer cancel()
	body, err := getDoc(ctx, r.client, r.url)
	if err == nil {
		f.keys, err = parseJWKS(body)
	}
	f.err = err
	r.mu.Lock()
	if err == nil {
		r.cached = f.keys
	} else if r.cached != nil {
		// Keep serving the keys we have: a provider that is down for a
		// while must not lock everyone out.
		f.keys, f.err = r.cached, nil
	}
	r.inflight = nil
	r.mu.Unlock()
	close(f.done)
}

// fileKeys is a key set file, read again when it is replaced or its
// size or modification time changes, or (at most once a second) when a
// token names an unknown key. A file that cannot be read or parsed keeps
// the last good keys.
type fileKeys struct {
	path string

	mu     sync.Mutex
	cached []jose.JSONWebKey
	fi     os.FileInfo // of the file last read
	read   time.Time
}

func (f *fileKeys) keys(_ context.Context, refresh bool) ([]jose.JSONWebKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		if f.cached != nil {
			return f.cached, nil
		}
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	changed := f.fi == nil || !os.SameFile(fi, f.fi) || fi.Size() != f.fi.Size() || !fi.ModTime().Equal(f.fi.ModTime())
	if f.cached != nil && !changed && (!refresh || time.Since(f.read) < fileKeyRefresh) {
		return f.cached, nil
	}
	f.read = time.Now()
	keys, err := readJWKSFile(f.path)
	// A broken file is not read again until it changes (or a token
	// names an unknown key): the last good keys stay in force.
	f.fi = fi
	if err != nil {
		if f.cached != nil {
			return f.cached, nil
		}
		return nil, err
	}
	f.cached = keys
	return keys, nil
}

func readJWKSFile(path string) ([]jose.JSONWebKey, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxOIDCDocBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	if len(b) > maxOIDCDocBytes {
		return nil, fmt.Errorf("JWKS file %s is larger than %d bytes", path, maxOIDCDocBytes)
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("JWKS file %s: %w", path, err)
	}
	return keys, nil
}
