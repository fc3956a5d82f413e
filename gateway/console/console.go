// Package console is Switchyard's web console: plain HTML, CSS and
// JavaScript, embedded in the binary, that lists and invokes functions
// through the gateway's own JSON API with the API key the user signs in
// with. It has no build step and loads nothing from elsewhere.
//
// Handler serves the files under /console/. The pages reach the API with
// URLs relative to that folder, so the console works wherever the gateway
// is mounted, as long as the two share an origin.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is where the gateway mounts the console.
const Prefix = "/console/"

//go:embed static
var static embed.FS

// file is one embedded file, read once with its validator.
type file struct {
	data []byte
	etag string
}

// files holds every embedded file by its name below static/.
var files = func() map[string]file {
	m := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, "static/")] = file{data: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: embedded files: " + err.Error())
	}
	return m
}()

// contentSecurityPolicy lets the pages load only their own files and talk
// only to their own origin: even if some text slipped into the DOM as
// markup, no script from anywhere else could run or send data away.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console's files. Paths are taken below Prefix (or as
// they are, when the prefix was already stripped); /console itself
// redirects to /console/. Anything that is not a file is 404: there are
// no directory listings.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "index.html"
	}
	f, ok := files[name]
	if !ok || path.Clean(name) != name {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// Revalidated on every load, so a new gateway's console is never mixed
	// with an old one's cached scripts; the ETag makes that a 304.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
