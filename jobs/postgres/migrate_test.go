package postgres_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
)

// assertSchema checks that both tako's and River's tables exist and that
// tako's migrations are recorded once each.
func assertSchema(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"tako_executions", "tako_artifacts", "tako_migrations", "river_job", "river_migration"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("table %s is missing", table)
		}
	}
	var rows, versions int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM tako_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	// One row per embedded migration, each once.
	files, err := filepath.Glob("migrations/*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	migrations := len(files)
	if rows != migrations || versions != migrations {
		t.Errorf("tako_migrations has %d rows for %d versions, want %d for %d", rows, versions, migrations, migrations)
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	pool := pgtest.DB(t) // migrated once already
	for range 2 {
		if err := postgres.Migrate(context.Background(), pool); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
	}
	assertSchema(t, pool)
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := context.Background()
	pools := make([]*pgxpool.Pool, 2) // as two processes would
	for i := range pools {
		p, err := postgres.Connect(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pools[i] = p
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pools))
	for i, p := range pools {
		wg.Go(func() { errs[i] = postgres.Migrate(ctx, p) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate on pool %d: %v", i, err)
		}
	}
	assertSchema(t, pools[0])
}

func TestMigrateNeedsTwoConnections(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	pool, err := postgres.Connect(context.Background(), url, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.Migrate(context.Background(), pool); err == nil {
		t.Fatal("Migrate on a one-connection pool succeeded, want an error")
	}
}
