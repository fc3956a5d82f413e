package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-dev/switchyard/internal/fleet"
	"github.com/switchyard-dev/switchyard/internal/jskv"
	"github.com/switchyard-dev/switchyard/runtime/registry"
	"github.com/switchyard-dev/switchyard/runtime/wire"
)

// Registration is the answer to yard.register.<name>: the deployed version
// that owns the function (0: the spec sent was registered as is).
type Registration struct {
	DeployedVersion int `json:"deployed_version"`
}

// Unregistration is the body of yard.unregister.<name>: the micro service
// id of the instance that stops, so it is not counted as still serving.
type Unregistration struct {
	Instance string `json:"instance"`
}

// maxHandling bounds the registrations handled at once.
const maxHandling = 16

// maxSpecBytes bounds a registration: two schemas and a few declarations.
const maxSpecBytes = 4 << 20

// Serve answers registrations from instances run without a deploy, in the
// queue group wire.RegisterQueue, until ctx ends or the returned stop is
// called. It registers the spec (never over a deploy) and provisions it
// before it answers, so the instance finds its consumers.
func (p *Provisioner) Serve(ctx context.Context, nc *nats.Conn) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	// At most maxHandling registrations are handled at once; the rest
	// wait in the subscription, bounded by its pending limits.
	slots := make(chan struct{}, maxHandling)
	handle := func(m *nats.Msg, h func() (any, error)) {
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			p.reply(m, h)
		}()
	}
	reg, err := nc.QueueSubscribe(wire.RegisterPrefix+"*", wire.RegisterQueue, func(m *nats.Msg) {
		if m.Reply != "" && !wire.InboxReply(m.Reply) {
			return
		}
		handle(m, func() (any, error) { return p.register(ctx, m) })
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("provision: subscribe: %w", err)
	}
	unreg, err := nc.QueueSubscribe(wire.UnregisterPrefix+"*", wire.RegisterQueue, func(m *nats.Msg) {
		if m.Reply != "" && !wire.InboxReply(m.Reply) {
			return
		}
		handle(m, func() (any, error) { return struct{}{}, p.unregister(ctx, nc, m) })
	})
	if err != nil {
		cancel()
		_ = reg.Unsubscribe()
		return nil, fmt.Errorf("provision: subscribe: %w", err)
	}
	if err := nc.Flush(); err != nil {
		cancel()
		_ = reg.Unsubscribe()
		_ = unreg.Unsubscribe()
		return nil, err
	}
	return func() {
		cancel()
		_ = reg.Unsubscribe()
		_ = unreg.Unsubscribe()
	}, nil
}

func (p *Provisioner) reply(m *nats.Msg, handle func() (any, error)) {
	if m.Reply == "" {
		return
	}
	out, err := handle()
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			p.log.Error("registration failed", "subject", m.Subject, "err", err)
			we = wire.Errorf(wire.CodeUnavailable, "the platform could not provision the function: %v", err)
		}
		body, _ := json.Marshal(we)
		_ = m.RespondMsg(&nats.Msg{Data: body, Header: we.Headers()})
		return
	}
	body, _ := json.Marshal(out)
	_ = m.Respond(body)
}

