package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node is what a node says of itself in each heartbeat.
type Node struct {
	// ID names the node (its runner's instance id).
	ID string
	// Role is "all", "api" or "worker".
	Role string
	// JobTypes are the job types the node can run now; none on an api
	// node.
	JobTypes []string
}

const heartbeatSQL = `
INSERT INTO tako_nodes (id, role, job_types) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), role = $2, job_types = $3`

// Heartbeat records that node is alive now, and what it runs.
func (s *Store) Heartbeat(ctx context.Context, node Node) error {
	if node.JobTypes == nil {
		node.JobTypes = []string{}
	}
	if _, err := s.pool.Exec(ctx, heartbeatSQL, node.ID, node.Role, node.JobTypes); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// RemoveNode forgets node: it stopped cleanly.
func (s *Store) RemoveNode(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM tako_nodes WHERE id = $1`, node); err != nil {
		return fmt.Errorf("remove node: %w", err)
	}
	return nil
}

// liveRunnersSQL counts, per job type, the nodes heard from within the
// timeout that run it.
const liveRunnersSQL = `
SELECT jt, count(*)::int
FROM tako_nodes n, unnest(n.job_types) AS jt
WHERE n.heartbeat_at > now() - make_interval(secs => $1)
GROUP BY jt`

// LiveRunners returns, for each job type that a node heard from within
// timeout can run, how many such nodes there are.
func (s *Store) LiveRunners(ctx context.Context, timeout time.Duration) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, liveRunnersSQL, timeout.Seconds())
	if err != nil {
		return nil, fmt.Errorf("count live workers: %w", err)
	}
	out := map[string]int{}
	var name string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count live workers: %w", err)
	}
	return out, nil
}

// takenSQL finds, among the attempts a node believes it runs, those it no
// longer holds: another node or attempt has the execution, or it has ended.
const takenSQL = `
SELECT t.id::text
FROM unnest($1::uuid[], $2::int[]) AS t(id, attempt)
LEFT JOIN tako_executions e ON e.id = t.id
WHERE e.id IS NULL OR e.status <> 'running' OR e.node IS DISTINCT FROM $3 OR e.attempt <> t.attempt`

// Taken returns the ids, among held (execution id -> attempt), of the
// executions node no longer holds in that attempt: the leader took them
// while node was silent, or they ended.
func (s *Store) Taken(ctx context.Context, node string, held map[string]int) ([]string, error) {
	if len(held) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(held))
	attempts := make([]int32, 0, len(held))
	for id, a := range held {
		ids = append(ids, id)
		attempts = append(attempts, int32(a))
	}
	rows, err := s.pool.Query(ctx, takenSQL, ids, attempts, node)
	if err != nil {
		return nil, fmt.Errorf("find taken executions: %w", err)
	}
	taken, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find taken executions: %w", err)
	}
	return taken, nil
}

// Stranded is a running execution on a node that has gone silent.
type Stranded struct {
	// ID is the execution's id.
	ID string
	// Holder is the silent node and the attempt it was running.
	Holder Holder
	// RiverJobID is the queue job that ran it; 0 for a sync execution run
	// on the node that received it, which has no queue job.
	RiverJobID int64
}

// strandedSQL finds executions still running on a node that has not been
// heard from within the timeout (or ever).
const strandedSQL = `
SELECT e.id::text, coalesce(e.node, ''), e.attempt, coalesce(e.river_job_id, 0)
FROM tako_executions e
WHERE e.status = 'running'
  AND NOT EXISTS (
    SELECT 1 FROM tako_nodes n
    WHERE n.id = e.node AND n.heartbeat_at > now() - make_interval(secs => $1)
  )
LIMIT 1000`

// Stranded returns the executions running on nodes that have not sent a
// heartbeat for timeout: unless someone acts, nobody will finish them.
func (s *Store) Stranded(ctx context.Context, timeout time.Duration) ([]Stranded, error) {
	rows, err := s.pool.Query(ctx, strandedSQL, timeout.Seconds())
	if err != nil {
		return nil, fmt.Errorf("find stranded executions: %w", err)
	}
	var out []Stranded
	var st Stranded
	_, err = pgx.ForEachRow(rows, []any{&st.ID, &st.Holder.Node, &st.Holder.Attempt, &st.RiverJobID}, func() error {
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find stranded executions: %w", err)
	}
	return out, nil
}

// endRiverAttemptSQL ends a queue job's running attempt the way River's
// own rescuer does, with an error in its list: discarded when it was the
// last attempt (the dead-letter queue), cancelled otherwise (the
// execution moves to a new job). Only a job still running is touched.
const endRiverAttemptSQL = `
UPDATE river_job SET
    state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'cancelled' END::river_job_state,
    finalized_at = now(),
    errors = array_append(errors, $2::jsonb || jsonb_build_object('attempt', attempt))
WHERE id = $1 AND state = 'running'
RETURNING attempt, max_attempts, priority, queue, args, state::text`

// RiverAttempt is a queue job whose running attempt EndRiverAttempt ended.
type RiverAttempt struct {
	// Attempt and MaxAttempts are the job's, as River counts them.
	Attempt, MaxAttempts int
	// Priority and Queue are where the job ran.
	Priority int
	Queue    string
	// Args are the job's arguments.
	Args []byte
	// Last says it was the job's last attempt: the job is discarded.
	Last bool
}

// EndRiverAttempt ends, within tx, the running attempt of queue job id
// whose node is gone, recording message as the attempt's error. It
// returns false when the job is not running (it ended meanwhile). A node
// that comes back finds the job ended, and River's completion of it
// changes nothing.
func (s *Store) EndRiverAttempt(ctx context.Context, tx pgx.Tx, id int64, message string) (RiverAttempt, bool, error) {
	var a RiverAttempt
	var state string
	// River's AttemptError: at, attempt, error, trace; the statement adds
	// the attempt from the job's row.
	rec, _ := json.Marshal(map[string]any{"at": time.Now().UTC(), "error": message, "trace": ""})
	err := tx.QueryRow(ctx, endRiverAttemptSQL, id, string(rec)).Scan(&a.Attempt, &a.MaxAttempts, &a.Priority, &a.Queue, &a.Args, &state)
	if err == pgx.ErrNoRows {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("end queue job attempt: %w", err)
	}
	a.Last = state == "discarded"
	return a, true, nil
}

const requeueHeldSQL = `
UPDATE tako_executions e SET status = 'queued', started_at = NULL, node = NULL, river_job_id = $4
WHERE e.id = $1 AND e.status = 'running' AND e.node IS NOT DISTINCT FROM nullif($2, '') AND e.attempt = $3`

// RequeueHeld puts execution id back in the queue, within tx, as queue job
// riverJobID, if h still holds it; false otherwise. Its attempt count is
// kept: the next attempt takes the next number.
func (s *Store) RequeueHeld(ctx context.Context, tx pgx.Tx, id string, h Holder, riverJobID int64) (bool, error) {
	tag, err := tx.Exec(ctx, requeueHeldSQL, id, CleanText(h.Node), h.Attempt, riverJobID)
	if err != nil {
		return false, fmt.Errorf("requeue execution: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
