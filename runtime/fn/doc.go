// Package fn is the Switchyard SDK: what a function author imports.
//
// A function is a typed handler, func(ctx, In) (Out, error). Handle derives
// its input and output JSON Schemas from In and Out; Serve (for tests and
// embedding) or Main (for a binary) runs it as a NATS micro service on
// fn.<name>, in queue group fn.<name>, so that every running instance shares
// the load and `nats micro ls` lists it.
//
// Lifecycle of an instance: Start validates the config, compiles the
// schemas, subscribes, and records the function's spec in the registry; it
// then serves requests concurrently, up to the configured limit. Each
// request is decoded strictly and validated against the input schema (plain
// NATS callers never pass the gateway), the handler runs with a context that
// ends at the caller's Yard-Deadline or the function's timeout, whichever
// comes first, and the output is validated before it is sent. Stop drains:
// it stops taking requests and waits for those in flight.
//
// Errors: return an *Error (see Errorf, InvalidArgument, NotFound) to send a
// code and message to the caller. Any other error is sent as "internal error"
// with code internal; its text is logged with the request id, never sent.
// A panicking handler is recovered and answered the same way.
package fn
