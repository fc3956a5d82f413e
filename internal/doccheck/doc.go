// Package doccheck holds a test that keeps the documentation honest: every
// relative link in README.md and docs/*.md must resolve to a file (and, for
// a link to a heading, to a heading) inside the repository, and no document
// may cite files that live outside it.
package doccheck
