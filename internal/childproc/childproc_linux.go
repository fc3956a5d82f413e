// Package childproc holds what the platform's supervisors (the agent, and
// yard up's cluster) set on the processes they start.
package childproc

import "syscall"

// Attr makes the kernel send SIGTERM to a child when its supervisor dies,
// even by SIGKILL, so that nothing outlives it and serves from a stale
// setup.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
