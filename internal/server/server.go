// Package server starts the embedded NATS server with JetStream that
// `yard up`, `yard server` and the tests run on. It owns the few choices
// that make the embedded server safe to hand to users: loopback by default,
// file storage in a directory of the user's choosing, a documented fsync
// policy, and a clear error when the port is taken.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Defaults for the embedded server.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 4222
)

// Config is the embedded server's identity and storage. Zero values give a
// loopback server on DefaultPort with JetStream in ./.yard/jetstream.
type Config struct {
	Host string // default 127.0.0.1
	Port int    // default 4222; -1 picks a free port
	// StoreDir is where JetStream keeps streams, key-value buckets and
	// object stores. Required.
	StoreDir string
	// SyncInterval is how often JetStream fsyncs its files; zero keeps the
	// server's default (2 minutes). Writes between syncs survive a process
	// crash (they are in the OS page cache) but not a power loss.
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before acknowledging it: survives power
	// loss at a measured throughput cost (see docs/operations.md).
	SyncAlways bool
	// Name of the server; defaults to one derived by nats-server.
	Name   string
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients.
	ReadyTimeout time.Duration
	// Users, when set, are the only identities the server accepts, each
	// with its own permissions.
	Users []*natsserver.User
}

// AddrInUseError reports that the server's port is taken.
type AddrInUseError struct {
	Addr string
	Err  error
}

func (e *AddrInUseError) Error() string {
	return fmt.Sprintf("address %s is already in use", e.Addr)
}

func (e *AddrInUseError) Unwrap() error { return e.Err }

// Start runs an embedded NATS server with JetStream and waits until it
// accepts clients. The caller owns the server: Shutdown and WaitForShutdown.
func Start(cfg Config) (*natsserver.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("server: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.Port > 0 {
		// nats-server treats a failed listen as fatal and, without a logger
		// that exits, just never becomes ready. Probe first so the user gets
		// a precise error instead of a timeout.
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, &AddrInUseError{Addr: addr, Err: err}
		}
		ln.Close()
	}
	opts := &natsserver.Options{
		ServerName:   cfg.Name,
		Host:         cfg.Host,
		Port:         cfg.Port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		NoSigs:       true,
		MaxPayload:   8 << 20,
		Users:        cfg.Users,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{l: cfg.Logger.With("component", "nats")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("server: not ready for connections after %s", cfg.ReadyTimeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, errors.New("server: JetStream did not start (check that the data directory is writable)")
	}
	return ns, nil
}

// slogAdapter routes nats-server's log lines to slog. Notices are debug
// level: `yard up` prints its own summary and the server's banner is noise.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
