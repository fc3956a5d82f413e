package registry_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

var testArtifact = &registry.Artifact{
	Digest: "sha256:" + strings.Repeat("ab", 32),
	Size:   42,
	Object: "sha256-" + strings.Repeat("ab", 32),
}

func deployable(name, hash string) *registry.Spec {
	s := spec(name, hash)
	s.Artifact = testArtifact
	s.MinInstances, s.MaxInstances = 1, 3
	s.Env = map[string]string{"GREETING": "hello"}
	return s
}

func TestDeployVersions(t *testing.T) {
	reg, _ := open(t)
	ctx := t.Context()
	in := deployable("greet", "h1")
	in.Version = 99 // ignored
	v1, err := reg.Deploy(ctx, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v1.DeployedAt.IsZero() || *v1.Artifact != *testArtifact ||
		v1.Env["GREETING"] != "hello" || v1.MinInstances != 1 || v1.MaxInstances != 3 {
		t.Fatalf("first deploy = %+v", v1)
	}
	if in.Version != 99 || !in.DeployedAt.IsZero() {
		t.Errorf("Deploy modified its argument: %+v", in)
	}
	v2, err := reg.Deploy(ctx, deployable("greet", "h2"), 0)
	if err != nil || v2.Version != 2 {
		t.Fatalf("second deploy = %+v, %v", v2, err)
	}

	live, rev, err := reg.GetEntry(ctx, "greet")
	if err != nil || live.Version != 2 || live.SchemaHash != "h2" || rev == 0 {
		t.Fatalf("GetEntry = %+v, %d, %v", live, rev, err)
	}
	vs, err := reg.Versions(ctx, "greet")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || vs[0].SchemaHash != "h1" || vs[1].Version != 2 {
		t.Fatalf("Versions = %v, %v", vs, err)
	}
	if got, err := reg.Version(ctx, "greet", 1); err != nil || got.SchemaHash != "h1" || !got.DeployedAt.Equal(v1.DeployedAt) {
		t.Errorf("Version 1 = %+v, %v", got, err)
	}
	if _, err := reg.Version(ctx, "greet", 3); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Version 3 = %v, want ErrNotFound", err)
	}
	if _, err := reg.Version(ctx, "greet", 0); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Version 0 = %v, want an invalid-version error", err)
	}
	if _, err := reg.Versions(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Versions unknown = %v, want ErrNotFound", err)
	}
	// A name that is a prefix of another does not see its versions.
	if _, err := reg.Deploy(ctx, deployable("greet-v2", "x"), 0); err != nil {
		t.Fatal(err)
	}
	if vs, _ := reg.Versions(ctx, "greet"); len(vs) != 2 {
		t.Errorf("greet has %d versions after deploying greet-v2", len(vs))
	}
	if _, err := reg.Versions(ctx, "a.b"); !errors.Is(err, wire.ErrInvalidName) {
		t.Errorf("Versions bad name = %v", err)
	}
	if _, err := reg.Deploy(ctx, &registry.Spec{Name: "greet"}, 0); err == nil {
		t.Error("Deploy accepted an invalid spec")
	}
}

func TestDeployConcurrent(t *testing.T) {
	reg, _ := open(t)
	ctx := t.Context()
	const n = 5
	got := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := reg.Deploy(ctx, deployable("greet", "h"), 0)
			if err == nil {
				got[i] = s.Version
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("deploy %d: %v", i, errs[i])
		}
		if seen[got[i]] || got[i] < 1 || got[i] > n {
			t.Errorf("versions %v: not distinct 1..%d", got, n)
		}
		seen[got[i]] = true
	}
	if vs, err := reg.Versions(ctx, "greet"); err != nil || len(vs) != n {
		t.Errorf("Versions = %d, %v", len(vs), err)
	}
}

func TestDeployConflict(t *testing.T) {
	reg, _ := open(t)
	ctx := t.Context()
	if _, err := reg.Deploy(ctx, deployable("greet", "h1"), 0); err != nil {
		t.Fatal(err)
	}
	_, rev, err := reg.GetEntry(ctx, "greet")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := reg.Deploy(ctx, deployable("greet", "h2"), rev); err != nil || s.Version != 2 {
		t.Fatalf("deploy against the live revision = %+v, %v", s, err)
	}
	if _, err := reg.Deploy(ctx, deployable("greet", "h3"), rev); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("deploy against a stale revision = %v, want ErrConflict", err)
	}
	if live, _ := reg.Get(ctx, "greet"); live.SchemaHash != "h2" {
		t.Errorf("conflicting deploy went live: %+v", live)
	}
	if _, err := reg.Deploy(ctx, deployable("nobody", "h"), 7); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("deploy expecting a function that is not live = %v, want ErrConflict", err)
	}

	// Racing deploys against the same revision: exactly one wins, whether
	// the others lose at the early check or at the compare-and-set.
	_, rev, _ = reg.GetEntry(ctx, "greet")
	const n = 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = reg.Deploy(ctx, deployable("greet", "race"), rev) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, registry.ErrConflict):
			t.Errorf("racing deploy: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d racing deploys won, want 1 (%v)", wins, errs)
	}
}

