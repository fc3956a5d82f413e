package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/console/", 200, "text/html; charset=utf-8"},
		{"HEAD", "/console/", 200, "text/html; charset=utf-8"},
		{"GET", "/console/index.html", 200, "text/html; charset=utf-8"},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/console/console.css", 200, "text/css; charset=utf-8"},
		{"GET", "/console/icon.svg", 200, "image/svg+xml"},
		{"GET", "/console", 301, ""},
		{"GET", "/console/nope.js", 404, ""},
		{"GET", "/console/static/app.js", 404, ""},
		{"GET", "/console/../go.mod", 404, ""},
		{"GET", "/console/./app.js", 404, ""},
		{"POST", "/console/", 405, ""},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
			continue
		}
		if c.status == 301 && resp.Header.Get("Location") != "/console/" {
			t.Errorf("%s: Location %q", c.path, resp.Header.Get("Location"))
		}
		if c.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, c.ctype) {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "ETag"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: no %s", c.path, h)
			}
		}
		if c.method == "GET" && len(body) == 0 {
			t.Errorf("%s: empty body", c.path)
		}
	}

	// A revalidation is a 304.
	resp, err := http.Get(srv.URL + "/console/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/console/app.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", resp.StatusCode)
	}
}

// TestStaticFiles keeps the pages to their rules: data reaches the DOM as
// text only, nothing is loaded from another origin, and every file the
// page names is embedded.
func TestStaticFiles(t *testing.T) {
	unsafe := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|setTimeout\(\s*["'\x60]`)
	external := regexp.MustCompile(`(?:src|href)\s*=\s*"(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//`)
	named := regexp.MustCompile(`(?:src|href)="([^"#][^"]*)"|from "\./([^"]+)"`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		if m := unsafe.FindString(src); m != "" {
			t.Errorf("%s uses %s: build elements with textContent instead", p, m)
		}
		if m := external.FindString(src); m != "" {
			t.Errorf("%s loads from another origin: %s", p, m)
		}
		for _, m := range named.FindAllStringSubmatch(src, -1) {
			name := m[1] + m[2]
			if _, ok := files[name]; !ok {
				t.Errorf("%s names %s, which is not embedded", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
