package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// reservedEnv are the variables the agent sets to connect an instance; a
// spec may not override them.
var reservedEnv = map[string]bool{"NATS_URL": true, "NATS_CREDS": true, "NATS_CA": true}

// reservedEnvPrefix is kept for the platform's own settings.
const reservedEnvPrefix = "YARD_"

// validateEnv checks one variable of Spec.Env: the key must match
// ^[A-Za-z_][A-Za-z0-9_]*$ and not be reserved, and the value must not
// hold a NUL byte, which no process environment can carry.
func validateEnv(key, value string) error {
	if err := ValidateEnvName(key); err != nil {
		return fmt.Errorf("env %w", err)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("env %s: value holds a NUL byte", key)
	}
	return nil
}

// ValidateEnvName checks the name of a variable the agent puts in an
// instance's environment (Spec.Env, and function secrets): it must match
// ^[A-Za-z_][A-Za-z0-9_]*$ and not be NATS_URL, NATS_CREDS, NATS_CA or YARD_*,
// which the agent sets itself. The error starts with the name.
func ValidateEnvName(key string) error {
	if !validEnvKey(key) {
		return fmt.Errorf("%s: names are a letter or '_' followed by letters, digits or '_'", quote(key))
	}
	if reservedEnv[key] || strings.HasPrefix(key, reservedEnvPrefix) {
		return fmt.Errorf("%s: NATS_URL, NATS_CREDS, NATS_CA and %s* are reserved for the platform", key, reservedEnvPrefix)
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// quote renders untrusted input safely for an error message.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}
