package agent

import (
	"path/filepath"
	"strings"
)

// baseEnv is what an instance's environment starts from; the platform's
// variables (NATS_URL, NATS_CREDS, YARD_*), the spec's Env and the agent's
// Config.Env follow. Nothing else of the agent's own environment reaches a
// function, so the secrets of whoever started the agent or `yard up`
// (tokens, cloud keys) do not leak into deployed code:
//
//	PATH    /usr/local/bin:/usr/bin:/bin, a fixed ordinary search path
//	HOME    the instance's own folder, removed when the instance exits
//	TMPDIR  <instance folder>/tmp, likewise
//	TZ, LANG, LC_ALL, SSL_CERT_FILE, SSL_CERT_DIR
//	        copied when the agent has them: the host's time zone and
//	        locale, and where its trusted CA certificates are; none is
//	        a secret
//	OTEL_*  the OpenTelemetry settings (see otelEnv)
//
// lookup is os.LookupEnv but for tests.
func baseEnv(dir string, lookup func(string) (string, bool)) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"TMPDIR=" + instanceTmp(dir),
	}
	for _, k := range []string{"TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := lookup(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// instanceTmp is an instance's TMPDIR, inside its folder.
func instanceTmp(dir string) string { return filepath.Join(dir, "tmp") }

// otelEnv passes the agent's OpenTelemetry settings (OTEL_*: where to
// export traces, sampling, resource attributes, exporter headers) to an
// instance of the function name, whose spans then go where the agent's
// go. OTEL_SERVICE_NAME names the agent's own process, so the instance
// gets the function's name instead; a spec's env may still set it. An
// agent without OTEL_* settings passes none.
func otelEnv(environ []string, name string) []string {
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "OTEL_SERVICE_NAME=") {
			env = append(env, kv)
		}
	}
	if env == nil {
		return nil
	}
	return append(env, "OTEL_SERVICE_NAME="+name)
}
