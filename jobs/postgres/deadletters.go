package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs"
)

// The page sizes of DeadLetters.
const (
	DefaultDeadLetterLimit = 100
	MaxDeadLetterLimit     = 1000
)

// deadLetterFromSQL is what every statement on the dead-letter queue reads
// from: River's jobs that run executions (kind tako_execute, aliased j),
// joined to their executions (aliased e, as scope expects). A job whose
// execution is gone (retention) has nothing to show or retry and is left
// out.
const deadLetterFromSQL = `
FROM river_job j
JOIN tako_executions e ON e.river_job_id = j.id`

// The conditions that make a River job a dead letter: one of tako's
// execution jobs that River discarded, after its last attempt or when its
// rescuer found it stuck on its last attempt. The kind is written out
// here and in the dispatcher's job arguments; they must agree.
const (
	deadLetterKindSQL  = `j.kind = 'tako_execute'`
	deadLetterStateSQL = `j.state = 'discarded'`
)

// deadLetterColumns is the select list that scanDeadLetter reads. The
// error is the execution's; when it has none (River's rescuer discarded
// the job and maintenance has not ended the execution yet), it is the
// internal_error maintenance will give it, with a fixed message: River's
// own error text is tako's internals, not the caller's.
const deadLetterColumns = `
    j.id, e.id::text, e.job_type, coalesce(e.api_key, ''), coalesce(e.correlation_id, ''),
    e.code, e.input, coalesce(e.error->>'type', 'internal_error'),
    coalesce(nullif(e.error->>'message', ''), 'the queue gave up on the job after its last attempt'),
    j.attempt, e.created_at, j.finalized_at`

// The parts of DeadLetters' query.
const (
	deadLetterErrorTypeSQL = `coalesce(e.error->>'type', 'internal_error') = $%d`
	deadLetterOrderSQL     = ` ORDER BY j.finalized_at DESC, j.id DESC LIMIT $%d OFFSET $%d`
)

// deadLetterWhere is the clause that selects the dead letters c may see.
// A statement with parameters of its own passes them as args.
func deadLetterWhere(c jobs.Caller, args ...any) *where {
	w := &where{args: args}
	w.cond(deadLetterKindSQL)
	w.cond(deadLetterStateSQL)
	w.scope(c)
	return w
}

// errDeadLetterNotFound is the domain error for a dead-letter entry that
// does not exist or is not the caller's; the detail is Tako VM's.
func errDeadLetterNotFound() *jobs.Error {
	return jobs.Errorf(jobs.ENOTFOUND, "DLQ entry not found")
}

// scanDeadLetter reads one row of deadLetterColumns.
func scanDeadLetter(row pgx.Row) (jobs.DeadLetter, error) {
	var d jobs.DeadLetter
	err := row.Scan(&d.ID, &d.ExecutionID, &d.JobType, &d.APIKey, &d.CorrelationID,
		&d.Code, &d.InputJSON, &d.ErrorType, &d.ErrorMessage,
		&d.Attempts, &d.CreatedAt, &d.FailedAt)
	return d, err
}

// DeadLetters returns one page of the dead-letter queue c may see, newest
// failure first (then highest River job id): the async executions whose
// River job was discarded, with f.ErrorType ("" for any) as their error
// type. A caller who is not an admin sees only its own executions,
// whatever f says. Limit defaults to DefaultDeadLetterLimit and is capped
// at MaxDeadLetterLimit; a negative Offset counts as 0. Items is never
// nil.
func (s *Store) DeadLetters(ctx context.Context, c jobs.Caller, f jobs.DeadLetterFilter) (jobs.DeadLetterPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultDeadLetterLimit
	}
	limit = min(limit, MaxDeadLetterLimit)
	offset := max(f.Offset, 0)

	w := deadLetterWhere(c)
	if f.ErrorType != "" {
		w.add(deadLetterErrorTypeSQL, f.ErrorType)
	}
	// One more than the page tells whether entries exist past it.
	args := append(w.args, limit+1, offset)
	query := `SELECT ` + deadLetterColumns + deadLetterFromSQL + w.String() +
		fmt.Sprintf(deadLetterOrderSQL, len(args)-1, len(args))

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return jobs.DeadLetterPage{}, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	page := jobs.DeadLetterPage{Items: []jobs.DeadLetter{}}
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return jobs.DeadLetterPage{}, fmt.Errorf("list dead letters: %w", err)
		}
		page.Items = append(page.Items, d)
	}
	if err := rows.Err(); err != nil {
		return jobs.DeadLetterPage{}, fmt.Errorf("list dead letters: %w", err)
	}
	if len(page.Items) > limit {
		page.Items, page.HasMore = page.Items[:limit], true
	}
	return page, nil
}

