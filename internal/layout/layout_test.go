// Package layout checks the layering the docs promise: the SDK does data
// plane work only, no platform package imports it, and the wire contract
// needs nothing but the standard library.
package layout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/switchyard-dev/switchyard/"

// files parses the non-test Go files of dir (relative to the repository).
func files(t *testing.T, dir string) map[string]*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	out := map[string]*ast.File{}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = f
	}
	return out
}

func imports(f *ast.File) []string {
	var out []string
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		out = append(out, p)
	}
	return out
}

// platform lists every package of the platform (not the SDK, not examples).
func platform(t *testing.T) []string {
	var dirs []string
	for _, root := range []string{"gateway", "cli", "runtime", "schemas"} {
		err := filepath.WalkDir(filepath.Join("..", "..", root), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
			switch {
			case d.Name() == "testdata":
				return filepath.SkipDir
			case rel == "runtime" || rel == "runtime/fn" || rel == "runtime/fntest":
				return nil
			}
			if m, _ := filepath.Glob(filepath.Join(p, "*.go")); len(m) > 0 {
				dirs = append(dirs, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

func TestNoPlatformPackageImportsTheSDK(t *testing.T) {
	dirs := platform(t)
	if len(dirs) < 8 {
		t.Fatalf("found only %v", dirs)
	}
	for _, dir := range dirs {
		for path, f := range files(t, dir) {
			for _, im := range imports(f) {
				if im == module+"runtime/fn" || im == module+"runtime/fntest" {
					t.Errorf("%s imports the SDK (%s)", path, im)
				}
			}
		}
	}
}

func TestWireIsStandardLibraryOnly(t *testing.T) {
	for path, f := range files(t, "runtime/wire") {
		for _, im := range imports(f) {
			if strings.Contains(strings.SplitN(im, "/", 2)[0], ".") {
				t.Errorf("%s imports %s", path, im)
			}
		}
	}
}

// TestSDKIsDataPlaneOnly: nothing in package fn creates or updates a
// stream, consumer, bucket, schedule or registry entry, or speaks HTTP.
func TestSDKIsDataPlaneOnly(t *testing.T) {
	forbiddenImports := map[string]bool{
		"net/http": true, module + "internal/jskv": true, module + "internal/callback": true,
		module + "runtime/provision": true, module + "runtime/agent": true,
	}
	forbiddenCalls := map[string]bool{
		"CreateStream": true, "UpdateStream": true, "CreateOrUpdateStream": true, "DeleteStream": true, "PurgeStream": true,
		"CreateConsumer": true, "UpdateConsumer": true, "CreateOrUpdateConsumer": true, "DeleteConsumer": true,
		"CreateKeyValue": true, "UpdateKeyValue": true, "CreateOrUpdateKeyValue": true, "DeleteKeyValue": true,
		"CreateObjectStore": true, "SyncSchedules": true, "Register": true, "Unregister": true,
		"Deploy": true, "Rollback": true, "PutArtifact": true, "EnsureStream": true, "EnsureBucket": true,
		// The older JetStream API and stream administration.
		"AddStream": true, "AddConsumer": true, "Purge": true, "DeleteMsg": true, "SecureDeleteMsg": true,
		"CreateOrUpdatePushConsumer": true, "CreatePushConsumer": true, "KeyValueStoreNames": true,
	}
	// Packages whose Open creates platform state.
	creators := map[string]bool{"invocation": true, "registry": true, "provision": true, "jskv": true}
	for path, f := range files(t, "runtime/fn") {
		for _, im := range imports(f) {
			if forbiddenImports[im] {
				t.Errorf("%s imports %s", path, im)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			// The JetStream API spoken by hand; a batched direct get (how
			// fn.Load reads an entity, which nats.go has no call for) only
			// reads.
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.Contains(lit.Value, "$JS.API.") &&
				lit.Value != `"$JS.API.DIRECT.GET."` {
				t.Errorf("%s uses the JetStream API directly: %s", path, lit.Value)
			}
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if forbiddenCalls[sel.Sel.Name] {
				t.Errorf("%s uses %s", path, sel.Sel.Name)
			}
			if x, ok := sel.X.(*ast.Ident); ok && creators[x.Name] && (sel.Sel.Name == "Open" || sel.Sel.Name == "Put") {
				t.Errorf("%s opens or writes platform state (%s.%s)", path, x.Name, sel.Sel.Name)
			}
			return true
		})
	}
}
