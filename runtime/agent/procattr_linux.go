package agent

import "golang.org/x/sys/unix"

// shieldFromInstances marks the agent's process non-dumpable: instances
// run under the agent's user, and would otherwise read the agent's own
// environment and memory through /proc/<agent pid>.
func shieldFromInstances() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
