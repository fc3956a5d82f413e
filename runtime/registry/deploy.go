package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/jskv"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ErrConflict is returned when the live spec changed between reading it and
// writing it: a deploy, rollback or removal raced with another one. The
// caller reads again and decides whether to retry. It is wire.CodeConflict.
var ErrConflict = errors.New("function changed concurrently")

// versionRetries bounds how often Deploy recomputes the next version number
// after losing a race for it. Each loss means another deploy won, so this
// many concurrent deploys of one function always succeed.
const versionRetries = 5

// versionsKV returns yard_versions, opening or creating it on first use.
func (r *Registry) versionsKV(ctx context.Context) (jetstream.KeyValue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.versions != nil {
		return r.versions, nil
	}
	kv, err := jskv.Open(ctx, r.js, jetstream.KeyValueConfig{
		Bucket:      wire.BucketVersions,
		Description: "Switchyard: spec of every deployed version, key <name>.<N>",
		History:     1, // a version is written once
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	r.versions = kv
	return kv, nil
}

func versionKey(name string, n int) string { return name + "." + strconv.Itoa(n) }

// Deploy records spec as the next version of its function and makes it
// live. The version is one more than the highest ever deployed, also after
// a Remove; concurrent deploys get distinct versions. spec.Version is
// ignored and spec itself is not modified: the returned spec is what was
// stored, with Version and DeployedAt set.
//
// expectLive is the revision of the live spec the caller checked against
// (GetEntry); when it is no longer the live revision, Deploy returns an
// error wrapping ErrConflict. 0 deploys unconditionally. A conflict found
// only at the final write leaves the new version recorded but not live; a
// later Rollback can still make it live.
func (r *Registry) Deploy(ctx context.Context, spec *Spec, expectLive uint64) (*Spec, error) {
	if spec == nil {
		return nil, errors.New("registry: deploy: nil spec")
	}
	s := *spec
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("registry: invalid spec: %w", err)
	}
	name := s.Name
	// Check early, so that the common conflict does not record a version.
	if expectLive > 0 {
		_, rev, err := r.GetEntry(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if rev != expectLive {
			return nil, fmt.Errorf("registry: deploy %s: %w: live revision is %d, not %d", name, ErrConflict, rev, expectLive)
		}
	}
	vkv, err := r.versionsKV(ctx)
	if err != nil {
		return nil, err
	}
	var data []byte
	for attempt := 0; ; attempt++ {
		ns, err := versionNumbers(ctx, vkv, name)
		if err != nil {
			return nil, err
		}
		s.Version = 1
		if len(ns) > 0 {
			s.Version = slices.Max(ns) + 1
		}
		s.DeployedAt = time.Now().UTC()
		s.UpdatedAt = s.DeployedAt
		if data, err = json.Marshal(&s); err != nil {
			return nil, err
		}
		_, err = vkv.Create(ctx, versionKey(name, s.Version), data)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt == versionRetries {
			return nil, fmt.Errorf("registry: deploy %s: record version %d: %w", name, s.Version, err)
		}
	}
	if err := r.setLive(ctx, name, data, expectLive); err != nil {
		return nil, fmt.Errorf("registry: deploy %s version %d: %w", name, s.Version, err)
	}
	return Decode(data)
}

// setLive writes data as the live spec of name: unconditionally when rev is
// 0, else only if rev is still the live revision.
func (r *Registry) setLive(ctx context.Context, name string, data []byte, rev uint64) error {
	if rev == 0 {
		_, err := r.functions.Put(ctx, name, data)
		return err
	}
	_, err := r.functions.Update(ctx, name, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("%w: live revision is no longer %d", ErrConflict, rev)
	}
	return err
}

// versionNumbers lists the versions recorded for name, in no order.
func versionNumbers(ctx context.Context, kv jetstream.KeyValue, name string) ([]int, error) {
	prefix := name + "."
	lister, err := kv.ListKeysFiltered(ctx, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("registry: list versions of %s: %w", name, err)
	}
	var ns []int
	for key := range lister.Keys() {
		rest, _ := strings.CutPrefix(key, prefix)
		// Only canonical numbers: "01" or "+1" were not written by Deploy.
		if n, err := strconv.Atoi(rest); err == nil && n > 0 && strconv.Itoa(n) == rest {
			ns = append(ns, n)
		}
	}
	// The lister closes its channel early when ctx ends; a short list must
	// not pass for the whole one.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registry: list versions of %s: %w", name, err)
	}
	return ns, nil
}

// Versions returns every recorded version of a function, oldest first, or
// an error wrapping ErrNotFound when it was never deployed.
func (r *Registry) Versions(ctx context.Context, name string) ([]*Spec, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, err
	}
	vkv, err := r.versionsKV(ctx)
	if err != nil {
		return nil, err
	}
	ns, err := versionNumbers(ctx, vkv, name)
	if err != nil {
		return nil, err
	}
	slices.Sort(ns)
	specs := make([]*Spec, 0, len(ns))
	for _, n := range ns {
		s, err := getVersion(ctx, vkv, name, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between list and get
		}
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: %s has no deployed versions", ErrNotFound, name)
	}
	return specs, nil
}

