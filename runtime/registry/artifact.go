package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// ErrCorruptArtifact is returned when the bytes in yard_artifacts do not
// match the size or digest the spec names.
var ErrCorruptArtifact = errors.New("corrupt artifact")

// Artifact names a function binary in yard_artifacts. Artifacts are content
// addressed: the object is named after the digest, so uploading the same
// build twice stores it once, and a spec can be checked against the bytes.
type Artifact struct {
	// Digest is "sha256:" and the lowercase hex SHA-256 of the binary.
	Digest string `json:"digest"`
	// Size is the binary's length in bytes.
	Size int64 `json:"size"`
	// Object is the object's name in yard_artifacts: "sha256-<hex>", the
	// digest with ':' replaced, since object names become subject tokens
	// in `nats object` listings.
	Object string `json:"object"`
}

const (
	digestPrefix = "sha256:"
	objectPrefix = "sha256-"

	// metaDigest and headerDigest carry Artifact.Digest on the object, for
	// `nats object info`.
	metaDigest   = "digest"
	headerDigest = "Yard-Artifact-Digest"
)

// Validate checks that the digest is well formed and that Object is the
// name derived from it, so a spec can never point a fetch at another object.
func (a *Artifact) Validate() error {
	var errs []error
	sum, ok := strings.CutPrefix(a.Digest, digestPrefix)
	if !ok || len(sum) != sha256.Size*2 || !isLowerHex(sum) {
		errs = append(errs, fmt.Errorf("artifact digest %s is not \"sha256:\" and 64 lowercase hex digits", quote(a.Digest)))
	} else if want := objectPrefix + sum; a.Object != want {
		errs = append(errs, fmt.Errorf("artifact object %s does not match its digest; want %q", quote(a.Object), want))
	}
	if a.Size < 0 {
		errs = append(errs, fmt.Errorf("artifact size must not be negative, got %d", a.Size))
	}
	return errors.Join(errs...)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newArtifact builds the Artifact of a SHA-256 sum and a size.
func newArtifact(sum []byte, size int64) *Artifact {
	h := hex.EncodeToString(sum)
	return &Artifact{Digest: digestPrefix + h, Size: size, Object: objectPrefix + h}
}

// objectDigest is sum in the form the object store records (ObjectInfo.Digest).
func objectDigest(sum []byte) string {
	return "SHA-256=" + base64.URLEncoding.EncodeToString(sum)
}

// ArtifactDigest returns the digest ("sha256:<hex>") and size of a file.
func ArtifactDigest(path string) (string, int64, error) {
	sum, n, err := fileSum(path)
	if err != nil {
		return "", 0, err
	}
	return digestPrefix + hex.EncodeToString(sum), n, nil
}

func fileSum(path string) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, 0, fmt.Errorf("registry: read %s: %w", path, err)
	}
	return h.Sum(nil), n, nil
}

// artifactStore returns yard_artifacts, opening or creating it on first use.
func (r *Registry) artifactStore(ctx context.Context) (jetstream.ObjectStore, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.artifacts != nil {
		return r.artifacts, nil
	}
	obs, err := r.js.ObjectStore(ctx, wire.StoreArtifacts)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = r.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      wire.StoreArtifacts,
			Description: "Switchyard: function binaries, named sha256-<hex>",
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = r.js.ObjectStore(ctx, wire.StoreArtifacts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open %s: %w", wire.StoreArtifacts, err)
	}
	r.artifacts = obs
	return obs, nil
}

// PutArtifact stores the file at path in yard_artifacts and returns its
// Artifact. uploaded is false when an object with the same content was
// already there, so a build is never uploaded twice. progress, if not nil,
// is called as the file is read for the upload (done of total bytes), and
// once with done == total when nothing needs uploading.
func (r *Registry) PutArtifact(ctx context.Context, path string, progress func(done, total int64)) (*Artifact, bool, error) {
	sum, size, err := fileSum(path)
	if err != nil {
		return nil, false, err
	}
	a := newArtifact(sum, size)
	obs, err := r.artifactStore(ctx)
	if err != nil {
		return nil, false, err
	}
	info, err := obs.GetInfo(ctx, a.Object)
	switch {
	case err == nil && info.Size == uint64(size) && info.Digest == objectDigest(sum):
		if progress != nil {
			progress(size, size)
		}
		return a, false, nil
	case err != nil && !errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, false, fmt.Errorf("registry: artifact %s: %w", a.Object, err)
	}
	// Not there, or damaged: upload (again).
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	meta := jetstream.ObjectMeta{
		Name:        a.Object,
		Description: "Switchyard artifact " + filepath.Base(path),
		Headers:     nats.Header{headerDigest: []string{a.Digest}},
		Metadata:    map[string]string{metaDigest: a.Digest, "size": strconv.FormatInt(size, 10)},
	}
	info, err = obs.Put(ctx, meta, &progressReader{r: f, total: size, fn: progress})
	if err != nil {
		return nil, false, fmt.Errorf("registry: upload %s: %w", path, err)
	}
	// The store hashed what it received; if that is not what we hashed
	// first, the file changed in between and the object is misnamed.
	if info.Size != uint64(size) || info.Digest != objectDigest(sum) {
		_ = obs.Delete(ctx, a.Object)
		return nil, false, fmt.Errorf("registry: upload %s: the file changed while it was uploaded", path)
	}
	return a, true, nil
}

// progressReader reports every read to fn.
type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		if p.fn != nil {
			p.fn(p.done, p.total)
		}
	}
	return n, err
}

// FetchArtifact writes the artifact to dst as an executable (mode 0755).
// It downloads to a temporary file beside dst, checks size and digest and
// renames it into place, so dst is either the old file or the complete new
// one, never a partial or unverified download; bytes that do not match are
// an error wrapping ErrCorruptArtifact. When dst already holds the
// artifact, FetchArtifact does nothing.
func (r *Registry) FetchArtifact(ctx context.Context, a *Artifact, dst string) error {
	if a == nil {
		return errors.New("registry: fetch artifact: nil artifact")
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	if d, n, err := ArtifactDigest(dst); err == nil && d == a.Digest && n == a.Size {
		return nil
	}
	obs, err := r.artifactStore(ctx)
	if err != nil {
		return err
	}
	res, err := obs.Get(ctx, a.Object)
	if err != nil {
		return fmt.Errorf("registry: fetch artifact %s: %w", a.Object, err)
	}
	defer res.Close()
	if info, err := res.Info(); err == nil && info.Size != uint64(a.Size) {
		return fmt.Errorf("registry: fetch artifact %s: %w: %d bytes stored, %d expected", a.Object, ErrCorruptArtifact, info.Size, a.Size)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	// One byte past the expected size is enough to tell that it is wrong.
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(res, a.Size+1))
	switch {
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return fmt.Errorf("registry: fetch artifact %s: %w: %w", a.Object, ErrCorruptArtifact, err)
	case err != nil:
		return fmt.Errorf("registry: fetch artifact %s: %w", a.Object, err)
	case n > a.Size:
		return fmt.Errorf("registry: fetch artifact %s: %w: more than the %d bytes expected", a.Object, ErrCorruptArtifact, a.Size)
	case n < a.Size:
		return fmt.Errorf("registry: fetch artifact %s: %w: %d bytes, %d expected", a.Object, ErrCorruptArtifact, n, a.Size)
	}
	if got := digestPrefix + hex.EncodeToString(h.Sum(nil)); got != a.Digest {
		return fmt.Errorf("registry: fetch artifact %s: %w: content has digest %s", a.Object, ErrCorruptArtifact, got)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("registry: fetch artifact: %w", err)
	}
	done = true
	return nil
}