func TestRollback(t *testing.T) {
	reg, js := open(t)
	ctx := t.Context()
	var deployed []*registry.Spec
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		s, err := reg.Deploy(ctx, deployable("greet", h), 0)
		if err != nil {
			t.Fatal(err)
		}
		deployed = append(deployed, s)
	}
	rollback := func(to, want int) *registry.Spec {
		t.Helper()
		s, err := reg.Rollback(ctx, "greet", to)
		if err != nil || s.Version != want {
			t.Fatalf("Rollback(%d) = %+v, %v; want version %d", to, s, err, want)
		}
		live, err := reg.Get(ctx, "greet")
		if err != nil || live.Version != want || live.SchemaHash != deployed[want-1].SchemaHash ||
			!live.DeployedAt.Equal(s.DeployedAt) || live.DeployedAt.Before(deployed[want-1].DeployedAt) {
			t.Fatalf("live after Rollback(%d) = %+v, %v", to, live, err)
		}
		return s
	}
	rollback(0, 3)
	// Missing versions are skipped.
	vkv, err := js.KeyValue(ctx, wire.BucketVersions)
	if err != nil {
		t.Fatal(err)
	}
	if err := vkv.Delete(ctx, "greet.2"); err != nil {
		t.Fatal(err)
	}
	rollback(0, 1)
	if _, err := reg.Rollback(ctx, "greet", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Rollback(0) from version 1 = %v, want ErrNotFound", err)
	}
	rollback(4, 4)
	if _, err := reg.Rollback(ctx, "greet", 2); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Rollback to a missing version = %v, want ErrNotFound", err)
	}
	if _, err := reg.Rollback(ctx, "greet", 9); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Rollback to an unknown version = %v, want ErrNotFound", err)
	}
	if live, _ := reg.Get(ctx, "greet"); live.Version != 4 {
		t.Errorf("failed rollbacks changed the live version to %d", live.Version)
	}
	if _, err := reg.Rollback(ctx, "greet", -1); err == nil {
		t.Error("Rollback(-1) succeeded")
	}
	if _, err := reg.Rollback(ctx, "nobody", 0); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Rollback unknown function = %v, want ErrNotFound", err)
	}

	// A live spec an instance registered has no previous version.
	if err := reg.Put(ctx, spec("local", "h")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Rollback(ctx, "local", 0); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Rollback(0) of an undeployed spec = %v", err)
	}

	// An explicit version brings back a removed function.
	if err := reg.Remove(ctx, "greet"); err != nil {
		t.Fatal(err)
	}
	rollback(3, 3)
}

