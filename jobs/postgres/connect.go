// Package postgres is tako's PostgreSQL store: the schema and its
// migrations, the execution records and their artifacts, and the pool
// that carries them. River's tables live in the same database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultConnectTimeout bounds one connection attempt when the URL sets no
// connect_timeout, so that a host that drops packets fails fast too.
const defaultConnectTimeout = 5 * time.Second

// Connect opens a pool of at most maxConns connections to url and checks
// that the server answers. When it cannot, the error is one sentence that
// names the server's host and port (never the password) and what to do,
// for example "cannot reach PostgreSQL at 127.0.0.1:5432 (connection
// refused); start it or fix database.url". A maxConns below 1 keeps pgx's
// default.
func Connect(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := poolConfig(url, maxConns)
	if err != nil {
		return nil, err
	}
	return connect(ctx, cfg)
}

// WaitReady is Connect for a server that is still starting, such as a
// container tako has just started: it retries until the server answers or
// timeout has passed, then returns Connect's error for the last attempt.
func WaitReady(ctx context.Context, url string, maxConns int, timeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := poolConfig(url, maxConns)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		pool, err := connect(ctx, cfg.Copy())
		if err == nil {
			return pool, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// AsyncCommit opens a second pool to pool's database, of at most maxConns
// connections, whose transactions commit without waiting for their WAL to
// reach the disk (synchronous_commit off). What it writes is visible to
// everyone at once and never corrupt, but a crash of the database server
// within about 600 ms (three wal_writer_delay) of a commit can lose it. It
// is for records whose loss costs no accepted work: the history of sync
// executions, whose callers already have their answer.
func AsyncCommit(ctx context.Context, pool *pgxpool.Pool, maxConns int) (*pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.MaxConns = int32(max(maxConns, 1))
	cfg.MinConns = 0
	return connect(ctx, cfg)
}

// connect opens a pool with cfg and pings the server.
func connect(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New(unreachable(cfg, err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, errors.New(unreachable(cfg, err))
	}
	return pool, nil
}

// poolConfig parses url into a pool configuration with maxConns.
func poolConfig(url string, maxConns int) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, fmt.Errorf("invalid database.url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	return cfg, nil
}

// unreachable turns a failed connection attempt into one sentence for an
// operator. It names host:port from cfg and a short cause, never the
// connection string, so no password can leak.
func unreachable(cfg *pgxpool.Config, err error) string {
	addr := cfg.ConnConfig.Host
	if !strings.HasPrefix(addr, "/") {
		addr = net.JoinHostPort(addr, strconv.Itoa(int(cfg.ConnConfig.Port)))
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered but refused us: wrong password, no such
		// database, still starting up.
		return fmt.Sprintf("PostgreSQL at %s refused the connection (%s); fix database.url", addr, pgErr.Message)
	}
	return fmt.Sprintf("cannot reach PostgreSQL at %s (%s); start it or fix database.url", addr, cause(err))
}

// cause names why a connection could not be made, in a few words.
func cause(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ENOENT):
		return "no such socket"
	}
	// Otherwise the innermost error: pgx's outer layers repeat the
	// connection parameters, the innermost says what went wrong.
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err.Error()
		}
		err = inner
	}
}
