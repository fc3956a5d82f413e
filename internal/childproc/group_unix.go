//go:build unix

package childproc

import (
	"os"
	"syscall"
)

// OwnGroup is Attr, with the child in a process group of its own: a
// terminal's Ctrl-C then reaches the supervisor alone, which stops its
// children in its own order.
func OwnGroup() *syscall.SysProcAttr {
	a := Attr()
	if a == nil {
		a = &syscall.SysProcAttr{}
	}
	a.Setpgid = true
	return a
}

// Continue resumes a child stopped by hand (SIGSTOP), so that it can act
// on a signal sent to end it.
func Continue(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
