package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard-dev/switchyard/internal/natstest"
)

// TestInstanceCredsNeverTheAgents: with nobody answering for the trust
// service, an agent without a credential starts instances without one
// (a server without authentication), but an agent with a credential
// refuses to hand it on.
func TestInstanceCredsNeverTheAgents(t *testing.T) {
	nc := natstest.Connect(t, natstest.Run(t))
	a := &Agent{nc: nc}
	path, _, err := a.instanceCreds(context.Background(), "greet", "greet-v1-x", t.TempDir())
	if err != nil || path != "" {
		t.Fatalf("without authentication: %q, %v; want no credential and no error", path, err)
	}
	a.cfg.Creds = "/secret/agent.creds"
	path, _, err = a.instanceCreds(context.Background(), "greet", "greet-v1-x", t.TempDir())
	if err == nil || path != "" || !strings.Contains(err.Error(), "trust service") {
		t.Fatalf("an agent with a credential: %q, %v; want an error and no credential", path, err)
	}
}
