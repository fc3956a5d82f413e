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
	text, expires, err := a.askTrust(ctx, roles.TrustInstance+name, struct {
		Instance string `json:"instance"`
	}{id}, "credential for "+id)
	if text == "" || err != nil {
		return "", time.Time{}, err
	}
	path = filepath.Join(dir, "nats.creds")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return "", time.Time{}, err
	}
	return path, expires, nil
}

// askTrust asks the trust service on subject for a credential and returns
// it (as a .creds file's text) with its expiry. Nobody answering on a
// NATS system without authentication (the agent has no credential) is no
// credential and no error: "". what names the credential in errors.
func (a *Agent) askTrust(ctx context.Context, subject string, req any, what string) (string, time.Time, error) {
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := a.nc.RequestWithContext(ctx, subject, body)
	if errors.Is(err, nats.ErrNoResponders) && a.cfg.Creds == "" {
		return "", time.Time{}, nil
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return "", time.Time{}, fmt.Errorf("%s: the trust service does not answer (is yard server running?)", what)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	var reply struct {
		Creds   string    `json:"creds"`
		Expires time.Time `json:"expires"`
		Error   string    `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	if reply.Error != "" || reply.Creds == "" {
		return "", time.Time{}, fmt.Errorf("%s: refused: %s", what, reply.Error)
	}
	return reply.Creds, reply.Expires, nil
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
