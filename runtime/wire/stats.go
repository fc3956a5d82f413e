package wire

// InstanceStats are the counters a function instance reports of itself,
// as the data of each endpoint in its micro STATS: the agents read them
// to scale and to export metrics, the gateway to show them.
type InstanceStats struct {
	InFlight    int   `json:"in_flight"`
	Concurrency int   `json:"concurrency"`
	Completed   int64 `json:"completed"`
	Failed      int64 `json:"failed"`
	Panics      int64 `json:"panics"`
	// HandlerSeconds is the time spent validating and handling, summed
	// over every call.
	HandlerSeconds float64 `json:"handler_seconds"`
	// Async invocations and events: attempts failed and retried, and
	// given up on (dead-lettered); schedule ticks run and skipped.
	Retries      int64 `json:"retries"`
	DeadLetters  int64 `json:"dead_letters"`
	TicksRun     int64 `json:"ticks_run"`
	TicksSkipped int64 `json:"ticks_skipped"`
	// Breakers are the circuits of the instance's calls to other
	// functions, by target: closed, open or half-open.
	Breakers map[string]string `json:"breakers,omitempty"`
}