func TestRemoveKeepsNumbering(t *testing.T) {
	reg, _ := open(t)
	ctx := t.Context()
	for range 2 {
		if _, err := reg.Deploy(ctx, deployable("greet", "h"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Remove(ctx, "greet"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, "greet"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get after Remove = %v, want ErrNotFound", err)
	}
	if err := reg.Remove(ctx, "greet"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if vs, err := reg.Versions(ctx, "greet"); err != nil || len(vs) != 2 {
		t.Errorf("Versions after Remove = %d, %v", len(vs), err)
	}
	s, err := reg.Deploy(ctx, deployable("greet", "h"), 0)
	if err != nil || s.Version != 3 {
		t.Fatalf("deploy after Remove = %+v, %v; want version 3", s, err)
	}
	if live, err := reg.Get(ctx, "greet"); err != nil || live.Version != 3 {
		t.Errorf("live = %+v, %v", live, err)
	}
}

func TestValidateDeployFields(t *testing.T) {
	good := map[string]func(*registry.Spec){
		"no deploy fields": func(s *registry.Spec) {},
		"deployable":       func(s *registry.Spec) { *s = *deployable("greet", "h") },
		"min=max=0":        func(s *registry.Spec) { s.MinInstances, s.MaxInstances = 0, 0 },
		"max only":         func(s *registry.Spec) { s.MaxInstances = registry.InstanceLimit },
		"min=max":          func(s *registry.Spec) { s.MinInstances, s.MaxInstances = 2, 2 },
		"env names": func(s *registry.Spec) {
			s.Env = map[string]string{"_X": "", "a1_B": "x=y", "NATS": "ok", "MY_YARD_X": "ok"}
		},
		"empty artifact": func(s *registry.Spec) {
			s.Artifact = &registry.Artifact{Digest: testArtifact.Digest, Object: testArtifact.Object}
		},
	}
	for name, mod := range good {
		t.Run("good/"+name, func(t *testing.T) {
			s := spec("greet", "h")
			mod(s)
			if err := s.Validate(); err != nil {
				t.Errorf("Validate = %v", err)
			}
		})
	}
	hex := strings.Repeat("ab", 32)
	bad := map[string]func(*registry.Spec){
		"negative min":      func(s *registry.Spec) { s.MinInstances = -1 },
		"negative max":      func(s *registry.Spec) { s.MaxInstances = -1 },
		"max below min":     func(s *registry.Spec) { s.MinInstances, s.MaxInstances = 3, 2 },
		"min without max":   func(s *registry.Spec) { s.MinInstances = 1 },
		"max over limit":    func(s *registry.Spec) { s.MaxInstances = registry.InstanceLimit + 1 },
		"env leading digit": func(s *registry.Spec) { s.Env = map[string]string{"1A": "x"} },
		"env dash":          func(s *registry.Spec) { s.Env = map[string]string{"A-B": "x"} },
		"env empty key":     func(s *registry.Spec) { s.Env = map[string]string{"": "x"} },
		"env equals":        func(s *registry.Spec) { s.Env = map[string]string{"A=B": "x"} },
		"env NATS_URL":      func(s *registry.Spec) { s.Env = map[string]string{"NATS_URL": "nats://evil"} },
		"env NATS_CREDS":    func(s *registry.Spec) { s.Env = map[string]string{"NATS_CREDS": "/x"} },
		"env YARD_":         func(s *registry.Spec) { s.Env = map[string]string{"YARD_INSTANCE": "x"} },
		"env NUL value":     func(s *registry.Spec) { s.Env = map[string]string{"A": "x\x00y"} },
		"digest algorithm":  func(s *registry.Spec) { s.Artifact = &registry.Artifact{Digest: "md5:" + hex, Object: "sha256-" + hex} },
		"digest short":      func(s *registry.Spec) { s.Artifact = &registry.Artifact{Digest: "sha256:abcd", Object: "sha256-abcd"} },
		"digest uppercase": func(s *registry.Spec) {
			s.Artifact = &registry.Artifact{Digest: "sha256:" + strings.ToUpper(hex), Object: "sha256-" + strings.ToUpper(hex)}
		},
		"digest not hex": func(s *registry.Spec) {
			s.Artifact = &registry.Artifact{Digest: "sha256:" + strings.Repeat("zz", 32), Object: "sha256-" + strings.Repeat("zz", 32)}
		},
		"object mismatch": func(s *registry.Spec) {
			s.Artifact = &registry.Artifact{Digest: "sha256:" + hex, Object: "../etc/passwd"}
		},
		"object missing": func(s *registry.Spec) { s.Artifact = &registry.Artifact{Digest: "sha256:" + hex} },
		"negative size": func(s *registry.Spec) {
			s.Artifact = &registry.Artifact{Digest: "sha256:" + hex, Object: "sha256-" + hex, Size: -1}
		},
		"negative version": func(s *registry.Spec) { s.Version = -1 },
		"several problems": func(s *registry.Spec) { s.MinInstances = -1; s.Env = map[string]string{"YARD_X": ""} },
	}
	for name, mod := range bad {
		t.Run("bad/"+name, func(t *testing.T) {
			s := spec("greet", "h")
			mod(s)
			if err := s.Validate(); err == nil {
				t.Errorf("Validate accepted %+v", s)
			}
		})
	}
}

func TestPutComparesDeployFields(t *testing.T) {
	reg, js := open(t)
	ctx := t.Context()
	kv, err := js.KeyValue(ctx, wire.BucketFunctions)
	if err != nil {
		t.Fatal(err)
	}
	revision := func() uint64 {
		t.Helper()
		e, err := kv.Get(ctx, "greet")
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}
	mods := []func(*registry.Spec){
		func(s *registry.Spec) { s.Env = map[string]string{"A": "2"} },
		func(s *registry.Spec) { s.MaxInstances = 4 },
		func(s *registry.Spec) { s.MinInstances = 2 },
		func(s *registry.Spec) { a := *testArtifact; a.Size++; s.Artifact = &a },
		func(s *registry.Spec) { s.Artifact = nil },
		func(s *registry.Spec) { s.DeployedAt = time.Unix(1, 0) },
	}
	base := func() *registry.Spec {
		s := deployable("greet", "h")
		s.Env = map[string]string{"A": "1"}
		return s
	}
	if err := reg.Put(ctx, base()); err != nil {
		t.Fatal(err)
	}
	before := revision()
	if err := reg.Put(ctx, base()); err != nil || revision() != before {
		t.Fatalf("unchanged spec rewritten (%v)", err)
	}
	for i, mod := range mods {
		s := base()
		mod(s)
		if err := reg.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
		if after := revision(); after == before {
			t.Errorf("change %d not written", i)
		} else {
			before = after
		}
		// Restore, so every change is compared against the base.
		if err := reg.Put(ctx, base()); err != nil {
			t.Fatal(err)
		}
		before = revision()
	}
}
