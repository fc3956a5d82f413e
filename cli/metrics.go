package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/switchyard-dev/switchyard/internal/metrics"
)

// metricsFlag is --metrics: where a process serves /metrics ("" or "off":
// nowhere).
type metricsFlag struct{ addr string }

func (m *metricsFlag) add(fs *pflag.FlagSet, def string) {
	fs.StringVar(&m.addr, "metrics", def, "serve Prometheus metrics at http://<addr>/metrics, apart from the gateway's port (off: none)")
}

// start serves the metrics until ctx ends; nil when off.
func (m *metricsFlag) start(ctx context.Context) (*metrics.Metrics, string, error) {
	if m.addr == "" || m.addr == "off" {
		return nil, "", nil
	}
	reg := metrics.New()
	addr, err := reg.Serve(ctx, m.addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics %s: %w", m.addr, err)
	}
	return reg, addr, nil
}

// serve is start for a single component (yard gateway, yard agent): it
// says where the metrics are.
func (m *metricsFlag) serve(ctx context.Context, out io.Writer) (*metrics.Metrics, error) {
	reg, addr, err := m.start(ctx)
	if addr != "" {
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", addr)
	}
	return reg, err
}
