package fn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-dev/switchyard/runtime/wire"
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
	atLeastOne(wire.EnvVersion, "a version number", &cfg.DeployedVersion)
	if v := getenv(wire.EnvTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive duration such as 10s", wire.EnvTimeout, v))
		}
		h.timeout = d
	}
	atLeastOne(wire.EnvConcurrency, "a number", &h.concurrency)
	atLeastOne(wire.EnvMaxAttempts, "a number", &h.maxAttempts)
	if v := getenv(wire.EnvBackoff); v != "" {
		var backoff []time.Duration
		for _, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want durations separated by commas, such as 1s,5s,30s", wire.EnvBackoff, v))
				break
			}
			backoff = append(backoff, d)
		}
		h.backoff = backoff
	}
	return errors.Join(errs...)
}
