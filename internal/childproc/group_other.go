//go:build !unix

package childproc

import (
	"os"
	"syscall"
)

// OwnGroup is Attr: elsewhere children share the supervisor's group.
func OwnGroup() *syscall.SysProcAttr { return Attr() }

// Continue does nothing: there is no stopping by signal to undo.
func Continue(*os.Process) {}
