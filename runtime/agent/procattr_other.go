//go:build !linux

package agent

import "syscall"

// procAttr: elsewhere there is no parent-death signal; instances of a
// killed agent exit when their NATS connection's server goes away or are
// stopped by hand.
func procAttr() *syscall.SysProcAttr { return nil }

// shieldFromInstances: elsewhere, keep instances under another user to
// keep them out of the agent's process.
func shieldFromInstances() error { return nil }
