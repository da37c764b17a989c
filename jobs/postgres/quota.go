package postgres

import (
	"context"
	"fmt"

	"github.com/tako-run/tako/jobs"
)

// quotaLockClass is the first half of the two-part advisory lock key that
// LockAPIKey takes; the second is a hash of the key's name. It spells
// "tako". Two-part keys never collide with the single bigint keys of
// LockSubmissions and Migrate.
const quotaLockClass int32 = 0x74616b6f

const lockAPIKeySQL = `SELECT pg_advisory_xact_lock($1, hashtext($2))`

// LockAPIKey takes a transaction-scoped advisory lock on the quotas of the
// API key named apiKey, across all nodes, until q's transaction ends: a
// count of its executions and the change that follows it are then exact.
// q must be a transaction: on a pool the lock would be released at once.
func (s *Store) LockAPIKey(ctx context.Context, q DBTX, apiKey string) error {
	if _, err := q.Exec(ctx, lockAPIKeySQL, quotaLockClass, apiKey); err != nil {
		return fmt.Errorf("lock api key quota: %w", err)
	}
	return nil
}

// The counts of CountActive. The status is written out, not a parameter,
// so that the partial index on (api_key, status) for queued and running
// executions answers them whatever plan PostgreSQL caches.
const (
	countQueuedOfKeySQL = `
SELECT count(*) FROM (
    SELECT 1 FROM tako_executions
    WHERE api_key = $1 AND status = 'queued' AND id IS DISTINCT FROM nullif($2, '')::uuid LIMIT $3
) AS q`
	countRunningOfKeySQL = `
SELECT count(*) FROM (
    SELECT 1 FROM tako_executions
    WHERE api_key = $1 AND status = 'running' AND id IS DISTINCT FROM nullif($2, '')::uuid LIMIT $3
) AS q`
)

// CountActive returns how many executions the API key named apiKey has in
// status, queued or running, across all nodes, not counting the execution
// except ("" for none) and counting no further than upTo: a quota check
// only needs to know whether the key is at its limit.
func (s *Store) CountActive(ctx context.Context, q DBTX, apiKey string, status jobs.Status, except string, upTo int) (int, error) {
	var sql string
	switch status {
	case jobs.StatusQueued:
		sql = countQueuedOfKeySQL
	case jobs.StatusRunning:
		sql = countRunningOfKeySQL
	default:
		return 0, fmt.Errorf("count executions of api key: status %q is neither queued nor running", status)
	}
	var n int
	if err := s.db(q).QueryRow(ctx, sql, apiKey, except, upTo).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s executions of api key: %w", status, err)
	}
	return n, nil
}
