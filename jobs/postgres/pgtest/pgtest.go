// Package pgtest gives tests a fresh PostgreSQL database of their own on
// the test server named by TAKO_TEST_DATABASE_URL, and drops it when the
// test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/jobs/postgres"
)

// DefaultURL is the test server used when TAKO_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"

// poolSize is the size of the pool DB returns: enough for tests that race
// many connections against each other.
const poolSize = 32

// setupTimeout bounds creating, migrating and dropping a test database.
const setupTimeout = 2 * time.Minute

// DB returns a pool on a fresh database, tako_test_<random>, that
// postgres.Migrate has brought up to date. The pool is closed and the
// database dropped when the test ends. Without a reachable server the test
// is skipped, or fails when the environment variable CI is set.
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := postgres.Connect(ctx, dbURL, poolSize)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Registered after URL's cleanup, so it runs before the drop.
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return pool
}

// URL creates a fresh, empty database, tako_test_<random>, and returns its
// URL without connecting to it, for tests that start a whole server on it.
// The database is dropped, its connections terminated first, when the
// test ends. Without a reachable server the test is skipped, or fails when
// the environment variable CI is set.
func URL(t testing.TB) string {
	t.Helper()
	adminURL := os.Getenv("TAKO_TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	admin, err := postgres.Connect(ctx, adminURL, 2)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %v", err)
		}
		t.Skipf("pgtest: %v", err)
	}
	defer admin.Close()

	name := "tako_test_" + randomHex(8)
	if err := createDatabase(ctx, admin, name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := dropDatabase(ctx, adminURL, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: TAKO_TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String()
}

// createDatabase creates database name. CREATE DATABASE fails when another
// session is using the template at that moment, so it retries on that.
func createDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	for {
		_, err := admin.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dropDatabase terminates the sessions on database name and drops it.
func dropDatabase(ctx context.Context, adminURL, name string) error {
	admin, err := postgres.Connect(ctx, adminURL, 2)
	if err != nil {
		return err
	}
	defer admin.Close()
	const terminate = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`
	if _, err := admin.Exec(ctx, terminate, name); err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// randomHex returns n random bytes, hex encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
