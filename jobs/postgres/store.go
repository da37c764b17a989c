package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/jobs"
)

// NotifyChannel is the PostgreSQL notification channel on which Finish
// announces, with the execution id as payload, that an execution has
// ended. Waiters on any node LISTEN on it.
const NotifyChannel = "tako_execution_done"

// submitLockKey is the transaction advisory lock taken by LockSubmissions.
// It spells "takosubm".
const submitLockKey int64 = 0x74616b6f7375626d

// DBTX is what the store needs to run a statement: satisfied by
// *pgxpool.Pool, *pgx.Conn and pgx.Tx, so that callers can make store
// calls part of their own transaction (for example together with River's
// insert of the job that will run the execution).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store keeps execution records and their artifacts in PostgreSQL. It is
// safe for concurrent use; every node of a tako cluster may hold one on
// the same database.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store on pool, whose schema Migrate has brought up to
// date.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Pool returns the pool the store works on, for callers that start their
// own transactions.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

const lockSubmissionsSQL = `SELECT pg_advisory_xact_lock($1)`

// LockSubmissions takes a transaction-scoped advisory lock that serializes
// submissions across all nodes until q's transaction ends, so that a
// CountQueued check against queue.max_pending and the Insert that follows
// it are exact. q must be a transaction: on a pool the lock would be
// released at once.
func (s *Store) LockSubmissions(ctx context.Context, q DBTX) error {
	if _, err := q.Exec(ctx, lockSubmissionsSQL, submitLockKey); err != nil {
		return fmt.Errorf("lock submissions: %w", err)
	}
	return nil
}

const countQueuedSQL = `
SELECT count(*) FROM (SELECT 1 FROM tako_executions WHERE status = 'queued' LIMIT $1) AS q`

// CountQueued returns the number of executions waiting to run, over all job
// types, counting no further than upTo: the submit path only needs to know
// whether the queue is over its limit, and a long backlog must not make
// every submission slower.
func (s *Store) CountQueued(ctx context.Context, q DBTX, upTo int) (int, error) {
	var n int
	if err := s.db(q).QueryRow(ctx, countQueuedSQL, upTo).Scan(&n); err != nil {
		return 0, fmt.Errorf("count queued executions: %w", err)
	}
	return n, nil
}

// queueDepthsSQL counts the queued executions of each job type, on the
// (status, job_type, seq) index.
const queueDepthsSQL = `
SELECT job_type, count(*) FROM tako_executions WHERE status = 'queued' GROUP BY job_type`

// QueueDepths returns the queued executions of each job type that has any.
func (s *Store) QueueDepths(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, queueDepthsSQL)
	if err != nil {
		return nil, fmt.Errorf("count queued executions: %w", err)
	}
	defer rows.Close()
	depths := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("count queued executions: %w", err)
		}
		depths[name] = n
	}
	return depths, rows.Err()
}

// db returns q, or the pool when q is nil.
func (s *Store) db(q DBTX) DBTX {
	if q == nil {
		return s.pool
	}
	return q
}

// errJobNotFound is the domain error for an execution that does not exist.
func errJobNotFound() *jobs.Error {
	return jobs.Errorf(jobs.ENOTFOUND, "Job not found")
}

// validID reports whether id can name an execution. Anything else cannot
// exist, and must not reach PostgreSQL, which would reject it as a type
// error instead of finding nothing.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil
}

// notFoundIfNoRows maps pgx.ErrNoRows to notFound and wraps other errors
// with context.
func notFoundIfNoRows(err error, notFound *jobs.Error, context string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound
	}
	return fmt.Errorf("%s: %w", context, err)
}
