package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-dev/switchyard/gateway"
	"github.com/switchyard-dev/switchyard/internal/apikeys"
	"github.com/switchyard-dev/switchyard/runtime/roles"
)

func newGatewayCmd(f *factory) *cobra.Command {
	var addr, tlsCert, tlsKey string
	var allowPrivate bool
	var limits gatewayFlags
	var oidc oidcFlags
	var mf metricsFlag
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run only the HTTP gateway against a NATS server",
		Long: `Run only the HTTP gateway: POST /fn/{name} becomes a NATS request on
fn.<name>, checked against the function's JSON Schema first. It connects to
--server (or NATS_URL) and reconnects for as long as it runs.

With --tls-cert and --tls-key it serves HTTPS (HTTP/2 and HTTP/1.1, TLS 1.2
or later) with that certificate; with --oidc-issuer and --oidc-audience it
accepts the provider's JWTs as bearer tokens besides API keys
(docs/oidc.md).`,
		Example: `  yard gateway --creds .yard/creds/gateway.creds --http :8443 --tls-cert cert.pem --tls-key key.pem
  yard gateway --oidc-issuer https://login.example.com/realms/shop --oidc-audience switchyard`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := gateway.Config{Addr: addr, AllowPrivateCallbacks: allowPrivate}
			if err := limits.apply(&cfg); err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageError("--tls-cert and --tls-key go together: give both to serve HTTPS, or neither")
			}
			oc, err := oidc.config(cmd.Flags())
			if err != nil {
				return err
			}
			if tlsCert != "" {
				if cfg.TLS, err = gatewayTLS(tlsCert, tlsKey); err != nil {
					return err
				}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			defer startTracing("yard-gateway", f.logger())()
			if oc != nil {
				if cfg.OIDC, err = gateway.NewOIDC(ctx, *oc); err != nil {
					return err
				}
			}
			nc, err := f.connect("gateway", append(liveness(), nats.MaxReconnects(-1), nats.CustomInboxPrefix(roles.GatewayInbox))...)
			if err != nil {
				return err
			}
			defer nc.Close()
			m, err := mf.serve(ctx, f.io.ErrOut)
			if err != nil {
				return err
			}
			cfg.Metrics = m
			return runGateway(ctx, f, nc, cfg, nil)
		},
	}
	cmd.Flags().StringVar(&addr, "http", gateway.DefaultAddr, "HTTP listen address")
	cmd.Flags().BoolVar(&allowPrivate, "allow-private-callbacks", false, "accept callback URLs on loopback and private addresses (local development)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM, the chain after it; with --tls-key)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	limits.add(cmd.Flags())
	oidc.add(cmd.Flags())
	mf.add(cmd.Flags(), "")
	return cmd
}

// gatewayTLS loads a certificate and its key for the gateway to serve
// HTTPS with. An error names the file at fault.
func gatewayTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && pe.Path == certFile:
		return nil, fmt.Errorf("TLS certificate %s: %v", certFile, pe.Err)
	case errors.As(err, &pe):
		return nil, fmt.Errorf("TLS key %s: %v", pe.Path, pe.Err)
	case err != nil:
		return nil, fmt.Errorf("TLS certificate %s with key %s: %v", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// oidcFlags say which OIDC provider's tokens the gateway accepts.
type oidcFlags struct {
	issuer, audience  string
	jwksURL, jwksFile string
	claim, prefix     string
}

func (o *oidcFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&o.issuer, "oidc-issuer", "", "accept JWT bearer tokens from this OIDC provider; their iss must equal it exactly (with --oidc-audience)")
	fs.StringVar(&o.audience, "oidc-audience", "", "the audience tokens must be issued for (their aud); required with --oidc-issuer")
	fs.StringVar(&o.jwksURL, "oidc-jwks-url", "", "the provider's key set URL (default: discovered from <issuer>/.well-known/openid-configuration)")
	fs.StringVar(&o.jwksFile, "oidc-jwks-file", "", "a local key set (JWKS) file to verify tokens with instead of the network; read again when it changes")
	fs.StringVar(&o.claim, "oidc-claim", gateway.DefaultOIDCClaim, "the token claim listing the functions granted (a space-separated string or an array)")
	fs.StringVar(&o.prefix, "oidc-prefix", gateway.DefaultOIDCPrefix, "the prefix marking a function in that claim (fn:orders grants orders)")
}

