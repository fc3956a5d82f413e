package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nuid"

	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// An instance shows what it is in ps and top:
//
//   - argv[0] is "yard-fn <name> v<version> <instance id>", e.g.
//     "yard-fn greet v3 greet-v3-ab12cd34", so ps, pgrep -f and
//     /proc/<pid>/cmdline name the function, version and instance. The
//     function gets no other arguments.
//   - the kernel names a process (its comm: top's COMMAND, ps -o comm, at
//     most 15 bytes) after the file it executes, so the agent runs a hard
//     link of the verified artifact named after the function:
//     <Dir>/bin/<name>-v<version>-<digest prefix>/<name>. Where a hard
//     link is impossible it runs a copy.
func procArgv0(name string, version int, id string) string {
	return "yard-fn " + name + " v" + strconv.Itoa(version) + " " + id
}

// namedBinary returns the artifact under the function's name, linking (or
// copying) it into place when the name does not already point at the very
// same file.
func (a *Agent) namedBinary(spec *registry.Spec, artifact string) (string, error) {
	if err := wire.ValidateName(spec.Name); err != nil {
		return "", err // a name is a file name only once it is valid
	}
	digest := strings.TrimPrefix(spec.Artifact.Digest, "sha256:")
	if len(digest) > 12 {
		digest = digest[:12]
	}
	dir := filepath.Join(a.cfg.Dir, "bin", fmt.Sprintf("%s-v%d-%s", spec.Name, spec.Version, digest))
	path := filepath.Join(dir, spec.Name)
	src, err := os.Stat(artifact)
	if err != nil {
		return "", err
	}
	if dst, err := os.Stat(path); err == nil && os.SameFile(src, dst) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// A new name under a temporary one, then renamed: instances starting
	// at once never run a half-written copy.
	tmp := filepath.Join(dir, "."+spec.Name+"."+nuid.Next()+".tmp")
	if err := os.Link(artifact, tmp); err != nil {
		if err := copyExecutable(artifact, tmp); err != nil {
			os.Remove(tmp)
			return "", err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// logPrefix starts every log line an instance writes to the agent's
// Output: "<name>/v<version>-<suffix>: ", e.g. "greet/v3-ab12cd34: ",
// which names the function, version and instance as briefly as the
// instance id does.
func logPrefix(name, id string) string {
	return name + "/" + strings.TrimPrefix(id, name+"-") + ": "
}
