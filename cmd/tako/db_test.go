package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5"
)

// testDatabaseURL is the PostgreSQL server the tests create their databases
// on; .ci/run starts it.
func testDatabaseURL() string {
	if u := os.Getenv("TAKO_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// createDatabase creates a fresh database for one test server and returns
// its URL and a function that drops it.
func createDatabase() (string, func(), error) {
	ctx := context.Background()
	admin := testDatabaseURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("test database server %s: %w (CI starts it; locally run `pg_ctlcluster 15 main start`)", admin, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "tako_e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	drop := func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
