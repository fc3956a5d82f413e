package agent

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestShieldFromInstances: the agent's process is not dumpable, so an
// instance under the same user cannot read /proc/<agent>/environ or mem.
func TestShieldFromInstances(t *testing.T) {
	if err := shieldFromInstances(); err != nil {
		t.Fatal(err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Fatalf("dumpable %d, %v", d, err)
	}
}
