package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/switchyard-dev/switchyard/internal/audit"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
	"github.com/switchyard-dev/switchyard/schemas"
)

// SettingsFile is read from a function's folder by yard deploy.
const SettingsFile = "yard.json"

// settings are a function's deploy settings: from SettingsFile, then flags.
type settings struct {
	MinInstances *int              `json:"min_instances,omitempty"`
	MaxInstances *int              `json:"max_instances,omitempty"`
	Concurrency  *int              `json:"concurrency,omitempty"`
	Timeout      string            `json:"timeout,omitempty"`
	IdleTimeout  string            `json:"idle_timeout,omitempty"`
	MaxAttempts  *int              `json:"max_attempts,omitempty"`
	Backoff      []string          `json:"backoff,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	// Access overrides the function's own policy: public, authenticated
	// or internal.
	Access string `json:"access,omitempty"`
	// Schedules, when present, replace the ones the function declares in
	// its fn.Config (an empty list turns them off).
	Schedules *[]registry.Schedule `json:"schedules,omitempty"`
}

type deployOptions struct {
	f      *factory
	dir    string
	force  bool
	json   bool
	flags  settings
	envs   []string
	backof string
	// secrets are names of the deployer's environment variables to store
	// as the function's secrets before the deploy (--secret).
	secrets []string
}

func newDeployCmd(f *factory) *cobra.Command {
	o := &deployOptions{f: f}
	var minI, maxI, conc, attempts int
	var timeout, idle string
	cmd := &cobra.Command{
		Use:   "deploy <dir>",
		Short: "Build a function and deploy it as a new version",
		Long: `Build the function in <dir> (go build, static), read its manifest
(<binary> --yard-manifest), check its schemas against the live version, upload
the binary to the object store yard_artifacts (by sha256, never twice), and
record it as version N in yard_versions and as the live spec in
yard_functions. Agents ('yard agent', 'yard up') then start the new version
and drain the old one.

A schema change that would reject input the live version accepted (a new
required field, a narrowed type or range, a removed enum value) or produce
output its callers do not expect is refused, naming each change, unless
--force.

Settings come from ` + SettingsFile + ` in <dir>, then from flags:
  {"min_instances": 1, "max_instances": 4, "concurrency": 32, "timeout": "10s",
   "idle_timeout": "5m", "max_attempts": 5, "backoff": ["1s", "5s", "30s"],
   "env": {"GREETING": "Hi"}}

With min_instances 0 (the default) the function scales to zero when idle;
the first request (gateway, yard invoke) or queued invocation wakes it.`,
		Example: `  yard deploy ./functions/greet
  yard deploy ./functions/greet --timeout 5s --env GREETING=Hi --min 2
  yard deploy ./functions/greet --force --json`,
		Args: exactArgs(1, "the function's folder"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			fl := cmd.Flags()
			if fl.Changed("min") {
				o.flags.MinInstances = &minI
			}
			if fl.Changed("max") {
				o.flags.MaxInstances = &maxI
			}
			if fl.Changed("concurrency") {
				o.flags.Concurrency = &conc
			}
			if fl.Changed("max-attempts") {
				o.flags.MaxAttempts = &attempts
			}
			o.flags.Timeout = timeout
			o.flags.IdleTimeout = idle
			return o.run(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&minI, "min", 0, "instances always running (0: scale to zero when idle)")
	fl.IntVar(&maxI, "max", 0, "most instances at once")
	fl.IntVar(&conc, "concurrency", 0, "invocations one instance runs at once")
	fl.StringVar(&timeout, "timeout", "", "how long one invocation may run, e.g. 10s")
	fl.StringVar(&idle, "idle", "", "idle time before an instance above --min is drained, e.g. 5m")
	fl.IntVar(&attempts, "max-attempts", 0, "attempts of an async invocation before the DLQ")
	fl.StringVar(&o.backof, "backoff", "", "waits between async attempts, e.g. 1s,5s,30s")
	fl.StringArrayVar(&o.envs, "env", nil, "KEY=VALUE for the function's environment (repeatable)")
	fl.StringArrayVar(&o.secrets, "secret", nil, "store your environment variable KEY as a secret of the function, not in its spec (repeatable)")
	fl.BoolVar(&o.force, "force", false, "deploy even when the schemas would break callers")
	fl.BoolVar(&o.json, "json", false, "print the deployed spec as JSON")
	return cmd
}

func (o *deployOptions) run(ctx context.Context) error {
	errOut := o.f.io.ErrOut
	st, err := o.settings()
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	secretItems, err := deploySecrets(o.f, o.secrets)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "yard-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "fn")

	start := time.Now()
	fmt.Fprintf(errOut, "building %s … ", o.dir)
	if err := buildFunction(ctx, o.dir, bin); err != nil {
		fmt.Fprintln(errOut, "failed")
		return err
	}
	fmt.Fprintf(errOut, "done in %s\n", time.Since(start).Round(100*time.Millisecond))
	spec, err := readManifest(ctx, bin)
	if err != nil {
		return err
	}
	if err := st.apply(spec); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}

	return withRegistry(ctx, o.f, "deploy", func(ctx context.Context, s *session) error {
		log := newAuditLog(o.f, s.nc, s.js)
		// A deploy that will be refused changes nothing, secrets included.
		if err := o.compatible(ctx, s.reg, spec); err != nil {
			log.record(ctx, audit.KindDeploy, "deploy", spec.Name, "", err)
			return err
		}
		// Secrets next, so the new version's instances start with them.
		if err := storeSecrets(ctx, o.f, log, spec.Name, secretItems); err != nil {
			return err
		}
		// The agents provision the live spec (consumers, streams,
		// buckets, schedules) as soon as they see it.
		deployed, err := o.publish(ctx, s.reg, spec, bin)
		log.record(ctx, audit.KindDeploy, "deploy", spec.Name, versionDetail(deployed), err)
		return err
	})
}

// compatible refuses spec when its schemas would break callers of the
// live version, unless --force (then it says what breaks).
func (o *deployOptions) compatible(ctx context.Context, reg *registry.Registry, spec *registry.Spec) error {
	live, err := reg.Get(ctx, spec.Name)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	breaks := compatibility(live, spec)
	if len(breaks) == 0 {
		return nil
	}
	if !o.force {
		return &exitError{code: ExitError, err: fmt.Errorf("refusing to deploy %s: the new schemas would break callers of the live version (v%d):\n  %s\ndeploy anyway with --force",
			spec.Name, live.Version, strings.Join(breaks, "\n  "))}
	}
	fmt.Fprintf(o.f.io.ErrOut, "deploying despite %d breaking schema changes (--force):\n  %s\n", len(breaks), strings.Join(breaks, "\n  "))
	return nil
}

// publish uploads the binary and records the version (compatible has
// checked it). It returns the live spec: the one deployed, or the live one
// when nothing changed.
func (o *deployOptions) publish(ctx context.Context, reg *registry.Registry, spec *registry.Spec, bin string) (*registry.Spec, error) {
	errOut := o.f.io.ErrOut
	live, rev, err := reg.GetEntry(ctx, spec.Name)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return nil, err
	}

	size := int64(0)
	if fi, err := os.Stat(bin); err == nil {
		size = fi.Size()
	}
	progress, done := uploadProgress(errOut, size)
	art, uploaded, err := reg.PutArtifact(ctx, bin, progress)
	done()
	if err != nil {
		return nil, err
	}
	if uploaded {
		fmt.Fprintf(errOut, "uploaded %s (%.1f MB)\n", art.Digest[:19], float64(art.Size)/1e6)
	} else {
		fmt.Fprintf(errOut, "artifact %s already stored\n", art.Digest[:19])
	}
	spec.Artifact = art
	if live != nil && live.Version > 0 && sameDeploy(live, spec) {
		fmt.Fprintf(errOut, "unchanged: %s v%d is live with this binary and these settings\n", spec.Name, live.Version)
		if o.json {
			return live, writeJSONOut(o.f, live)
		}
		return live, nil
	}
	deployed, err := reg.Deploy(ctx, spec, rev)
	if errors.Is(err, registry.ErrConflict) {
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s changed while deploying (another deploy?); run yard deploy again", spec.Name)}
	}
	if err != nil {
		return nil, err
	}
	if o.json {
		return deployed, writeJSONOut(o.f, deployed)
	}
	switch {
	case deployed.MinInstances == 0:
		fmt.Fprintf(errOut, "deployed %s v%d; at zero instances until called (agents drain any previous version)\n", deployed.Name, deployed.Version)
	case deployed.Version == 1:
		fmt.Fprintf(errOut, "deployed %s v1; agents start it\n", deployed.Name)
	default:
		fmt.Fprintf(errOut, "deployed %s v%d; agents start it and drain the previous version\n", deployed.Name, deployed.Version)
	}
	return deployed, nil
}

// settings merges the folder's settings file with the flags, flags last.
func (o *deployOptions) settings() (*settings, error) {
	st := &settings{}
	data, err := os.ReadFile(filepath.Join(o.dir, SettingsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(st); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(o.dir, SettingsFile), err)
		}
	}
	fl := o.flags
	if fl.MinInstances != nil {
		st.MinInstances = fl.MinInstances
	}
	if fl.MaxInstances != nil {
		st.MaxInstances = fl.MaxInstances
	}
	if fl.Concurrency != nil {
		st.Concurrency = fl.Concurrency
	}
	if fl.MaxAttempts != nil {
		st.MaxAttempts = fl.MaxAttempts
	}
	if fl.Timeout != "" {
		st.Timeout = fl.Timeout
	}
	if fl.IdleTimeout != "" {
		st.IdleTimeout = fl.IdleTimeout
	}
	if o.backof != "" {
		st.Backoff = strings.Split(o.backof, ",")
	}
	var errs []error
	for _, kv := range o.envs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("--env %q: want KEY=VALUE", kv))
			continue
		}
		if st.Env == nil {
			st.Env = map[string]string{}
		}
		st.Env[k] = v
	}
	return st, errors.Join(errs...)
}

// apply puts the settings into a spec, reporting every bad value at once.
func (st *settings) apply(spec *registry.Spec) error {
	var errs []error
	if st.MinInstances != nil {
		spec.MinInstances = *st.MinInstances
	}
	if st.MaxInstances != nil {
		spec.MaxInstances = *st.MaxInstances
	}
	if st.Concurrency != nil {
		spec.Concurrency = *st.Concurrency
	}
	if st.MaxAttempts != nil {
		spec.MaxAttempts = *st.MaxAttempts
	}
	if st.Timeout != "" {
		d, err := time.ParseDuration(st.Timeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout %q: want a positive duration such as 10s", st.Timeout))
		}
		spec.Timeout = registry.Duration(d)
	}
	if st.IdleTimeout != "" {
		d, err := time.ParseDuration(st.IdleTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("idle timeout %q: want a positive duration such as 5m", st.IdleTimeout))
		}
		spec.IdleTimeout = registry.Duration(d)
	}
	if len(st.Backoff) > 0 {
		spec.Backoff = nil
		for _, s := range st.Backoff {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("backoff %q: want durations such as 1s,5s,30s", s))
				continue
			}
			spec.Backoff = append(spec.Backoff, registry.Duration(d))
		}
	}
	if st.Env != nil {
		spec.Env = st.Env
	}
	if st.Schedules != nil {
		spec.Schedules = *st.Schedules
	}
	if st.Access != "" {
		spec.Access = st.Access
	}
	if err := registry.ValidateSchedules(spec.Schedules, spec.InputSchema); err != nil {
		errs = append(errs, err)
	}
	if spec.MaxInstances == 0 {
		spec.MaxInstances = max(spec.MinInstances, 1)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return spec.Validate()
}

// buildFunction compiles the function in dir into a static binary.
func buildFunction(ctx context.Context, dir, out string) error {
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("the go command is not on PATH; yard deploy builds functions with it")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%s is not a folder", dir)}
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// readManifest asks a function binary for its spec.
func readManifest(ctx context.Context, bin string) (*registry.Spec, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, wire.ManifestFlag)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("reading the manifest (%s %s): %w\n%s\nis this a Switchyard function (fn.Main)?", filepath.Base(bin), wire.ManifestFlag, err, strings.TrimSpace(stderr.String()))
	}
	spec, err := registry.Decode(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("the manifest is not a spec: %w", err)
	}
	if err := wire.ValidateName(spec.Name); err != nil {
		return nil, fmt.Errorf("the manifest names an invalid function: %w", err)
	}
	return spec, nil
}

// compatibility lists the schema changes from live to next that would
// break callers, one line each.
func compatibility(live, next *registry.Spec) []string {
	var out []string
	add := func(kind string, changes []schemas.Change, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("%s schema: cannot compare (%v)", kind, err))
			return
		}
		for _, c := range changes {
			ptr := c.Pointer
			if ptr == "" {
				ptr = "(root)"
			}
			out = append(out, fmt.Sprintf("%s %s: %s [%s]", kind, ptr, c.Message, c.Kind))
		}
	}
	in, err := schemas.InputBreaks(live.InputSchema, next.InputSchema)
	add("input", in, err)
	outc, err := schemas.OutputBreaks(live.OutputSchema, next.OutputSchema)
	add("output", outc, err)
	// The events an entity stream keeps were written by the live version:
	// the next one must still read each of their types.
	for _, ls := range live.Streams {
		if !ls.Entity {
			continue
		}
		i := slices.IndexFunc(next.Streams, func(st registry.Stream) bool { return st.Name == ls.Name })
		if i < 0 {
			continue // the new version no longer uses the stream
		}
		if !next.Streams[i].Entity {
			out = append(out, "stream "+ls.Name+": no longer declared an entity stream, so its types go unchecked [entity_removed]")
			continue
		}
		ns := next.Streams[i]
		for _, typ := range slices.Sorted(maps.Keys(ls.EventSchemas)) {
			kind := "event " + ls.Name + "/" + typ
			nsc, ok := ns.EventSchemas[typ]
			if !ok {
				out = append(out, kind+": no longer declared, so its stored events could not be read [event_type_removed]")
				continue
			}
			changes, err := schemas.InputBreaks(ls.EventSchemas[typ], nsc)
			add(kind, changes, err)
		}
	}
	return out
}

// sameDeploy: deploying next would change nothing.
func sameDeploy(live, next *registry.Spec) bool {
	a, b := *live, *next
	a.Version, a.DeployedAt, a.UpdatedAt = 0, time.Time{}, time.Time{}
	b.Version, b.DeployedAt, b.UpdatedAt = 0, time.Time{}, time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// uploadProgress shows a progress bar on a terminal and nothing otherwise.
func uploadProgress(w io.Writer, total int64) (func(done, total int64), func()) {
	f, ok := w.(*os.File)
	if !ok {
		return func(int64, int64) {}, func() {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func(int64, int64) {}, func() {}
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("uploading"), progressbar.OptionClearOnFinish())
	return func(done, _ int64) { _ = bar.Set64(done) }, func() { _ = bar.Finish() }
}
