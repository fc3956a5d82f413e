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

// maxSpecBytes bounds a registration: two schemas and a few declarations.
const maxSpecBytes = 4 << 20

// Serve answers registrations from instances run without a deploy, in the
// queue group wire.RegisterQueue, until ctx ends or the returned stop is
// called. It registers the spec (never over a deploy) and provisions it
// before it answers, so the instance finds its consumers.
func (p *Provisioner) Serve(ctx context.Context, nc *nats.Conn) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	reg, err := nc.QueueSubscribe(wire.RegisterPrefix+"*", wire.RegisterQueue, func(m *nats.Msg) {
		go p.reply(m, func() (any, error) { return p.register(ctx, m) })
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("provision: subscribe: %w", err)
	}
	unreg, err := nc.QueueSubscribe(wire.UnregisterPrefix+"*", wire.RegisterQueue, func(m *nats.Msg) {
		go p.reply(m, func() (any, error) { return struct{}{}, p.unregister(ctx, nc, m) })
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
	deployed, err := p.reg.Register(ctx, spec)
	if err != nil {
		if errors.Is(err, registry.ErrInvalidSpec) {
			return nil, wire.Errorf(wire.CodeInvalidArgument, "%v", err)
		}
		return nil, err
	}
	if deployed != nil {
		// A deploy owns the function and provisioned it.
		return &Registration{DeployedVersion: deployed.Version}, nil
	}
	if err := p.Apply(ctx, spec); err != nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "%v", err)
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
	pings, err := fleet.Ping(nc, name, 200*time.Millisecond)
	if err != nil {
		return err
	}
	for _, ping := range pings {
		if ping.ID != u.Instance {
			return nil // another instance still serves it
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.reg.Unregister(ctx, name); err != nil {
		return err
	}
	// Deployed meanwhile: the deploy's schedules stay (Remove follows the
	// registry). Otherwise the spec is gone, and so go its schedules.
	return p.Remove(ctx, name)
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