func (p *Provisioner) register(ctx context.Context, m *nats.Msg) (*Registration, error) {
	spec, err := parseRegistration(m.Subject, m.Data)
	if err != nil {
		return nil, err
	}
	name := spec.Name
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := p.reg.Register(ctx, spec); err != nil {
		if errors.Is(err, registry.ErrInvalidSpec) {
			return nil, wire.Errorf(wire.CodeInvalidArgument, "%v", err)
		}
		return nil, err
	}
	// Provision what the registry says now, not what was sent: a deploy
	// may have landed meanwhile, and a deployed function's consumers may
	// not be made yet when its first undeployed instance starts.
	cur, rev, err := p.reg.GetEntry(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := p.Apply(ctx, cur); err != nil {
		if cur.Version == 0 {
			// Not left in the registry for the agents to retry for ever.
			if _, uerr := p.reg.Unregister(ctx, name, rev); uerr != nil {
				p.log.Warn("could not withdraw a registration that failed to provision", "fn", name, "err", uerr)
			}
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "%v", err)
	}
	if cur.Version > 0 {
		return &Registration{DeployedVersion: cur.Version}, nil
	}
	p.log.Info("registered a function run without a deploy", "fn", name)
	return &Registration{}, nil
}

// unregister removes a function run without a deploy once its last
// instance stops: its spec goes, and with it (through the registry's
// watchers) its schedules, so no tick piles up for nothing.
func (p *Provisioner) unregister(ctx context.Context, nc *nats.Conn, m *nats.Msg) error {
	name := strings.TrimPrefix(m.Subject, wire.UnregisterPrefix)
	if err := wire.ValidateName(name); err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	var u Unregistration
	if err := json.Unmarshal(m.Data, &u); err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "unregistration: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.dropIfUnserved(ctx, nc, name, u.Instance)
}

// dropIfUnserved removes the spec of a function run without a deploy when
// no instance but except answers pings, and with it its schedules. The
// revision is read before the ping: an instance registering after it
// rewrites the spec, and the revision-checked delete then fails.
func (p *Provisioner) dropIfUnserved(ctx context.Context, nc *nats.Conn, name, except string) error {
	cur, rev, err := p.reg.GetEntry(ctx, name)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil || cur.Version > 0 {
		return err
	}
	// Two pings: one busy instance missing the first does not lose its
	// function.
	for range 2 {
		pings, err := fleet.Ping(nc, name, 200*time.Millisecond)
		if err != nil {
			return err
		}
		for _, ping := range pings {
			if ping.ID != except {
				return nil // another instance still serves it
			}
		}
	}
	dropped, err := p.reg.Unregister(ctx, name, rev)
	if err != nil || !dropped {
		return err
	}
	return p.Remove(ctx, name)
}

// Sweep removes, every interval until ctx ends, the functions run without
// a deploy whose instances all died without saying so (SIGKILL, a crash):
// a function no instance answered for two sweeps in a row. Without it
// their schedules would fire into the shared work queue for ever.
func (p *Provisioner) Sweep(ctx context.Context, nc *nats.Conn, interval time.Duration) {
	missed := map[string]bool{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		specs, err := p.reg.List(ctx)
		if err != nil {
			continue
		}
		seen := map[string]bool{}
		for _, spec := range specs {
			if spec.Version > 0 {
				continue
			}
			seen[spec.Name] = true
			pings, err := fleet.Ping(nc, spec.Name, 200*time.Millisecond)
			if err != nil || len(pings) > 0 {
				delete(missed, spec.Name)
				continue
			}
			if !missed[spec.Name] {
				missed[spec.Name] = true
				continue
			}
			delete(missed, spec.Name)
			if err := p.dropIfUnserved(ctx, nc, spec.Name, ""); err != nil {
				p.log.Warn("could not remove a function whose instances are gone", "fn", spec.Name, "err", err)
			} else {
				p.log.Info("removed a function run without a deploy: no instance answers", "fn", spec.Name)
			}
		}
		for name := range missed {
			if !seen[name] {
				delete(missed, name)
			}
		}
	}
}

// Follow provisions every spec in the registry, and every change to one,
// until ctx ends: what the agents do for the functions they run, for a
// process that runs none (tests, tools).
func (p *Provisioner) Follow(ctx context.Context) error {
	w, err := p.reg.Watch(ctx)
	if err != nil {
		return err
	}
	return jskv.Follow(ctx, w, nil, func(e jetstream.KeyValueEntry) {
		var err error
		if e.Operation() == jetstream.KeyValuePut {
			var spec *registry.Spec
			if spec, err = registry.Decode(e.Value()); err == nil {
				err = p.Apply(ctx, spec)
			}
		} else {
			err = p.Remove(ctx, e.Key())
		}
		if err != nil && ctx.Err() == nil {
			p.log.Error("provision", "fn", e.Key(), "err", err)
		}
	})
}

// parseRegistration reads a registration from anyone on NATS: the subject
// names the function, the body is its spec, at most maxSpecBytes. Every
// refusal is an invalid_argument (or payload_too_large) wire error.
func parseRegistration(subject string, data []byte) (*registry.Spec, error) {
	name := strings.TrimPrefix(subject, wire.RegisterPrefix)
	if err := wire.ValidateName(name); err != nil {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	if len(data) > maxSpecBytes {
		return nil, wire.Errorf(wire.CodePayloadTooLarge, "a registration is at most %d bytes", maxSpecBytes)
	}
	spec, err := registry.Decode(data)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	if spec.Name != name {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "the spec names %q, the subject %q", spec.Name, name)
	}
	if err := spec.Validate(); err != nil {
		return nil, wire.Errorf(wire.CodeInvalidArgument, "invalid spec: %v", err)
	}
	return spec, nil
}
