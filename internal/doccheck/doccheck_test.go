package doccheck

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var (
	// inlineLink matches [text](target) and ![alt](target); the target ends
	// at the first space (a title may follow) or the closing parenthesis.
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refLink matches a reference definition: [name]: target
	refLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	// htmlLink matches href="…" and src="…" in inline HTML.
	htmlLink   = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	schemeLike = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	heading    = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	mdLink     = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// forbidden are citations of documents that live outside the repository.
var forbidden = []string{"design.md", "../shared", "..\\shared"}

// repoRoot is the folder holding go.mod, above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// documents are every markdown file of the repository, relative to root.
func documents(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".yard" || d.Name() == "testdata" && p != root) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCodeCitesNothingOutside: comments and scripts cite no document
// outside the repository either.
func TestCodeCitesNothingOutside(t *testing.T) {
	root := repoRoot(t)
	self, _ := filepath.Abs("doccheck_test.go")
	checked := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".yard") {
			return filepath.SkipDir
		}
		if d.IsDir() || p == self || !(strings.HasSuffix(p, ".go") || d.Name() == "justfile" || d.Name() == "run" || strings.HasSuffix(p, ".sh")) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checked++
		text := strings.ToLower(string(data))
		for _, f := range forbidden {
			if strings.Contains(text, f) {
				t.Errorf("%s cites %q, which is outside the repository", p, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files", checked)
	}
}

type line struct {
	n    int
	text string
	code bool // inside a fenced code block
}

func readLines(path string) ([]line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		lines []line
		fence string
		n     int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		n++
		text := sc.Text()
		trimmed := strings.TrimLeft(text, " ")
		switch {
		case fence == "" && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")):
			fence = trimmed[:3]
			lines = append(lines, line{n, text, true})
		case fence != "" && strings.HasPrefix(trimmed, fence):
			fence = ""
			lines = append(lines, line{n, text, true})
		default:
			lines = append(lines, line{n, text, fence != ""})
		}
	}
	return lines, sc.Err()
}

// slug is the anchor GitHub gives a heading: lower case, letters, digits,
// spaces, hyphens and underscores kept, spaces turned into hyphens.
func slug(title string) string {
	title = mdLink.ReplaceAllString(title, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors lists the heading anchors of a markdown file.
func anchors(path string) (map[string]bool, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	out := map[string]bool{}
	for _, l := range lines {
		if l.code {
			continue
		}
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		s := slug(m[1])
		if k := seen[s]; k > 0 {
			out[s+"-"+strconv.Itoa(k)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out, nil
}

// targets returns the link targets on one line of prose.
func targets(text string) []string {
	text = codeSpan.ReplaceAllString(text, "")
	var out []string
	for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlLink} {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestDocumentLinks(t *testing.T) {
	root := repoRoot(t)
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchorCache[path]; ok {
			return a
		}
		a, err := anchors(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		anchorCache[path] = a
		return a
	}

	for _, doc := range documents(t, root) {
		lines, err := readLines(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			lower := strings.ToLower(l.text)
			for _, f := range forbidden {
				if strings.Contains(lower, f) {
					t.Errorf("%s:%d cites %q, which lives outside the repository: %s", doc, l.n, f, strings.TrimSpace(l.text))
				}
			}
			if l.code {
				continue
			}
			for _, target := range targets(l.text) {
				checkTarget(t, root, doc, l.n, target, anchorsOf)
			}
		}
	}
}

func checkTarget(t *testing.T, root, doc string, n int, target string, anchorsOf func(string) map[string]bool) {
	t.Helper()
	if schemeLike.MatchString(target) {
		return // http:, https:, mailto: … are not files of the repository
	}
	path, frag, _ := strings.Cut(target, "#")
	if strings.HasPrefix(path, "/") {
		t.Errorf("%s:%d link %q is absolute; use a path relative to the document", doc, n, target)
		return
	}
	file := filepath.Join(root, filepath.FromSlash(doc))
	if path != "" {
		rel := filepath.Clean(filepath.Join(filepath.Dir(filepath.FromSlash(doc)), filepath.FromSlash(path)))
		if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			t.Errorf("%s:%d link %q points outside the repository", doc, n, target)
			return
		}
		file = filepath.Join(root, rel)
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s:%d link %q: no such file or folder in the repository", doc, n, target)
			return
		}
	}
	if frag != "" && strings.HasSuffix(strings.ToLower(file), ".md") {
		if a := anchorsOf(file); a != nil && !a[strings.ToLower(frag)] {
			t.Errorf("%s:%d link %q: no heading with anchor #%s", doc, n, target, frag)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"fn.Config and declarations":             "fnconfig-and-declarations",
		"Agents: running, scaling, rolling over": "agents-running-scaling-rolling-over",
		"Gateway overhead (sync)":                "gateway-overhead-sync",
		"`yard` reference":                       "yard-reference",
		"[The shop](shop.md) end to end":         "the-shop-end-to-end",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