const deadLetterStatsSQL = `SELECT coalesce(e.error->>'type', 'internal_error'), count(*)`

// DeadLetterStats counts the dead-letter entries c may see, in all and by
// error type. An entry whose execution has not ended yet counts under "".
// ByErrorType is never nil.
func (s *Store) DeadLetterStats(ctx context.Context, c jobs.Caller) (jobs.DeadLetterStats, error) {
	w := deadLetterWhere(c)
	rows, err := s.pool.Query(ctx, deadLetterStatsSQL+deadLetterFromSQL+w.String()+` GROUP BY 1`, w.args...)
	if err != nil {
		return jobs.DeadLetterStats{}, fmt.Errorf("count dead letters: %w", err)
	}
	defer rows.Close()
	stats := jobs.DeadLetterStats{ByErrorType: map[string]int{}}
	for rows.Next() {
		var errType string
		var n int
		if err := rows.Scan(&errType, &n); err != nil {
			return jobs.DeadLetterStats{}, fmt.Errorf("count dead letters: %w", err)
		}
		stats.ByErrorType[errType] = n
		stats.Total += n
	}
	if err := rows.Err(); err != nil {
		return jobs.DeadLetterStats{}, fmt.Errorf("count dead letters: %w", err)
	}
	return stats, nil
}

const lockDeadLetterSQL = `SELECT ` + executionColumns + deadLetterFromSQL

// LockDeadLetter locks dead-letter entry id (a River job id) within q, a
// transaction, until it ends, and returns the entry's execution as stored
// (without artifacts). While the lock is held River changes nothing of
// the job, so the caller can delete or retry it knowing it is still a
// dead letter. A job that does not exist, is not a discarded execution
// job, has no execution or is not c's to see gives the same ENOTFOUND
// *jobs.Error, "DLQ entry not found".
func (s *Store) LockDeadLetter(ctx context.Context, q DBTX, c jobs.Caller, id int64) (*jobs.Execution, error) {
	w := deadLetterWhere(c, id)
	w.cond("j.id = $1")
	e, err := scanExecution(s.db(q).QueryRow(ctx, lockDeadLetterSQL+w.String()+` FOR UPDATE OF j`, w.args...))
	if err != nil {
		return nil, notFoundIfNoRows(err, errDeadLetterNotFound(), "lock dead letter")
	}
	return e, nil
}

// reopenSQL is the statement of Reopen around its WHERE clause: it clears
// every column that Finish and MarkRunning write, so that the record reads
// as the queued execution it was before its first attempt, returns it, and
// deletes its artifacts (Finish keeps the first of two artifacts of one
// name: old ones would shadow the next run's). Attempt stays: the attempt
// that runs next sets it.
func reopenSQL(w *where) string {
	return `
WITH u AS (
    UPDATE tako_executions e SET
        status = 'queued', started_at = NULL, finished_at = NULL, node = NULL,
        exit_code = NULL, stdout = NULL, stderr = NULL,
        stdout_truncated = false, stderr_truncated = false, artifacts_truncated = false,
        output = NULL, error = NULL, timing = NULL, runtime = NULL, start_kind = NULL, image = NULL` +
		w.String() + `
    RETURNING ` + executionColumns + `
),
d AS (DELETE FROM tako_artifacts a USING u WHERE a.execution_id = u.id::uuid)
SELECT * FROM u`
}

// Reopen puts execution id back to queued within q (the pool when nil),
// whatever its status, with its result, its start and its artifacts
// cleared, and returns it as now stored: how a dead letter's execution is
// run again as the same execution. It is the one exception to "terminal
// statuses never change", so callers hold the entry's lock
// (LockDeadLetter) and retry its River job in the same transaction.
// ENOTFOUND when the execution does not exist for c; then nothing
// changes.
func (s *Store) Reopen(ctx context.Context, q DBTX, c jobs.Caller, id string) (*jobs.Execution, error) {
	if !validID(id) {
		return nil, errJobNotFound()
	}
	w := byID(c, id)
	e, err := scanExecution(s.db(q).QueryRow(ctx, reopenSQL(w), w.args...))
	if err != nil {
		return nil, notFoundIfNoRows(err, errJobNotFound(), "reopen execution")
	}
	return e, nil
}
