package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs"
)

// insertAttempts bounds Insert's retries for the case where the row that
// held an idempotency key is deleted between the conflict and the read.
const insertAttempts = 3

const insertSQL = `
INSERT INTO tako_executions (
    id, status, mode, job_type, code, input, requirements, timeout_ms, startup_timeout_ms,
    started_at, attempt, node, idempotency_key, fingerprint, parent_id, relationship, correlation_id,
    api_key, callback_url, network_allow
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9,
    CASE WHEN $2 = 'running' THEN now() END, $10, nullif($11, ''), nullif($12, ''), nullif($13, ''),
    nullif($14, '')::uuid, nullif($15, ''), nullif($16, ''), nullif($17, ''), nullif($18, ''), $19
)
ON CONFLICT ((coalesce(api_key, '')), idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING created_at, started_at, seq`

const getByKeySQL = `SELECT ` + executionColumns + ` FROM tako_executions e
WHERE e.idempotency_key = $1 AND coalesce(e.api_key, '') = $2`

// Insert records the new execution e: its ID (a UUID chosen by the caller),
// Status (queued, or running for a sync run that starts at once), Mode and
// request fields. CreatedAt, Seq, and StartedAt for a running one, come
// from the database and are set in e.
//
// When e.IdempotencyKey is set and an execution with that key exists,
// Insert writes nothing and returns the existing one; the caller compares
// Fingerprint. The unique index decides, so concurrent inserts with one key
// from any number of connections or nodes create exactly one row. Text
// that PostgreSQL cannot store (invalid UTF-8, NUL) is replaced by U+FFFD.
func (s *Store) Insert(ctx context.Context, q DBTX, e *jobs.Execution) (existing *jobs.Execution, err error) {
	if e.Status != jobs.StatusQueued && e.Status != jobs.StatusRunning {
		return nil, fmt.Errorf("insert execution: status %q is neither queued nor running", e.Status)
	}
	input := []byte(e.InputJSON)
	if len(input) == 0 {
		input = []byte(`{}`)
	}
	input = cleanJSON(input)
	key := CleanText(e.IdempotencyKey)
	q = s.db(q)
	for range insertAttempts {
		err := q.QueryRow(ctx, insertSQL,
			e.ID, string(e.Status), string(e.Mode), CleanText(e.JobType), CleanText(e.Code), string(input),
			cleanTexts(e.Requirements), e.Timeout.Milliseconds(), e.StartupTimeout.Milliseconds(),
			e.Attempt, CleanText(e.Node), key, CleanText(e.Fingerprint),
			e.ParentID, string(e.Relationship), CleanText(e.CorrelationID),
			e.APIKey, CleanText(e.CallbackURL), e.NetworkAllow,
		).Scan(&e.CreatedAt, &e.StartedAt, &e.Seq)
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("insert execution: %w", err)
		}
		// The key is taken. Under READ COMMITTED this new statement sees
		// the row of the transaction that won.
		prev, err := scanExecution(q.QueryRow(ctx, getByKeySQL, key, e.APIKey))
		if err == nil {
			if err := fillArtifacts(ctx, q, prev); err != nil {
				return nil, fmt.Errorf("insert execution: read existing: %w", err)
			}
			return prev, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("insert execution: read existing: %w", err)
		}
		// The winner was deleted in between (retention): try again.
	}
	return nil, fmt.Errorf("insert execution: idempotency key %q kept changing hands", key)
}

const getSQL = `SELECT ` + executionColumns + ` FROM tako_executions e`

// Get returns the execution id with its Result (artifact metadata
// included, not their bytes) when it has ended, and its QueuePosition when
// it is queued. An id that does not exist, is not a UUID or is not c's to
// see gives an ENOTFOUND *jobs.Error: the same answer in all three cases.
func (s *Store) Get(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error) {
	if !validID(id) {
		return nil, errJobNotFound()
	}
	w := byID(c, id)
	e, err := scanExecution(s.pool.QueryRow(ctx, getSQL+w.String(), w.args...))
	if err != nil {
		return nil, notFoundIfNoRows(err, errJobNotFound(), "get execution")
	}
	if err := fillArtifacts(ctx, s.pool, e); err != nil {
		return nil, fmt.Errorf("get execution: %w", err)
	}
	return e, nil
}

