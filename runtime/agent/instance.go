package agent

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchyard-dev/switchyard/internal/childproc"
	"github.com/switchyard-dev/switchyard/internal/secrets"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// instance is one supervised process of one version of a function.
type instance struct {
	id      string
	version int
	digest  string
	dir     string

	stopOnce    sync.Once
	stopCh      chan struct{}
	done        chan struct{}
	restarts    atomic.Int64
	draining    atomic.Bool
	stopTimeout time.Duration
	// renew is when the credential of the running process is due for
	// renewal (unix nanoseconds; 0: it does not expire). Past it, the
	// function starts a replacement and then drains this instance.
	renew atomic.Int64
}

// renewDue reports whether the instance's credential is due for renewal.
func (in *instance) renewDue() bool {
	r := in.renew.Load()
	return r != 0 && time.Now().UnixNano() >= r
}

func (in *instance) isReady() bool {
	_, err := os.Stat(filepath.Join(in.dir, "ready"))
	return err == nil
}

// startInstance starts a supervised process; it restarts with backoff when
// it exits until stop is called. renewDue is called when the instance's
// credential is due for renewal.
func (a *Agent) startInstance(ctx context.Context, spec *registry.Spec, bin string, renewDue func()) *instance {
	id := newInstanceID(spec.Name, spec.Version)
	in := &instance{
		id: id, version: spec.Version, digest: spec.Artifact.Digest,
		dir:    filepath.Join(a.cfg.Dir, "instances", id),
		stopCh: make(chan struct{}), done: make(chan struct{}), stopTimeout: a.cfg.StopTimeout,
	}
	subject, _ := wire.LogsSubject(spec.Name, id)
	logs := &logWriter{nc: a.nc, subject: subject, prefix: logPrefix(spec.Name, id), out: a.cfg.Output}
	env := a.env(spec, id, in.dir)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(in.done)
		defer os.RemoveAll(in.dir)
		// Run the binary under the function's name (see procArgv0); failing
		// that, under its digest, which still runs the same bytes.
		exe, err := a.namedBinary(spec, bin)
		if err != nil {
			a.log.Warn("cannot name the binary after the function; running it by digest", "fn", spec.Name, "instance", id, "err", err)
			exe = bin
		}
		backoff := 100 * time.Millisecond
		for {
			_ = os.RemoveAll(in.dir)
			// The folder holds HOME and TMPDIR (see baseEnv).
			if err := os.MkdirAll(instanceTmp(in.dir), 0o700); err != nil {
				a.log.Error("instance dir", "instance", id, "err", err)
			}
			cmd := exec.Command(exe)
			cmd.Args = []string{procArgv0(spec.Name, spec.Version, id)}
			cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = in.dir, env, logs, logs
			cmd.SysProcAttr = childproc.Attr() // no instance outlives its agent
			started := time.Now()
			creds, expires, err := a.instanceCreds(ctx, spec.Name, id, in.dir)
			var renewal *time.Timer
			var sec map[string]string
			if err == nil {
				// Secrets last: they win over the spec's env.
				sec, err = secrets.Load(ctx, a.js, spec.Name)
			}
			if err == nil {
				cmd.Env = slices.Clone(env)
				if creds != "" {
					cmd.Env = append(cmd.Env, wire.EnvNATSCreds+"="+creds)
				}
				for _, k := range slices.Sorted(maps.Keys(sec)) {
					cmd.Env = append(cmd.Env, k+"="+sec[k])
				}
				in.renew.Store(0)
				if at := renewAt(started, expires); !at.IsZero() {
					in.renew.Store(at.UnixNano())
					renewal = time.AfterFunc(time.Until(at), renewDue)
				}
				err = cmd.Start()
			}
			if err == nil {
				a.log.Info("instance started", "fn", spec.Name, "version", spec.Version, "instance", id, "pid", cmd.Process.Pid)
				err = in.wait(ctx, cmd)
				if renewal != nil {
					renewal.Stop()
				}
				logs.flush()
				// Not ready while down: an activation must wait for the
				// restart, not be told an instance serves.
				_ = os.Remove(filepath.Join(in.dir, "ready"))
				if err == errStopped {
					return
				}
			}
			select {
			case <-in.stopCh:
				return
			default:
			}
			if time.Since(started) > 30*time.Second {
				backoff = 100 * time.Millisecond
			}
			in.restarts.Add(1)
			if m := a.cfg.Metrics; m != nil {
				m.InstanceRestarts.WithLabelValues(spec.Name).Inc()
			}
			a.log.Warn("instance exited; restarting", "fn", spec.Name, "instance", id, "err", err, "in", backoff)
			select {
			case <-in.stopCh:
				return
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}()
	return in
}

var errStopped = errors.New("stopped")

// wait waits for the process to exit by itself, or, once stop is called or
// the agent stops, drains it: SIGTERM (the SDK drains in-flight requests), SIGKILL after
// the stop timeout.
func (in *instance) wait(ctx context.Context, cmd *exec.Cmd) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-in.stopCh:
	case <-ctx.Done(): // the agent is stopping
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(in.stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
	return errStopped
}

// stop drains the instance and waits until its process is gone.
func (in *instance) stop() {
	in.stopOnce.Do(func() { close(in.stopCh) })
	<-in.done
}
