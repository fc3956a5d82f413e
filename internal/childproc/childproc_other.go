//go:build !linux

// Package childproc holds what the platform's supervisors (the agent, and
// yard up's cluster) set on the processes they start.
package childproc

import "syscall"

// Attr: elsewhere there is no parent-death signal; children of a killed
// supervisor exit when their NATS server goes away or are stopped by hand.
func Attr() *syscall.SysProcAttr { return nil }