// fillArtifacts sets the artifact metadata of e's Result, when it has one.
func fillArtifacts(ctx context.Context, q DBTX, e *jobs.Execution) error {
	if e.Result == nil {
		return nil
	}
	byID, err := artifactMeta(ctx, q, []string{e.ID})
	if err != nil {
		return err
	}
	e.Result.Artifacts = byID[e.ID]
	return nil
}

const statusSQL = `SELECT e.status FROM tako_executions e`

// Status returns the status of execution id, reading nothing else: what a
// long poll checks until the execution ends. ENOTFOUND as for Get.
func (s *Store) Status(ctx context.Context, c jobs.Caller, id string) (jobs.Status, error) {
	if !validID(id) {
		return "", errJobNotFound()
	}
	return statusOf(ctx, s.pool, c, id)
}

// statusOf returns the status of id as c sees it, or ENOTFOUND.
func statusOf(ctx context.Context, q DBTX, c jobs.Caller, id string) (jobs.Status, error) {
	var st string
	w := byID(c, id)
	if err := q.QueryRow(ctx, statusSQL+w.String(), w.args...).Scan(&st); err != nil {
		return "", notFoundIfNoRows(err, errJobNotFound(), "read status")
	}
	return jobs.Status(st), nil
}

const markRunningSQL = `
UPDATE tako_executions e SET status = 'running', started_at = now(), attempt = $2, node = nullif($3, '')`

// MarkRunning records that attempt number attempt of execution id has
// started on node, within q (the pool when nil): queued becomes running,
// and a running execution (an earlier attempt that died) takes the new
// attempt. It returns false and changes nothing when the execution has
// already ended, for example because it was cancelled while queued;
// ENOTFOUND when it does not exist for c.
func (s *Store) MarkRunning(ctx context.Context, q DBTX, c jobs.Caller, id string, attempt int, node string) (bool, error) {
	if !validID(id) {
		return false, errJobNotFound()
	}
	q = s.db(q)
	w := &where{args: []any{id, attempt, CleanText(node)}}
	w.cond("e.id = $1")
	w.cond("e.status IN ('queued', 'running')")
	w.scope(c)
	tag, err := q.Exec(ctx, markRunningSQL+w.String(), w.args...)
	if err != nil {
		return false, fmt.Errorf("mark execution running: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	if _, err := statusOf(ctx, q, c, id); err != nil {
		return false, fmt.Errorf("mark execution running: %w", err)
	}
	return false, nil
}

const requeueSQL = `UPDATE tako_executions e SET status = 'queued', started_at = NULL, node = NULL`

// Requeue puts a running execution back to queued after an infrastructure
// failure that will be retried. It does nothing to an execution that is
// not running, and gives ENOTFOUND for one that does not exist for c.
func (s *Store) Requeue(ctx context.Context, c jobs.Caller, id string) error {
	if !validID(id) {
		return errJobNotFound()
	}
	w := byID(c, id)
	w.cond("e.status = 'running'")
	tag, err := s.pool.Exec(ctx, requeueSQL+w.String(), w.args...)
	if err != nil {
		return fmt.Errorf("requeue execution: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := statusOf(ctx, s.pool, c, id); err != nil {
			return fmt.Errorf("requeue execution: %w", err)
		}
	}
	return nil
}

const finishSQL = `
UPDATE tako_executions e SET
    status = $2, finished_at = now(), exit_code = $3, stdout = $4, stderr = $5,
    stdout_truncated = $6, stderr_truncated = $7, output = $8, error = $9, timing = $10,
    runtime = nullif($11, ''), start_kind = nullif($12, ''), image = nullif($13, ''),
    artifacts_truncated = $14, egress = $15`

// finishWhere is the clause of finishSQL: execution id ($1 of args) for c,
// if it has not ended, and, with a holder, only while that holder still
// holds it. Terminal statuses never change.
func finishWhere(c jobs.Caller, args []any, h *Holder) *where {
	w := &where{args: args}
	w.cond("e.id = $1")
	w.cond("e.status IN ('queued', 'running')")
	if h != nil {
		w.args = append(w.args, CleanText(h.Node), h.Attempt)
		w.cond(fmt.Sprintf("e.node IS NOT DISTINCT FROM nullif($%d, '') AND e.attempt = $%d", len(w.args)-1, len(w.args)))
	}
	w.scope(c)
	return w
}

// Holder is who holds a running execution: the node that runs it, and the
// attempt. An execution taken from a node gone silent has another holder,
// or none while it waits in the queue again.
type Holder struct {
	// Node is the node's id; "" while queued.
	Node string
	// Attempt is the attempt's number, from 1.
	Attempt int
}

const notifySQL = `SELECT pg_notify($1, $2)`

// finishNotifySQL is finishSQL (with its clause) and the notification in
// one statement, so in one implicit transaction and one round trip: the
// path of a result without artifacts, the most common one. The channel is
// the last argument.
func finishNotifySQL(w *where) string {
	return `
WITH u AS (` + finishSQL + w.String() + ` RETURNING e.id),
n AS (SELECT pg_notify($` + strconv.Itoa(len(w.args)+1) + `, id::text) FROM u)
SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM n)`
}

// beginner starts a transaction; *pgxpool.Pool and *pgx.Conn are ones.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Finish records the end of execution id, as c: res's terminal status and
// fields, and artifacts with their bytes (their metadata, not
// res.Artifacts, is what is stored; a missing SHA256 or size is computed).
// Everything is written in one transaction, together with a notification
// on NotifyChannel: within q when q is a pgx.Tx (it takes effect when q
// commits), else in a transaction of its own on q (the pool when q is
// nil). Terminal statuses never change: when the execution has already
// ended, Finish writes nothing and returns false. ENOTFOUND when it does
// not exist for c. An exit code outside the column's range (a 32-bit
// integer) is stored clamped to it.
func (s *Store) Finish(ctx context.Context, q DBTX, c jobs.Caller, id string, res *jobs.Result, artifacts []jobs.ArtifactContent) (bool, error) {
	return s.finish(ctx, q, c, id, nil, res, artifacts)
}

// FinishHeld is Finish for the holder h of execution id: it writes only
// while h still holds the execution, and returns false otherwise. A node
// that was only slow, and whose execution was taken for another attempt,
// so writes nothing.
func (s *Store) FinishHeld(ctx context.Context, q DBTX, id string, h Holder, res *jobs.Result, artifacts []jobs.ArtifactContent) (bool, error) {
	return s.finish(ctx, q, jobs.System, id, &h, res, artifacts)
}

// finish is Finish, and FinishHeld when h is not nil.
func (s *Store) finish(ctx context.Context, q DBTX, c jobs.Caller, id string, h *Holder, res *jobs.Result, artifacts []jobs.ArtifactContent) (bool, error) {
	if !res.Status.Terminal() {
		return false, fmt.Errorf("finish execution: status %q is not terminal", res.Status)
	}
	if !validID(id) {
		return false, errJobNotFound()
	}
	var done bool
	fn := func(tx DBTX) error {
		var err error
		done, err = finishIn(ctx, tx, c, id, h, res, artifacts)
		return err
	}
	q = s.db(q)
	if tx, ok := q.(pgx.Tx); ok {
		return done, fn(tx)
	}
	if len(artifacts) == 0 {
		return finishAlone(ctx, q, c, id, h, res)
	}
	b, ok := q.(beginner)
	if !ok {
		return false, fmt.Errorf("finish execution: %T can start no transaction", q)
	}
	err := pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error { return fn(tx) })
	return done, err
}

