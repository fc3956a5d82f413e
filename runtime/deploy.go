package fn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Environment an agent sets for a deployed instance. Deploy settings
// (`yard deploy --timeout …` or yard.json) override what the binary's own
// fn.Handle options say, so one binary serves under the settings it was
// deployed with.
const (
	EnvVersion     = "YARD_VERSION"      // deployed version N: serves fn.<name>.v<N> too, and leaves the registry to the deploy
	EnvInstance    = "YARD_INSTANCE"     // instance id, for logs
	EnvReadyFile   = "YARD_READY_FILE"   // created once the instance serves, so its agent knows
	EnvTimeout     = "YARD_TIMEOUT"      // e.g. 10s
	EnvConcurrency = "YARD_CONCURRENCY"  // e.g. 32
	EnvMaxAttempts = "YARD_MAX_ATTEMPTS" // e.g. 3
	EnvBackoff     = "YARD_BACKOFF"      // e.g. 1s,10s,1m
)

// applyDeployEnv folds the deploy settings into cfg and h, reporting every
// bad value at once.
func applyDeployEnv(getenv func(string) string, cfg *Config, h *Handler) error {
	var errs []error
	// atLeastOne sets *dst from the variable key when it is set.
	atLeastOne := func(key, want string, dst *int) {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s=%q: want %s ≥ 1", key, v, want))
			}
			*dst = n
		}
	}
	atLeastOne(EnvVersion, "a version number", &cfg.DeployedVersion)
	if v := getenv(EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as 10s", EnvTimeout, v))
		}
		h.timeout = d
	}
	atLeastOne(EnvConcurrency, "a number", &h.concurrency)
	atLeastOne(EnvMaxAttempts, "a number", &h.maxAttempts)
	if v := getenv(EnvBackoff); v != "" {
		var backoff []time.Duration
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want durations separated by commas, such as 1s,5s,30s", EnvBackoff, v))
				break
			}
			backoff = append(backoff, d)
		}
		h.backoff = backoff
	}
	return errors.Join(errs...)
}