// config checks the flags; nil when no provider is configured.
func (o *oidcFlags) config(fs *pflag.FlagSet) (*gateway.OIDCConfig, error) {
	if o.issuer == "" && o.audience == "" {
		for _, name := range []string{"oidc-jwks-url", "oidc-jwks-file", "oidc-claim", "oidc-prefix"} {
			if fs.Changed(name) {
				return nil, usageError("--%s needs --oidc-issuer and --oidc-audience", name)
			}
		}
		return nil, nil
	}
	switch {
	case o.issuer == "":
		return nil, usageError("--oidc-audience needs --oidc-issuer: give both to accept OIDC tokens, or neither")
	case o.audience == "":
		return nil, usageError("--oidc-issuer needs --oidc-audience: give both to accept OIDC tokens, or neither")
	case o.jwksURL != "" && o.jwksFile != "":
		return nil, usageError("--oidc-jwks-url and --oidc-jwks-file: choose one")
	case strings.TrimSpace(o.claim) == "" || strings.TrimSpace(o.prefix) == "":
		return nil, usageError("--oidc-claim and --oidc-prefix must not be empty")
	}
	return &gateway.OIDCConfig{Issuer: o.issuer, Audience: o.audience, JWKSURL: o.jwksURL, JWKSFile: o.jwksFile,
		Claim: o.claim, Prefix: o.prefix}, nil
}

// gatewayFlags are the gateway's CORS allowlist and limits, as flags.
type gatewayFlags struct {
	corsOrigins   []string
	maxConns      int
	maxConnsPerIP int
	anonymousRate string
	keyRate       string
}

func (g *gatewayFlags) add(fs *pflag.FlagSet) {
	fs.StringArrayVar(&g.corsOrigins, "cors-origin", nil, "a browser origin allowed to call the gateway (https://shop.example); repeat for more; none: no CORS")
	fs.IntVar(&g.maxConns, "max-conns", 0, fmt.Sprintf("most open HTTP connections in total (default %d, or a quarter of the open-file limit if less; -1: no cap)", gateway.DefaultMaxConns))
	fs.IntVar(&g.maxConnsPerIP, "max-conns-per-ip", 0, fmt.Sprintf("most open HTTP connections of one client address (default %d, at most --max-conns; -1: no cap)", gateway.DefaultMaxConnsPerIP))
	fs.StringVar(&g.anonymousRate, "anonymous-rate", fmt.Sprintf("%d/s", gateway.DefaultAnonymousRate),
		"rate limit of each client address without credentials: <n>/s, <n>/m, <n>/h, or off")
	fs.StringVar(&g.keyRate, "key-rate", fmt.Sprintf("%d/s", gateway.DefaultPrincipalRate),
		"rate limit of each API key or token that names none of its own: <n>/s, <n>/m, <n>/h, or off")
}

// apply checks the flags and sets them in cfg.
func (g *gatewayFlags) apply(cfg *gateway.Config) error {
	for _, o := range g.corsOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return usageError("--cors-origin %q: want an origin, scheme://host[:port], such as https://shop.example", o)
		}
		cfg.CORSOrigins = append(cfg.CORSOrigins, strings.TrimSuffix(o, "/"))
	}
	if g.maxConns < -1 || g.maxConnsPerIP < -1 {
		return usageError("--max-conns and --max-conns-per-ip: want a positive number, or -1 for no cap")
	}
	cfg.MaxConns, cfg.MaxConnsPerIP = g.maxConns, g.maxConnsPerIP
	var err error
	if cfg.AnonymousRate, cfg.AnonymousBurst, err = rateFlag("--anonymous-rate", g.anonymousRate); err != nil {
		return err
	}
	cfg.PrincipalRate, cfg.PrincipalBurst, err = rateFlag("--key-rate", g.keyRate)
	return err
}

// rateFlag reads a rate limit flag; "off" is no limit (a negative rate).
func rateFlag(name, v string) (float64, int, error) {
	if v == "off" {
		return -1, 0, nil
	}
	r, burst, err := apikeys.ParseRate(v)
	if err != nil || r == 0 {
		return 0, 0, usageError("%s %q: want <n>/s, <n>/m or <n>/h (such as 20/s), or off", name, v)
	}
	return r, burst, nil
}

// runGateway serves HTTP until ctx ends. ready, when set, is called once
// the gateway listens.
func runGateway(ctx context.Context, f *factory, nc *nats.Conn, cfg gateway.Config, ready func(string)) error {
	addr := cfg.Addr
	cfg.Logger = f.logger()
	g, err := gateway.New(ctx, nc, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	ln, err := g.Listen()
	var inUse *gateway.AddrInUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("HTTP address %s is already in use; pick another with --http", addr)
	}
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr().String())
	} else {
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
		}
		fmt.Fprintf(f.io.ErrOut, "gateway on %s://%s, NATS %s. Ctrl-C stops.\n", scheme, ln.Addr(), nc.ConnectedUrlRedacted())
	}
	return g.Serve(ctx, ln)
}
