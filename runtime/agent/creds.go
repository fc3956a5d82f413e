package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard-dev/switchyard/runtime/roles"
)

// instanceCreds asks the trust service for a credential with exactly the
// rights of the function's live spec, valid for a short while, and writes
// it into the instance's folder (mode 0600). On a NATS system without
// authentication (the agent has no credential and nobody answers) the
// instance connects without one too. An agent that has a credential never
// hands it on: if the trust service does not answer (a server restarting,
// say) starting the instance fails, and is retried with backoff.
func (a *Agent) instanceCreds(ctx context.Context, name, id, dir string) (path string, expires time.Time, err error) {
	req, _ := json.Marshal(struct {
		Instance string `json:"instance"`
	}{id})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := a.nc.RequestWithContext(ctx, roles.TrustInstance+name, req)
	if errors.Is(err, nats.ErrNoResponders) && a.cfg.Creds == "" {
		return "", time.Time{}, nil
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return "", time.Time{}, fmt.Errorf("credential for %s: the trust service does not answer (is yard server running?)", id)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("credential for %s: %w", id, err)
	}
	var reply struct {
		Creds   string    `json:"creds"`
		Expires time.Time `json:"expires"`
		Error   string    `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return "", time.Time{}, fmt.Errorf("credential for %s: %w", id, err)
	}
	if reply.Error != "" || reply.Creds == "" {
		return "", time.Time{}, fmt.Errorf("credential for %s: refused: %s", id, reply.Error)
	}
	path = filepath.Join(dir, "nats.creds")
	if err := os.WriteFile(path, []byte(reply.Creds), 0o600); err != nil {
		return "", time.Time{}, err
	}
	return path, reply.Expires, nil
}

// renewAt is when an instance whose credential expires at exp is
// replaced: a fifth of its lifetime before, so the replacement has time to
// start and the old one to drain.
func renewAt(now, exp time.Time) time.Time {
	if exp.IsZero() {
		return time.Time{}
	}
	return exp.Add(-exp.Sub(now) / 5)
}