// Version returns version n of a function, or an error wrapping
// ErrNotFound.
func (r *Registry) Version(ctx context.Context, name string, n int) (*Spec, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("registry: invalid version %d: versions start at 1", n)
	}
	vkv, err := r.versionsKV(ctx)
	if err != nil {
		return nil, err
	}
	return getVersion(ctx, vkv, name, n)
}

func getVersion(ctx context.Context, kv jetstream.KeyValue, name string, n int) (*Spec, error) {
	e, err := kv.Get(ctx, versionKey(name, n))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s version %d", ErrNotFound, name, n)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get %s version %d: %w", name, n, err)
	}
	return Decode(e.Value())
}

// Rollback makes version to of a function live again, with DeployedAt set
// to now; its Version stays to, so instances and `yard ls` show which build
// runs. to == 0 means the newest recorded version below the live one. That
// needs a live spec that came from a deploy; an explicit version can also
// bring back a function that was removed. A missing version is an error
// wrapping ErrNotFound; a concurrent change of the live spec, ErrConflict.
func (r *Registry) Rollback(ctx context.Context, name string, to int) (*Spec, error) {
	if err := wire.ValidateName(name); err != nil {
		return nil, err
	}
	if to < 0 {
		return nil, fmt.Errorf("registry: invalid version %d: versions start at 1", to)
	}
	live, rev, err := r.GetEntry(ctx, name)
	if err != nil && (to == 0 || !errors.Is(err, ErrNotFound)) {
		return nil, err
	}
	vkv, err := r.versionsKV(ctx)
	if err != nil {
		return nil, err
	}
	if to == 0 {
		if live.Version < 1 {
			return nil, fmt.Errorf("registry: rollback %s: the live spec was not deployed, so it has no previous version; name one", name)
		}
		ns, err := versionNumbers(ctx, vkv, name)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if n < live.Version && n > to {
				to = n
			}
		}
		if to == 0 {
			return nil, fmt.Errorf("%w: %s has no version before %d", ErrNotFound, name, live.Version)
		}
	}
	s, err := getVersion(ctx, vkv, name, to)
	if err != nil {
		return nil, err
	}
	s.DeployedAt = time.Now().UTC()
	s.UpdatedAt = s.DeployedAt
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	// Compare and set against what we read, so a deploy that lands in
	// between is not silently undone.
	if rev > 0 {
		err = r.setLive(ctx, name, data, rev)
	} else if _, err = r.functions.Create(ctx, name, data); errors.Is(err, jetstream.ErrKeyExists) {
		err = fmt.Errorf("%w: %s was deployed meanwhile", ErrConflict, name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: rollback %s to version %d: %w", name, to, err)
	}
	return s, nil
}

// Remove takes a function out of service: it deletes the live spec, so
// agents stop its instances and the gateway answers not_found. Its versions
// are kept; the next Deploy continues their numbering. A function that is
// not live is ErrNotFound.
func (r *Registry) Remove(ctx context.Context, name string) error {
	_, rev, err := r.GetEntry(ctx, name)
	if err != nil {
		return err
	}
	err = r.functions.Delete(ctx, name, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("registry: remove %s: %w: it changed while being removed", name, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("registry: remove %s: %w", name, err)
	}
	return nil
}

// EnsureStores creates the deploy stores (yard_versions, yard_artifacts)
// when missing, so that the platform can make them once, with the rights
// to, and deployers and agents only open them.
func (r *Registry) EnsureStores(ctx context.Context) error {
	if _, err := r.versionsKV(ctx); err != nil {
		return err
	}
	_, err := r.artifactStore(ctx)
	return err
}
