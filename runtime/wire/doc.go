// Package wire is Switchyard's protocol contract: function names, the subjects
// built from them, header names, error codes and the error body that every
// reply carries. The SDK (package fn), the gateway and the CLI all speak the
// protocol through this package, so it depends on the standard library only
// and changes only on purpose: anything here is visible to users of plain
// NATS clients.
package wire
