package agent

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// procAttr makes the kernel send SIGTERM to an instance when the agent
// dies, even by SIGKILL, so no function outlives its supervisor and keeps
// serving from a stale version.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// shieldFromInstances marks the agent's process non-dumpable: instances
// run under the agent's user, and would otherwise read the agent's own
// environment and memory through /proc/<agent pid>.
func shieldFromInstances() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
