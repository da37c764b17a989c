package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/tako-run/tako/jobs"
)

// ExecuteResponse is the body of a finished POST /execute. The first seven
// fields are the original's ExecuteResponse; the rest are tako's additions.
// A program that failed is still a 200 with Success false. JobID and
// ExecutionID are the same id: the first is the async API's name for it.
type ExecuteResponse struct {
	Success         bool            `json:"success"`
	Output          json.RawMessage `json:"output"` // /output/result.json, or null
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	ExitCode        *int            `json:"exit_code"`      // null when the program never ran
	ExecutionTime   float64         `json:"execution_time"` // seconds, the whole request
	JobType         string          `json:"job_type"`
	ExecutionID     string          `json:"execution_id"`
	JobID           string          `json:"job_id"`
	Status          jobs.Status     `json:"status"`
	Error           *jobs.ExecError `json:"error"`
	Runtime         string          `json:"runtime"`
	Start           jobs.Start      `json:"start"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	// ArtifactsTruncated says files in /output were left out because of
	// limits.max_artifacts, max_artifact_bytes or max_total_artifact_bytes.
	ArtifactsTruncated bool            `json:"artifacts_truncated"`
	StderrTruncated    bool            `json:"stderr_truncated"`
	Artifacts          []jobs.Artifact `json:"artifacts"`
	Timing             TimingResponse  `json:"timing"`
}

// TimingResponse is where the time of one execution went, in milliseconds.
type TimingResponse struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// ExecutionResponse is the full record of one execution: what GET
// /jobs/:id/result, GET /executions/:id and each item of GET /executions
// return. It is the ExecuteResponse plus the record's history fields.
type ExecutionResponse struct {
	ExecuteResponse
	CreatedAt     string             `json:"created_at"`  // RFC 3339, UTC
	StartedAt     *string            `json:"started_at"`  // null until it runs
	FinishedAt    *string            `json:"finished_at"` // null until it ends
	Attempt       int                `json:"attempt"`
	Node          string             `json:"node"`         // the tako instance that ran it; "" before it runs
	Image         string             `json:"image"`        // the image it ran in; "" before it runs
	Requirements  []string           `json:"requirements"` // ad-hoc pip requirements; [] when none
	ParentID      *string            `json:"parent_id"`    // null unless a rerun or fork
	Relationship  *jobs.Relationship `json:"relationship"` // "rerun", "fork" or null
	CorrelationID string             `json:"correlation_id"`
	APIKey        *string            `json:"api_key"` // the name of the key that submitted it; null without keys
}

// newExecuteResponse renders exec. Whatever bytes the program printed, the
// result encodes: invalid UTF-8 becomes U+FFFD and an output that is not
// valid JSON becomes null. An execution without a Result (queued, running,
// or ended before it ran, such as a job cancelled in the queue) renders
// with success false, empty output and, when it has ended, an error that
// says why.
func newExecuteResponse(exec *jobs.Execution) ExecuteResponse {
	res := exec.Result
	status := exec.Status
	if status == "" && res != nil {
		status = res.Status
	}
	r := ExecuteResponse{
		Success:     status == jobs.StatusSucceeded,
		Output:      json.RawMessage("null"),
		JobType:     exec.JobType,
		ExecutionID: exec.ID,
		JobID:       exec.ID,
		Status:      status,
		Artifacts:   []jobs.Artifact{},
	}
	if res == nil {
		r.Error = missingResultError(status)
		return r
	}
	exitCode := res.ExitCode
	r.Output = safeJSON(res.Output)
	r.Stdout = strings.ToValidUTF8(res.Stdout, "\uFFFD")
	r.Stderr = strings.ToValidUTF8(res.Stderr, "\uFFFD")
	r.ExitCode = &exitCode
	r.ExecutionTime = res.Timing.Total.Seconds()
	r.Error = res.Error
	r.Runtime = res.Runtime
	r.Start = res.Start
	r.StdoutTruncated = res.StdoutTruncated
	r.ArtifactsTruncated = res.ArtifactsTruncated
	r.StderrTruncated = res.StderrTruncated
	if res.Artifacts != nil {
		r.Artifacts = res.Artifacts
	}
	r.Timing = TimingResponse{
		QueueMS:   ms(res.Timing.Queue),
		StartMS:   ms(res.Timing.Start),
		RunMS:     ms(res.Timing.Run),
		CollectMS: ms(res.Timing.Collect),
		TotalMS:   ms(res.Timing.Total),
	}
	return r
}

// missingResultError is the error of an execution that has no result: nil
// while it is queued or running; for one that ended without running, the
// taxonomy type of its status.
func missingResultError(status jobs.Status) *jobs.ExecError {
	switch status {
	case jobs.StatusCancelled:
		return &jobs.ExecError{Type: "cancelled", Message: "Execution was cancelled by user"}
	case jobs.StatusTimeout:
		return &jobs.ExecError{Type: "timeout", Message: "Execution timed out before it produced a result"}
	case jobs.StatusOOM:
		return &jobs.ExecError{Type: "oom", Message: "Execution ran out of memory before it produced a result"}
	case jobs.StatusFailed:
		return &jobs.ExecError{Type: "internal_error", Message: "Execution failed before it produced a result"}
	}
	return nil
}

// newExecutionResponse renders the full record of exec.
func newExecutionResponse(exec *jobs.Execution) ExecutionResponse {
	r := ExecutionResponse{
		ExecuteResponse: newExecuteResponse(exec),
		CreatedAt:       timestamp(exec.CreatedAt),
		StartedAt:       optTimestamp(exec.StartedAt),
		FinishedAt:      optTimestamp(exec.FinishedAt),
		Attempt:         exec.Attempt,
		Node:            exec.Node,
		Requirements:    nonNil(exec.Requirements),
		CorrelationID:   exec.CorrelationID,
	}
	if exec.Result != nil {
		r.Image = exec.Result.Image
	}
	if exec.APIKey != "" {
		name := exec.APIKey
		r.APIKey = &name
	}
	if exec.ParentID != "" {
		parent := exec.ParentID
		r.ParentID = &parent
	}
	if exec.Relationship != "" {
		rel := exec.Relationship
		r.Relationship = &rel
	}
	return r
}

// timestamp renders t in UTC as RFC 3339 with nanoseconds.
func timestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// optTimestamp renders t, or null when it is nil.
func optTimestamp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timestamp(*t)
	return &s
}

// safeJSON returns raw when it is a valid JSON value, with invalid UTF-8
// (which can only sit inside strings) replaced; otherwise JSON null.
func safeJSON(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null")
	}
	raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	if !json.Valid(raw) {
		return json.RawMessage("null")
	}
	return raw
}

// ms is d in milliseconds with sub-millisecond precision.
func ms(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
