package agent

import "syscall"

// procAttr makes the kernel send SIGTERM to an instance when the agent
// dies, even by SIGKILL, so no function outlives its supervisor and keeps
// serving from a stale version.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