// finishArgs are the parameters of finishSQL.
func finishArgs(id string, res *jobs.Result) ([]any, error) {
	var output, execErr any // nil stores NULL
	if len(res.Output) > 0 {
		output = string(cleanJSON(res.Output))
	}
	if res.Error != nil {
		b, err := json.Marshal(jobs.ExecError{Type: CleanText(res.Error.Type), Message: CleanText(res.Error.Message)})
		if err != nil {
			return nil, fmt.Errorf("finish execution: error: %w", err)
		}
		execErr = string(b)
	}
	timing, err := json.Marshal(newTimingRecord(res.Timing))
	if err != nil {
		return nil, fmt.Errorf("finish execution: timing: %w", err)
	}
	var egress any // nil stores NULL
	if res.Egress != nil {
		b, err := json.Marshal(res.Egress)
		if err != nil {
			return nil, fmt.Errorf("finish execution: egress: %w", err)
		}
		egress = string(cleanJSON(b))
	}
	return []any{id, string(res.Status), clampInt32(res.ExitCode),
		CleanText(res.Stdout), CleanText(res.Stderr), res.StdoutTruncated, res.StderrTruncated,
		output, execErr, string(timing),
		CleanText(res.Runtime), string(res.Start), CleanText(res.Image), res.ArtifactsTruncated, egress}, nil
}

