//go:build unix

package fdlimit

import (
	"math"
	"syscall"
)

// Open is the process's soft limit on open files; 0 if unknown.
func Open() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(min(uint64(r.Cur), math.MaxInt32))
}
