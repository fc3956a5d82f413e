package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

// natsContextFile is a nats CLI context as natscli v0.5.0 stores it
// (github.com/nats-io/jsm.go/natscontext): one JSON file per context in
// <config>/nats/context/<name>.json, where <config> is $XDG_CONFIG_HOME,
// else ~/.config; <config>/nats/context.txt names the selected one.
// These are the fields yard reads; those it cannot honour are refused in
// unsupportedContextFields rather than silently ignored.
type natsContextFile struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	Token       string `json:"token,omitempty"`
	User        string `json:"user,omitempty"`
	Password    string `json:"password,omitempty"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey,omitempty"`
	Cert        string `json:"cert,omitempty"`
	Key         string `json:"key,omitempty"`
	CA          string `json:"ca,omitempty"`
	InboxPrefix string `json:"inbox_prefix"`
	TLSFirst    bool   `json:"tls_first,omitempty"`
}

// unsupportedContextFields are natscontext fields that change how or
// where a client connects and that yard does not implement: a context
// setting one is an error, not a connection made some other way.
var unsupportedContextFields = []string{"nsc", "user_jwt", "user_seed", "socks_proxy", "jetstream_domain",
	"jetstream_api_prefix", "windows_cert_store", "windows_cert_match"}

// natsContext is the context in use and where its name came from.
type natsContext struct {
	Name   string
	Path   string
	Source string // --context, $NATS_CONTEXT, or the selection file
	natsContextFile
}

// configDir is natscli's configuration folder: $XDG_CONFIG_HOME/nats,
// else $HOME/.config/nats; "" when neither is set.
func (f *factory) configDir() string {
	if x := f.getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats")
	}
	if h := f.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "nats")
	}
	return ""
}

func (f *factory) contextDir() string {
	if d := f.configDir(); d != "" {
		return filepath.Join(d, "context")
	}
	return ""
}

// selectedContext is the name in context.txt (nats context select), or "".
func (f *factory) selectedContext() (name, path string) {
	d := f.configDir()
	if d == "" {
		return "", ""
	}
	path = filepath.Join(d, "context.txt")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", path
	}
	return strings.TrimSpace(string(b)), path
}

// contextChoice is the context yard uses, as the nats CLI picks it:
// --context, else $NATS_CONTEXT, else the selected one; "" for none.
func (f *factory) contextChoice() (name, source string) {
	if f.noContext {
		return "", ""
	}
	if f.ctxName != "" {
		return f.ctxName, "--context"
	}
	if n := f.getenv("NATS_CONTEXT"); n != "" {
		return n, "$NATS_CONTEXT"
	}
	if n, path := f.selectedContext(); n != "" {
		return n, "selected in " + path
	}
	return "", ""
}

