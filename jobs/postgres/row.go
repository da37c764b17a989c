package postgres

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs"
)

// executionColumns is the select list that scanExecution reads, for a
// tako_executions row aliased e. The last column is the queue position,
// counted among queued executions of the same job type with a smaller seq
// (the index on status, job_type, seq answers it).
const executionColumns = `
    e.id::text, e.seq, e.status, e.mode, e.job_type, e.code, e.input, e.requirements,
    e.timeout_ms, e.startup_timeout_ms, e.created_at, e.started_at, e.finished_at,
    e.attempt, coalesce(e.node, ''), coalesce(e.runtime, ''), coalesce(e.start_kind, ''),
    coalesce(e.image, ''), coalesce(e.exit_code, 0), coalesce(e.stdout, ''), coalesce(e.stderr, ''),
    e.stdout_truncated, e.stderr_truncated, e.artifacts_truncated, e.output, e.error, e.timing,
    coalesce(e.idempotency_key, ''), coalesce(e.fingerprint, ''), coalesce(e.parent_id::text, ''),
    coalesce(e.relationship, ''), coalesce(e.correlation_id, ''), coalesce(e.api_key, ''),
    CASE WHEN e.status = 'queued' THEN 1 + (
        SELECT count(*) FROM tako_executions q
        WHERE q.status = 'queued' AND q.job_type = e.job_type AND q.seq < e.seq
    ) ELSE 0 END`

// scanExecution reads one row of executionColumns into an Execution and
// returns it with its seq. Result is filled for terminal rows, without
// artifacts: those live in their own table.
func scanExecution(row pgx.Row) (*jobs.Execution, int64, error) {
	var (
		e                                 jobs.Execution
		r                                 jobs.Result
		seq, timeoutMS, startupMS         int64
		output, errJSON, timingJSON       []byte
		status, mode, startKind, relation string
	)
	err := row.Scan(
		&e.ID, &seq, &status, &mode, &e.JobType, &e.Code, &e.InputJSON, &e.Requirements,
		&timeoutMS, &startupMS, &e.CreatedAt, &e.StartedAt, &e.FinishedAt,
		&e.Attempt, &e.Node, &r.Runtime, &startKind,
		&r.Image, &r.ExitCode, &r.Stdout, &r.Stderr,
		&r.StdoutTruncated, &r.StderrTruncated, &r.ArtifactsTruncated, &output, &errJSON, &timingJSON,
		&e.IdempotencyKey, &e.Fingerprint, &e.ParentID,
		&relation, &e.CorrelationID, &e.APIKey,
		&e.QueuePosition,
	)
	if err != nil {
		return nil, 0, err
	}
	e.Status = jobs.Status(status)
	e.Mode = jobs.Mode(mode)
	e.Relationship = jobs.Relationship(relation)
	e.Timeout = time.Duration(timeoutMS) * time.Millisecond
	e.StartupTimeout = time.Duration(startupMS) * time.Millisecond
	if e.Requirements == nil {
		e.Requirements = []string{}
	}
	if !e.Status.Terminal() {
		return &e, seq, nil
	}
	r.Status = e.Status
	r.Start = jobs.Start(startKind)
	if len(output) > 0 {
		r.Output = json.RawMessage(output)
	}
	if len(errJSON) > 0 {
		r.Error = new(jobs.ExecError)
		if err := json.Unmarshal(errJSON, r.Error); err != nil {
			return nil, 0, fmt.Errorf("decode error of %s: %w", e.ID, err)
		}
	}
	if len(timingJSON) > 0 {
		var t timingRecord
		if err := json.Unmarshal(timingJSON, &t); err != nil {
			return nil, 0, fmt.Errorf("decode timing of %s: %w", e.ID, err)
		}
		r.Timing = t.timing()
	}
	e.Result = &r
	return &e, seq, nil
}

// timingRecord is jobs.Timing as stored in the timing column: float
// milliseconds, readable in psql and by dashboards.
type timingRecord struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// newTimingRecord converts t for storage.
func newTimingRecord(t jobs.Timing) timingRecord {
	return timingRecord{
		QueueMS:   toMS(t.Queue),
		StartMS:   toMS(t.Start),
		RunMS:     toMS(t.Run),
		CollectMS: toMS(t.Collect),
		TotalMS:   toMS(t.Total),
	}
}

// timing converts a stored record back.
func (t timingRecord) timing() jobs.Timing {
	return jobs.Timing{
		Queue:   fromMS(t.QueueMS),
		Start:   fromMS(t.StartMS),
		Run:     fromMS(t.RunMS),
		Collect: fromMS(t.CollectMS),
		Total:   fromMS(t.TotalMS),
	}
}

// toMS converts d to float milliseconds.
func toMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fromMS converts float milliseconds to a Duration, to the nearest
// nanosecond.
func fromMS(ms float64) time.Duration {
	return time.Duration(math.Round(ms * float64(time.Millisecond)))
}
