package bench

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgStatReader reads pg_stat_database for the database its URL names.
type pgStatReader struct {
	url string
}

// NewPGStatReader returns a reader of pg_stat_database's row for the
// database url names. Each read opens a connection of its own and closes
// it: a new session has no cached statistics snapshot
// (stats_fetch_consistency), and its own small transaction is flushed when
// it closes, so every interval between two reads carries one. It needs
// PostgreSQL 14 or newer (active_time).
func NewPGStatReader(url string) DatabaseCounterReader {
	return pgStatReader{url: url}
}

// ReadCounters implements DatabaseCounterReader.
func (r pgStatReader) ReadCounters(ctx context.Context) (DatabaseCounters, error) {
	var c DatabaseCounters
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		return c, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return c, fmt.Errorf("server version: %w", err)
	}
	if version < 140000 {
		return c, fmt.Errorf("PostgreSQL %d has no pg_stat_database.active_time: --db-cost needs 14 or newer", version/10000)
	}
	err = conn.QueryRow(ctx, `SELECT datname, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,
		tup_returned, tup_fetched, blks_hit, blks_read, active_time
		FROM pg_stat_database WHERE datname = current_database()`).Scan(
		&c.Database, &c.XactCommit, &c.XactRollback, &c.TupInserted, &c.TupUpdated, &c.TupDeleted,
		&c.TupReturned, &c.TupFetched, &c.BlksHit, &c.BlksRead, &c.ActiveTimeMS)
	if err != nil {
		return c, fmt.Errorf("query pg_stat_database: %w", err)
	}
	return c, nil
}