// knownContexts lists the context names in the context folder, sorted,
// skipping what natscli skips (empty files, other extensions, bad names).
func (f *factory) knownContexts() []string {
	dir := f.contextDir()
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() || validContextName(name) != nil {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() == 0 {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// validContextName is natscontext.ValidateName.
func validContextName(name string) error {
	switch {
	case name == "":
		return errors.New("a context name cannot be empty")
	case strings.Contains(name, ".."):
		return errors.New(`a context name cannot contain ".."`)
	case strings.ContainsAny(name, `/\`):
		return errors.New("a context name cannot contain a slash")
	}
	return nil
}

// loadContext reads the context in use; nil when there is none. An
// unknown name is a usage error naming the contexts there are.
func (f *factory) loadContext() (*natsContext, error) {
	name, source := f.contextChoice()
	if name == "" {
		return nil, nil
	}
	c := &natsContext{Name: name, Source: source}
	// Like nats, --context (or $NATS_CONTEXT) may name a context file.
	if st, err := os.Stat(name); err == nil && st.Mode().IsRegular() && strings.HasSuffix(name, ".json") &&
		(source == "--context" || source == "$NATS_CONTEXT") {
		c.Path = name
		c.Name = strings.TrimSuffix(filepath.Base(name), ".json")
	} else {
		if err := validContextName(name); err != nil {
			return nil, usageError("nats context %q (%s): %v", name, source, err)
		}
		dir := f.contextDir()
		if dir == "" {
			return nil, usageError("nats context %q (%s): no configuration folder: set XDG_CONFIG_HOME or HOME", name, source)
		}
		c.Path = filepath.Join(dir, name+".json")
	}
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		known := "there are none (nats context add, or yard context write)"
		if names := f.knownContexts(); len(names) > 0 {
			known = "known: " + strings.Join(names, ", ")
		}
		return nil, usageError("unknown nats context %q (%s): no %s; %s", name, source, c.Path, known)
	}
	if err != nil {
		return nil, fmt.Errorf("nats context %q: %w", name, err)
	}
	if err := json.Unmarshal(b, &c.natsContextFile); err != nil {
		return nil, fmt.Errorf("nats context %q: %s: %w", name, c.Path, err)
	}
	var all map[string]any
	_ = json.Unmarshal(b, &all)
	for _, k := range unsupportedContextFields {
		if v, ok := all[k]; ok && v != "" && v != nil && v != false {
			if s, ok := v.([]any); ok && len(s) == 0 {
				continue
			}
			return nil, fmt.Errorf("nats context %q sets %q, which yard does not support: use a context with url and creds (or user/password, token, nkey)", name, k)
		}
	}
	for _, p := range []struct {
		field string
		v     *string
	}{{"creds", &c.Creds}, {"nkey", &c.NKey}, {"cert", &c.Cert}, {"key", &c.Key}, {"ca", &c.CA}} {
		if *p.v, err = f.contextPath(*p.v); err != nil {
			return nil, fmt.Errorf("nats context %q: %s: %w", name, p.field, err)
		}
	}
	for _, p := range []struct {
		field, v string
	}{{"user", c.User}, {"password", c.Password}, {"token", c.Token}} {
		if s := scheme(p.v); slices.Contains([]string{"env", "file", "op", "nsc", "data"}, s) {
			return nil, fmt.Errorf("nats context %q: %s: yard reads literal values only, not %s: references", name, p.field, s)
		}
	}
	return c, nil
}

// scheme is a reference's URI scheme as natscontext sees it: two letters
// at least, so a Windows drive is a path.
func scheme(ref string) string {
	u, err := url.Parse(ref)
	if err != nil || len(u.Scheme) < 2 {
		return ""
	}
	return u.Scheme
}

// contextPath turns a context's file reference into a path as natscontext
// does: $VARS and a leading ~ expanded, file:// stripped, other schemes
// (op://, nsc://, env://, data:) refused.
func (f *factory) contextPath(ref string) (string, error) {
	ref = os.Expand(ref, f.getenv)
	if rest, ok := strings.CutPrefix(ref, "~"); ok {
		home := f.getenv("HOME")
		if home == "" {
			return "", errors.New("~ in a path, and HOME is not set")
		}
		ref = home + rest
	}
	switch s := scheme(ref); s {
	case "":
		return ref, nil
	case "file":
		u, _ := url.Parse(ref)
		if u.Host != "" && u.Host != "localhost" {
			return u.Host + u.Path, nil // file://relative/path
		}
		return u.Path, nil
	default:
		return "", fmt.Errorf("%s: references are not supported by yard (a file path is)", s)
	}
}

// saveNATSContext writes a nats CLI context, mode 0600, and returns its path.
func (f *factory) saveNATSContext(name string, c natsContextFile) (string, error) {
	if err := validContextName(name); err != nil {
		return "", usageError("context %q: %v", name, err)
	}
	dir := f.contextDir()
	if dir == "" {
		return "", errors.New("no folder for nats contexts: set XDG_CONFIG_HOME or HOME")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, p := range []*string{&c.Creds, &c.CA} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return "", err
			}
			*p = abs
		}
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	path := filepath.Join(dir, name+".json")
	return path, writeSecretFile(path, append(b, '\n'))
}

// selectNATSContext makes name the selected context, as `nats context
// select` does (the one before goes to previous-context.txt).
func (f *factory) selectNATSContext(name string) error {
	old, path := f.selectedContext()
	if path == "" {
		return errors.New("no folder for nats contexts: set XDG_CONFIG_HOME or HOME")
	}
	if old != "" && old != name {
		if err := writeSecretFile(filepath.Join(filepath.Dir(path), "previous-context.txt"), []byte(old)); err != nil {
			return err
		}
	}
	return writeSecretFile(path, []byte(name))
}

// localContext is the context for the platform of `yard up` in this
// folder: its server, the admin's credential and inbox, and its CA.
func (f *factory) localContext(desc string) (natsContextFile, error) {
	creds := f.credsFile()
	if creds == "" {
		return natsContextFile{}, fmt.Errorf("no admin credential at %s: start yard up here first, or pass --creds <data>/admin.creds", defaultCreds)
	}
	if _, err := os.Stat(creds); err != nil {
		return natsContextFile{}, fmt.Errorf("credential: %w", err)
	}
	return natsContextFile{Description: desc, URL: f.natsURL(), Creds: creds, CA: f.caFile(), InboxPrefix: inboxOf(creds)}, nil
}

func newContextCmd(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Write and list nats CLI contexts (one configuration for yard and nats)",
		Long: `yard and the nats CLI read the same contexts: JSON files in
$XDG_CONFIG_HOME/nats/context (default ~/.config/nats/context), one per
name, with the server (url), credential (creds), CA (ca) and inbox prefix
(inbox_prefix). A context is picked by --context, else $NATS_CONTEXT, else
the one selected with 'nats context select' (~/.config/nats/context.txt).

'yard context write' writes one for the platform 'yard up' runs in this
folder, as the admin, so that

  nats --context yard kv ls
  nats context select yard && yard ls

reach it with no other flags.`,
	}
	cmd.AddCommand(newContextWriteCmd(f), newContextLsCmd(f))
	return cmd
}

func newContextWriteCmd(f *factory) *cobra.Command {
	var sel bool
	cmd := &cobra.Command{
		Use:   "write [name]",
		Short: "Write a nats context (default name yard) for the local platform, as the admin",
		Long: `Write a nats context (default name 'yard') for the platform of 'yard up' in
this folder: the server (--server, else $NATS_URL, else ` + nats.DefaultURL + `),
the admin's credential (--creds, else $NATS_CREDS, else ./.yard/admin.creds)
as an absolute path, the CA of a TLS server (--tls-ca, else $NATS_CA, else
./.yard/tls/ca.pem) and the admin's inbox prefix. Other contexts, and the
one selected, play no part in what is written. An existing context of that
name is replaced. 'yard up --write-context' does the same as it starts.`,
		Example: `  yard context write
  yard context write yard --select
  yard context write dev -s nats://127.0.0.1:4333 --creds /tmp/yard/admin.creds`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "yard"
			if len(args) == 1 {
				name = args[0]
			}
			if err := validContextName(name); err != nil {
				return usageError("context %q: %v", name, err)
			}
			c, err := f.localContext("Switchyard admin (yard up)")
			if err != nil {
				return err
			}
			path, err := f.saveNATSContext(name, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(f.io.ErrOut, "nats context %s written to %s (%s as the admin)\n", name, path, c.URL)
			if sel {
				if err := f.selectNATSContext(name); err != nil {
					return err
				}
				fmt.Fprintf(f.io.ErrOut, "selected: nats and yard commands use it from now on\n")
			} else {
				fmt.Fprintf(f.io.ErrOut, "use it with: nats --context %s …, or select it: nats context select %s\n", name, name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&sel, "select", false, "also select it (as nats context select does)")
	return cmd
}

type contextRow struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Description string `json:"description"`
	Selected    bool   `json:"selected"`
	InUse       bool   `json:"in_use"`
	Path        string `json:"path"`
}

func newContextLsCmd(f *factory) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the nats contexts; * marks the selected one, > the one yard uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			selected, _ := f.selectedContext()
			inUse, source := f.contextChoice()
			rows := []contextRow{}
			for _, n := range f.knownContexts() {
				row := contextRow{Name: n, Path: filepath.Join(f.contextDir(), n+".json"), Selected: n == selected, InUse: n == inUse}
				var c natsContextFile
				if b, err := os.ReadFile(row.Path); err == nil && json.Unmarshal(b, &c) == nil {
					row.URL, row.Description = c.URL, c.Description
				}
				if row.URL == "" {
					row.URL = nats.DefaultURL
				}
				rows = append(rows, row)
			}
			if asJSON {
				return writeJSONOut(f, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(f.io.ErrOut, "no nats contexts in %s (yard context write makes one for yard up)\n", f.contextDir())
				return nil
			}
			tw := tabwriter.NewWriter(f.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  NAME\tURL\tDESCRIPTION")
			for _, r := range rows {
				mark := []byte("  ")
				if r.InUse {
					mark[0] = '>'
				}
				if r.Selected {
					mark[1] = '*'
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\n", mark, r.Name, r.URL, r.Description)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if inUse != "" && !slices.Contains(f.knownContexts(), inUse) {
				fmt.Fprintf(f.io.ErrOut, "yard would use context %q (%s), which does not exist\n", inUse, source)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}
