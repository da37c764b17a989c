package postgres_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
)

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-pw"
	port := closedPort(t)
	refused := fmt.Sprintf("cannot reach PostgreSQL at 127.0.0.1:%d (connection refused); start it or fix database.url", port)

	// A URL for the test server with a wrong password; only checked when
	// that server is up.
	wrongPassword := ""
	if u, err := url.Parse(testServerURL()); err == nil && u.User != nil {
		u.User = url.UserPassword(u.User.Username(), secret)
		wrongPassword = u.String()
	}

	tests := []struct {
		name    string
		url     string
		want    string // the whole message, when exact
		prefix  string // else its start
		needsDB bool
	}{
		{name: "closed port", url: fmt.Sprintf("postgres://tako:%s@127.0.0.1:%d/tako?sslmode=disable", secret, port), want: refused},
		{name: "closed port keyword form", url: fmt.Sprintf("host=127.0.0.1 port=%d user=tako password=%s sslmode=disable", port, secret), want: refused},
		{name: "malformed url", url: "postgres://tako:" + secret + "@127.0.0.1:notaport/tako", prefix: "invalid database.url: "},
		{name: "wrong password", url: wrongPassword, prefix: "PostgreSQL at ", needsDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.needsDB {
				pgtest.URL(t) // skips, or fails in CI, without a server
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			pool, err := postgres.Connect(ctx, tt.url, 2)
			if err == nil {
				pool.Close()
				t.Fatal("Connect succeeded, want an error")
			}
			msg := err.Error()
			if tt.want != "" && msg != tt.want {
				t.Errorf("error = %q, want %q", msg, tt.want)
			}
			if !strings.HasPrefix(msg, tt.prefix) {
				t.Errorf("error = %q, want prefix %q", msg, tt.prefix)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q shows the password", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is more than one line", msg)
			}
		})
	}
}

func TestWaitReady(t *testing.T) {
	t.Parallel()
	t.Run("gives up after the timeout", func(t *testing.T) {
		t.Parallel()
		port := closedPort(t)
		_, err := postgres.WaitReady(context.Background(), fmt.Sprintf("postgres://tako:pw@127.0.0.1:%d/tako", port), 2, 300*time.Millisecond)
		want := fmt.Sprintf("cannot reach PostgreSQL at 127.0.0.1:%d (connection refused); start it or fix database.url", port)
		if err == nil || err.Error() != want {
			t.Fatalf("WaitReady error = %v, want %q", err, want)
		}
	})
	t.Run("connects to a running server", func(t *testing.T) {
		t.Parallel()
		u := pgtest.URL(t)
		pool, err := postgres.WaitReady(context.Background(), u, 3, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if got := pool.Config().MaxConns; got != 3 {
			t.Errorf("MaxConns = %d, want 3", got)
		}
	})
}

// testServerURL is the test server's URL, as pgtest reads it.
func testServerURL() string {
	if u := os.Getenv("TAKO_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return pgtest.DefaultURL
}

func TestAsyncCommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t)
	async, err := postgres.AsyncCommit(context.Background(), pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer async.Close()
	setting := func(p *pgxpool.Pool) string {
		var v string
		if err := p.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := setting(async); got != "off" {
		t.Errorf("the async pool's synchronous_commit is %q, want off", got)
	}
	if got := setting(pool); got == "off" {
		t.Errorf("the main pool's synchronous_commit became off too")
	}
	if got := async.Config().MaxConns; got != 2 {
		t.Errorf("MaxConns = %d, want 2", got)
	}
	// Same database: a row written through one is there through the other.
	var db1, db2 string
	pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&db1)
	async.QueryRow(context.Background(), "SELECT current_database()").Scan(&db2)
	if db1 == "" || db1 != db2 {
		t.Errorf("the async pool is on database %q, the main one on %q", db2, db1)
	}
}
