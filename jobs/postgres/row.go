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
    coalesce(e.callback_url, ''), e.network_allow, e.egress,
    CASE WHEN e.status = 'queued' THEN 1 + (
        SELECT count(*) FROM tako_executions q
        WHERE q.status = 'queued' AND q.job_type = e.job_type AND q.seq < e.seq
    ) ELSE 0 END`

// summaryColumns is the select list that scanSummary reads: the columns
// of executionColumns without the submission's code and input and without
// the queue position. A listing shows what a job printed and returned, as
// the original's does, but never what was submitted.
const summaryColumns = `
    e.id::text, e.seq, e.status, e.mode, e.job_type, e.requirements,
    e.timeout_ms, e.startup_timeout_ms, e.created_at, e.started_at, e.finished_at,
    e.attempt, coalesce(e.node, ''), coalesce(e.runtime, ''), coalesce(e.start_kind, ''),
    coalesce(e.image, ''), coalesce(e.exit_code, 0), coalesce(e.stdout, ''), coalesce(e.stderr, ''),
    e.stdout_truncated, e.stderr_truncated, e.artifacts_truncated, e.output, e.error, e.timing,
    coalesce(e.idempotency_key, ''), coalesce(e.fingerprint, ''), coalesce(e.parent_id::text, ''),
    coalesce(e.relationship, ''), coalesce(e.correlation_id, ''), coalesce(e.api_key, ''),
    coalesce(e.callback_url, ''), e.network_allow, e.egress`

// rowScan holds one row of executionColumns or summaryColumns while it is
// scanned.
type rowScan struct {
	e                                 jobs.Execution
	r                                 jobs.Result
	timeoutMS, startupMS              int64
	output, errJSON, timingJSON       []byte
	egressJSON                        []byte
	status, mode, startKind, relation string
}

// head and tail are the scan targets the two select lists share, around
// the columns only executionColumns has.
func (x *rowScan) head() []any {
	return []any{&x.e.ID, &x.e.Seq, &x.status, &x.mode, &x.e.JobType}
}

func (x *rowScan) tail() []any {
	return []any{
		&x.e.IdempotencyKey, &x.e.Fingerprint, &x.e.ParentID,
		&x.relation, &x.e.CorrelationID, &x.e.APIKey, &x.e.CallbackURL,
		&x.e.NetworkAllow, &x.egressJSON,
	}
}

// scanExecution reads one row of executionColumns into an Execution, Seq
// included. Result is filled for terminal rows, without artifacts: those
// live in their own table.
func scanExecution(row pgx.Row) (*jobs.Execution, error) {
	var x rowScan
	dest := append(x.head(),
		&x.e.Code, &x.e.InputJSON, &x.e.Requirements,
		&x.timeoutMS, &x.startupMS, &x.e.CreatedAt, &x.e.StartedAt, &x.e.FinishedAt,
		&x.e.Attempt, &x.e.Node, &x.r.Runtime, &x.startKind,
		&x.r.Image, &x.r.ExitCode, &x.r.Stdout, &x.r.Stderr,
		&x.r.StdoutTruncated, &x.r.StderrTruncated, &x.r.ArtifactsTruncated, &x.output, &x.errJSON, &x.timingJSON,
	)
	dest = append(dest, x.tail()...)
	dest = append(dest, &x.e.QueuePosition)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	return x.finish()
}

// scanSummary reads one row of summaryColumns into an Execution whose
// Code, InputJSON and QueuePosition, and whose Result's Artifacts, are left
// empty.
func scanSummary(row pgx.Row) (*jobs.Execution, error) {
	var x rowScan
	dest := append(x.head(),
		&x.e.Requirements,
		&x.timeoutMS, &x.startupMS, &x.e.CreatedAt, &x.e.StartedAt, &x.e.FinishedAt,
		&x.e.Attempt, &x.e.Node, &x.r.Runtime, &x.startKind,
		&x.r.Image, &x.r.ExitCode, &x.r.Stdout, &x.r.Stderr,
		&x.r.StdoutTruncated, &x.r.StderrTruncated, &x.r.ArtifactsTruncated, &x.output, &x.errJSON, &x.timingJSON,
	)
	dest = append(dest, x.tail()...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	return x.finish()
}

// finish turns the scanned columns into the Execution.
func (x *rowScan) finish() (*jobs.Execution, error) {
	e, r := &x.e, &x.r
	e.Status = jobs.Status(x.status)
	e.Mode = jobs.Mode(x.mode)
	e.Relationship = jobs.Relationship(x.relation)
	e.Timeout = time.Duration(x.timeoutMS) * time.Millisecond
	e.StartupTimeout = time.Duration(x.startupMS) * time.Millisecond
	if e.Requirements == nil {
		e.Requirements = []string{}
	}
	if !e.Status.Terminal() {
		return e, nil
	}
	r.Status = e.Status
	r.Start = jobs.Start(x.startKind)
	if len(x.output) > 0 {
		r.Output = json.RawMessage(x.output)
	}
	if len(x.errJSON) > 0 {
		r.Error = new(jobs.ExecError)
		if err := json.Unmarshal(x.errJSON, r.Error); err != nil {
			return nil, fmt.Errorf("decode error of %s: %w", e.ID, err)
		}
	}
	if len(x.egressJSON) > 0 {
		if err := json.Unmarshal(x.egressJSON, &r.Egress); err != nil {
			return nil, fmt.Errorf("decode egress of %s: %w", e.ID, err)
		}
	}
	if len(x.timingJSON) > 0 {
		var t timingRecord
		if err := json.Unmarshal(x.timingJSON, &t); err != nil {
			return nil, fmt.Errorf("decode timing of %s: %w", e.ID, err)
		}
		r.Timing = t.timing()
	}
	e.Result = r
	return e, nil
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
