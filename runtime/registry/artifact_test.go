package registry_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// binary writes a file of n bytes that differ by seed, larger than one
// object store chunk (128 KiB) when n is.
func binary(t *testing.T, n int, seed byte) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*31) ^ seed
	}
	path := filepath.Join(t.TempDir(), "fn")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestArtifactDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "abc")
	if err := os.WriteFile(path, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, n, err := registry.ArtifactDigest(path)
	const want = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if err != nil || d != want || n != 3 {
		t.Errorf("ArtifactDigest = %s, %d, %v", d, n, err)
	}
	if _, _, err := registry.ArtifactDigest(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestPutArtifactOnce(t *testing.T) {
	reg, js := open(t)
	ctx := t.Context()
	path, data := binary(t, 300<<10, 1)
	var calls int
	var last, total int64
	a, uploaded, err := reg.PutArtifact(ctx, path, func(done, tot int64) {
		if done < last {
			t.Errorf("progress went back from %d to %d", last, done)
		}
		calls++
		last, total = done, tot
	})
	if err != nil || !uploaded {
		t.Fatalf("first PutArtifact = %v, %v", uploaded, err)
	}
	if calls < 2 || last != int64(len(data)) || total != int64(len(data)) {
		t.Errorf("progress: %d calls, last %d of %d; want several reaching %d", calls, last, total, len(data))
	}
	digest, size, _ := registry.ArtifactDigest(path)
	if a.Digest != digest || a.Size != size || a.Object != "sha256-"+digest[len("sha256:"):] || a.Validate() != nil {
		t.Errorf("artifact = %+v", a)
	}

	obs, err := js.ObjectStore(ctx, wire.StoreArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, a.Object)
	if err != nil || info.Metadata["digest"] != a.Digest || info.Headers.Get("Yard-Artifact-Digest") != a.Digest {
		t.Fatalf("object info = %+v, %v", info, err)
	}

	again, uploaded, err := reg.PutArtifact(ctx, path, func(done, tot int64) { last = done })
	if err != nil || uploaded || *again != *a || last != size {
		t.Errorf("second PutArtifact = %+v, uploaded %v, progress %d, %v", again, uploaded, last, err)
	}
	if info2, _ := obs.GetInfo(ctx, a.Object); info2.NUID != info.NUID {
		t.Error("second PutArtifact uploaded again")
	}
	if _, _, err := reg.PutArtifact(ctx, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("PutArtifact of a missing file succeeded")
	}
}

func TestFetchArtifact(t *testing.T) {
	reg, _ := open(t)
	ctx := t.Context()
	path, data := binary(t, 200<<10, 2)
	a, _, err := reg.PutArtifact(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "greet")
	if err := reg.FetchArtifact(ctx, a, dst); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)

	// An existing, different file is replaced; a matching one is kept.
	if err := os.WriteFile(dst, []byte("old build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reg.FetchArtifact(ctx, a, dst); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)
	before, _ := os.Stat(dst)
	if err := reg.FetchArtifact(ctx, a, dst); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(dst); !os.SameFile(before, after) {
		t.Error("an up-to-date file was fetched again")
	}
	onlyFile(t, dir, "greet")

	// An empty binary is odd but well defined.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ea, _, err := reg.PutArtifact(ctx, empty, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.FetchArtifact(ctx, ea, filepath.Join(dir, "empty")); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "empty"), nil)

	missing := *a
	missing.Digest = "sha256:" + strings.Repeat("0", 64)
	missing.Object = "sha256-" + missing.Digest[len("sha256:"):]
	if err := reg.FetchArtifact(ctx, &missing, filepath.Join(dir, "x")); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("fetch of a missing object = %v", err)
	}
	bad := *a
	bad.Object = "other"
	if err := reg.FetchArtifact(ctx, &bad, filepath.Join(dir, "x")); err == nil {
		t.Error("fetch of an artifact whose object does not match its digest succeeded")
	}
}

func TestFetchCorruptArtifact(t *testing.T) {
	reg, js := open(t)
	ctx := t.Context()
	path, data := binary(t, 150<<10, 3)
	a, _, err := reg.PutArtifact(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, wire.StoreArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(data)
	other[len(other)/2]++
	for name, content := range map[string][]byte{
		"same size": other,
		"shorter":   other[:100],
		"longer":    append(bytes.Clone(data), 0),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := obs.PutBytes(ctx, a.Object, content); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			dst := filepath.Join(dir, "greet")
			if err := reg.FetchArtifact(ctx, a, dst); !errors.Is(err, registry.ErrCorruptArtifact) {
				t.Fatalf("FetchArtifact = %v, want ErrCorruptArtifact", err)
			}
			onlyFile(t, dir, "")
		})
	}

	// PutArtifact notices the damage and uploads again.
	if _, uploaded, err := reg.PutArtifact(ctx, path, nil); err != nil || !uploaded {
		t.Fatalf("PutArtifact over a corrupt object = %v, %v", uploaded, err)
	}
	dst := filepath.Join(t.TempDir(), "greet")
	if err := reg.FetchArtifact(ctx, a, dst); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d uploaded", path, len(got), len(want))
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want 0755", path, fi.Mode())
	}
}

// onlyFile fails unless dir holds exactly the file name (nothing when name
// is ""): no temporary files are left behind.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if (name == "" && len(names) != 0) || (name != "" && (len(names) != 1 || names[0] != name)) {
		t.Errorf("%s holds %v, want only %q", dir, names, name)
	}
}
