// Package chaostest holds the cluster chaos test: a three-node `yard up
// --cluster 3` with a second gateway and a second agent process, under
// sustained sync and async load, while the node leading YARD_ASYNC is
// SIGKILLed three times, the node the second gateway is connected to is
// SIGSTOPped for 10 s, and the second gateway and agent restart.
// Afterwards every accepted async invocation must have executed, and its
// record must say so. A summary table of the figures is logged.
//
// It runs real processes for a few minutes, so only with
// YARD_CHAOS_TEST=1:
//
//	YARD_CHAOS_TEST=1 go test ./internal/chaostest -run TestChaos -v -count=1 -timeout 10m
//
// YARD_CHAOS_LOGS=<dir> keeps the processes' logs (and the function's
// execution log) in <dir> instead of a temporary folder.
package chaostest
