package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrationFiles holds tako's schema migrations, NNN_name.up.sql, applied
// in the order of NNN.
//
//go:embed migrations/*.up.sql
var migrationFiles embed.FS

// migrateLockKey is the session advisory lock that serializes Migrate
// across processes sharing a database. Any constant works as long as
// nothing else uses it; this one spells "takomigr".
const migrateLockKey int64 = 0x74616b6f6d696772

const (
	migrateLockSQL   = `SELECT pg_advisory_lock($1)`
	migrateUnlockSQL = `SELECT pg_advisory_unlock($1)`

	createMigrationsTableSQL = `
CREATE TABLE IF NOT EXISTS tako_migrations (
    version    int PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`
	appliedVersionsSQL = `SELECT version FROM tako_migrations`
	recordVersionSQL   = `INSERT INTO tako_migrations (version) VALUES ($1)`
)

// migration is one of tako's embedded schema migrations.
type migration struct {
	version int
	name    string
	sql     string
}

// Migrate brings the database behind pool up to date: River's migrations
// first, then tako's, each of tako's versions in its own transaction and
// recorded in tako_migrations. It is idempotent, and callers in several
// processes may run it at once: a session advisory lock, held on one
// connection of pool, lets one of them work while the others wait. River
// migrates through other connections of pool, so pool needs at least two.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if pool.Config().MaxConns < 2 {
		return errors.New("migrate: the pool needs at least 2 connections")
	}
	ours, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, migrateLockSQL, migrateLockKey); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// A session lock outlives a cancelled context; a connection whose
		// unlock failed must not go back to the pool still holding it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), migrateUnlockSQL, migrateLockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	if err := applyMigrations(ctx, conn.Conn(), ours); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// applyMigrations applies those of ms that tako_migrations does not list,
// in order, one transaction each.
func applyMigrations(ctx context.Context, conn *pgx.Conn, ms []migration) error {
	if _, err := conn.Exec(ctx, createMigrationsTableSQL); err != nil {
		return fmt.Errorf("create tako_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, appliedVersionsSQL)
	if err != nil {
		return fmt.Errorf("read tako_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("read tako_migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, recordVersionSQL, m.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply %s: %w", m.name, err)
		}
	}
	return nil
}

// loadMigrations reads the embedded migrations, ordered by version.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.up.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(names))
	seen := make(map[int]string, len(names))
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.up.sql", base)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, version)
		}
		seen[version] = base
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: version, name: base, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}