// clampInt32 is n within the range of PostgreSQL's int.
func clampInt32(n int) int32 {
	return int32(max(min(n, math.MaxInt32), math.MinInt32))
}

// finishAlone is Finish without artifacts and outside a caller's
// transaction: one statement.
func finishAlone(ctx context.Context, q DBTX, c jobs.Caller, id string, h *Holder, res *jobs.Result) (bool, error) {
	args, err := finishArgs(id, res)
	if err != nil {
		return false, err
	}
	w := finishWhere(c, args, h)
	var updated, notified int
	if err := q.QueryRow(ctx, finishNotifySQL(w), append(w.args, NotifyChannel)...).Scan(&updated, &notified); err != nil {
		return false, fmt.Errorf("finish execution: %w", err)
	}
	if updated == 0 {
		if _, err := statusOf(ctx, q, c, id); err != nil {
			return false, fmt.Errorf("finish execution: %w", err)
		}
		return false, nil
	}
	return true, nil
}

// finishIn is Finish inside transaction tx.
func finishIn(ctx context.Context, tx DBTX, c jobs.Caller, id string, h *Holder, res *jobs.Result, artifacts []jobs.ArtifactContent) (bool, error) {
	args, err := finishArgs(id, res)
	if err != nil {
		return false, err
	}
	w := finishWhere(c, args, h)
	tag, err := tx.Exec(ctx, finishSQL+w.String(), w.args...)
	if err != nil {
		return false, fmt.Errorf("finish execution: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := statusOf(ctx, tx, c, id); err != nil {
			return false, fmt.Errorf("finish execution: %w", err)
		}
		return false, nil
	}
	if err := insertArtifacts(ctx, tx, id, artifacts); err != nil {
		return false, fmt.Errorf("finish execution: %w", err)
	}
	if _, err := tx.Exec(ctx, notifySQL, NotifyChannel, id); err != nil {
		return false, fmt.Errorf("finish execution: notify: %w", err)
	}
	return true, nil
}

const setRiverJobIDSQL = `UPDATE tako_executions e SET river_job_id = $2`

// SetRiverJobID records, within q (the pool when nil), the id of the River
// job that runs execution id, so that a cancel can reach it. ENOTFOUND
// when the execution does not exist for c.
func (s *Store) SetRiverJobID(ctx context.Context, q DBTX, c jobs.Caller, id string, riverJobID int64) error {
	if !validID(id) {
		return errJobNotFound()
	}
	w := &where{args: []any{id, riverJobID}}
	w.cond("e.id = $1")
	w.scope(c)
	tag, err := s.db(q).Exec(ctx, setRiverJobIDSQL+w.String(), w.args...)
	if err != nil {
		return fmt.Errorf("set river job id: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errJobNotFound()
	}
	return nil
}

const riverJobIDSQL = `SELECT coalesce(e.river_job_id, 0) FROM tako_executions e`

// RiverJobID returns the id of the River job that runs execution id, or 0
// when it has none (a sync run). ENOTFOUND when the execution does not
// exist for c.
func (s *Store) RiverJobID(ctx context.Context, c jobs.Caller, id string) (int64, error) {
	if !validID(id) {
		return 0, errJobNotFound()
	}
	var jobID int64
	w := byID(c, id)
	if err := s.pool.QueryRow(ctx, riverJobIDSQL+w.String(), w.args...).Scan(&jobID); err != nil {
		return 0, notFoundIfNoRows(err, errJobNotFound(), "read river job id")
	}
	return jobID, nil
}

// deleteBatch bounds how many rows one retention statement deletes, so
// that a large backlog does not hold locks or WAL for long.
const deleteBatch = 1000

const deleteOlderSQL = `
DELETE FROM tako_executions WHERE id IN (
    SELECT id FROM tako_executions
    WHERE created_at < $1 AND status IN ('succeeded', 'failed', 'timeout', 'oom', 'cancelled')
    ORDER BY created_at
    LIMIT $2
)`

// DeleteOlderThan deletes the ended executions created before cutoff, and
// their artifacts, and returns how many executions it deleted. Queued and
// running executions are kept whatever their age: every accepted job must
// reach a terminal state. Children of a deleted execution keep their
// record and lose the link.
func (s *Store) DeleteOlderThan(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, deleteOlderSQL, cutoff, deleteBatch)
		if err != nil {
			return total, fmt.Errorf("delete old executions: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < deleteBatch {
			return total, nil
		}
	}
}
