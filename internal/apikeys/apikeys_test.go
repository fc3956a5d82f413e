package apikeys

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/natstest"
	"github.com/switchyard-dev/switchyard/runtime/roles"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Run(t)))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestParse(t *testing.T) {
	good := "yk_abcdefghij12_" + strings.Repeat("a", SecretLen)
	if id, secret, err := Parse(good); err != nil || id != "abcdefghij12" || secret != strings.Repeat("a", SecretLen) {
		t.Fatalf("Parse(good) = %q, %q, %v", id, secret, err)
	}
	bad := []string{
		"", "yk_", good[:len(good)-1], good + "a", "YK" + good[2:], "yk-abcdefghij12_" + strings.Repeat("a", SecretLen),
		"yk_ABCDEFGHIJ12_" + strings.Repeat("a", SecretLen), "yk_abcdefghij1-_" + strings.Repeat("a", SecretLen),
		"yk_abcdefghij12-" + strings.Repeat("a", SecretLen), "yk_abcdefghij12_" + strings.Repeat("A", SecretLen),
		"yk_abcdefghij12_" + strings.Repeat("a", SecretLen-1) + "1", "yk_abcdefghij12_" + strings.Repeat("a", SecretLen-1) + "=",
		// The last character carries 4 unused bits, which must be zero.
		"yk_abcdefghij12_" + strings.Repeat("a", SecretLen-1) + "b",
		"yk_abcdefghij12_" + strings.Repeat("a", SecretLen-2) + "\n" + "a",
		"yk_abcdéfghij1_" + strings.Repeat("a", SecretLen),
	}
	for _, k := range bad {
		if _, _, err := Parse(k); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v, want ErrMalformed", k, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	for s, want := range map[string]struct {
		rate  float64
		burst int
	}{"": {0, 0}, "50/s": {50, 100}, "50": {50, 100}, "120/m": {2, 4}, "3600/h": {1, 2}, "0.5/s": {0.5, 1}, "1/h": {1.0 / 3600, 1}} {
		r, b, err := ParseRate(s)
		if err != nil || r != want.rate || b != want.burst {
			t.Errorf("ParseRate(%q) = %v, %v, %v; want %v", s, r, b, err, want)
		}
	}
	for _, s := range []string{"0/s", "-1/s", "fast", "50/d", "50/s/s", "1e3/s", "0x10/s", "NaN/s", "Inf/s", "/s", "5e10/s"} {
		if _, _, err := ParseRate(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRate(%q): %v, want ErrInvalid", s, err)
		}
	}
	for _, r := range []float64{50, 0.5, 2, 1.0 / 60, 1.0 / 3600} {
		back, _, err := ParseRate(FormatRate(r))
		if err != nil || back-r > 1e-9 || r-back > 1e-9 {
			t.Errorf("FormatRate(%v) = %q reads back as %v, %v", r, FormatRate(r), back, err)
		}
	}
}

func TestCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	js := newJS(t)

	key, rec, err := Create(ctx, js, "shop", []string{"orders", "inventory", "orders"}, "10/s")
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := Parse(key)
	if err != nil || id != rec.ID || rec.Name != "shop" || rec.Rate != 10 || rec.Burst != 20 ||
		strings.Join(rec.Functions, ",") != "inventory,orders" || rec.Hash != HashSecret(secret) || rec.Created.IsZero() {
		t.Fatalf("key %q, record %+v, %v", key, rec, err)
	}
	// The stored entry never holds the key or the secret.
	kv, err := js.KeyValue(ctx, wire.BucketKeys)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, id)
	if err != nil || strings.Contains(string(e.Value()), secret) || !strings.Contains(string(e.Value()), rec.Hash) {
		t.Fatalf("entry %s, %v", e.Value(), err)
	}

	if _, _, err := Create(ctx, js, "Bad Name", []string{"x"}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name: %v", err)
	}
	if _, _, err := Create(ctx, js, "x", nil, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("no functions: %v", err)
	}
	if _, _, err := Create(ctx, js, "x", []string{"fn.>"}, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad function: %v", err)
	}
	if _, _, err := Create(ctx, js, "x", []string{"a"}, "lots"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad rate: %v", err)
	}
	_, all, err := Create(ctx, js, "admin", []string{"orders", "*"}, "")
	if err != nil || len(all.Functions) != 1 || all.Functions[0] != "*" {
		t.Fatalf("all: %+v, %v", all, err)
	}
	_, twin1, _ := Create(ctx, js, "twin", []string{"a"}, "")
	_, twin2, _ := Create(ctx, js, "twin", []string{"a"}, "")

	recs, err := List(ctx, js)
	if err != nil || len(recs) != 4 {
		t.Fatalf("List: %+v, %v", recs, err)
	}

	if _, err := Revoke(ctx, js, "twin"); !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), twin1.ID) {
		t.Errorf("ambiguous: %v", err)
	}
	if _, err := Revoke(ctx, js, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := Revoke(ctx, js, "zzzzzzzzzzzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	r, err := Revoke(ctx, js, twin2.ID)
	if err != nil || !r.IsRevoked() {
		t.Fatalf("revoke by id: %+v, %v", r, err)
	}
	// Now the name is unambiguous among unrevoked keys.
	if r, err := Revoke(ctx, js, "twin"); err != nil || r.ID != twin1.ID {
		t.Fatalf("revoke by name: %+v, %v", r, err)
	}
	again, err := Revoke(ctx, js, twin2.ID)
	if err != nil || !again.Revoked.Equal(r.Revoked) && again.Revoked.IsZero() {
		t.Fatalf("revoke again: %+v, %v", again, err)
	}
}

// TestCacheSeesRevocation: a cache on another connection refuses a key
// within 2 s of its revocation, and learns new keys as they are made.
func TestCacheSeesRevocation(t *testing.T) {
	ctx := context.Background()
	s := natstest.Run(t)
	js, _ := jetstream.New(natstest.Connect(t, s))
	key, rec, err := Create(ctx, js, "shop", []string{"orders"}, "")
	if err != nil {
		t.Fatal(err)
	}
	gjs, _ := jetstream.New(natstest.Connect(t, s))
	var bad atomic.Int32
	c, err := NewCache(ctx, gjs, func(k string, err error) {
		if k != "" {
			bad.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Verify(key); err != nil || got.ID != rec.ID {
		t.Fatalf("Verify: %+v, %v", got, err)
	}
	id, _, _ := Parse(key)
	wrong := Prefix + id + "_" + strings.Repeat("a", SecretLen)
	if _, err := c.Verify(wrong); !errors.Is(err, ErrUnknown) {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := c.Verify("yk_nope"); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}

	key2, _, err := Create(ctx, js, "later", []string{"*"}, "")
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 2*time.Second, "the cache to learn a new key", func() bool {
		_, err := c.Verify(key2)
		return err == nil
	})

	if _, err := Revoke(ctx, js, rec.ID); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 2*time.Second, "the cache to see the revocation", func() bool {
		_, err := c.Verify(key)
		return errors.Is(err, ErrRevoked)
	})

	// An entry written around Create is left out, and reported.
	kv, _ := js.KeyValue(ctx, wire.BucketKeys)
	junk, _ := json.Marshal(Record{ID: "aaaaaaaaaaaa", Hash: "zz", Functions: []string{"*"}})
	if _, err := kv.Put(ctx, "aaaaaaaaaaaa", junk); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 2*time.Second, "the bad entry to be reported", func() bool { return bad.Load() == 1 })
	if _, ok := c.Lookup("aaaaaaaaaaaa"); ok {
		t.Error("a bad entry is in the cache")
	}
}

// TestCacheWithoutTheBucket: a gateway whose NATS user may only read
// yard_keys starts with an empty cache when the bucket is missing, without
// trying to make it, and follows it once an admin makes it.
func TestCacheWithoutTheBucket(t *testing.T) {
	gw := roles.Gateway()
	s := natstest.RunWithUsers(t, []*natsserver.User{
		{Username: "admin", Password: "a"},
		{Username: "gateway", Password: "g", Permissions: &natsserver.Permissions{
			Publish:   &natsserver.SubjectPermission{Allow: gw.Publish, Deny: gw.DenyPublish},
			Subscribe: &natsserver.SubjectPermission{Allow: gw.Subscribe},
		}},
	})
	var violations atomic.Int32
	gnc := natstest.Connect(t, s, nats.UserInfo("gateway", "g"), nats.CustomInboxPrefix(roles.GatewayInbox),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				violations.Add(1)
			}
		}))
	gjs, _ := jetstream.New(gnc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCache(ctx, gjs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Len() != 0 {
		t.Fatalf("%d keys", c.Len())
	}
	if _, err := gjs.KeyValue(ctx, wire.BucketKeys); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("the gateway made the bucket: %v", err)
	}
	ajs, _ := jetstream.New(natstest.Connect(t, s, nats.UserInfo("admin", "a")))
	key, _, err := Create(ctx, ajs, "late", []string{"*"}, "")
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "the cache to find the new bucket", func() bool {
		_, err := c.Verify(key)
		return err == nil
	})
	if n := violations.Load(); n != 0 {
		t.Fatalf("the gateway's user was refused %d times", n)
	}
}
