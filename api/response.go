package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/tako-run/tako/jobs"
)

// ExecuteResponse is the body of a finished POST /execute: how the program
// ran and the files it left. A program that failed is still a 200 with
// Success false.
type ExecuteResponse struct {
	RunResponse
	Artifacts []ArtifactResponse `json:"artifacts"`
}

// RunResponse is how one program ran, in every answer that shows it. The
// first seven fields are the original's ExecuteResponse; the rest are
// tako's additions. JobID and ExecutionID are the same id: the first is
// the async API's name for it.
type RunResponse struct {
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
	ArtifactsTruncated bool           `json:"artifacts_truncated"`
	StderrTruncated    bool           `json:"stderr_truncated"`
	Timing             TimingResponse `json:"timing"`
}

// ArtifactResponse is one file the program left in /output: its name, size
// and SHA-256, and the Content-Type GET /jobs/{id}/artifacts/{name} serves
// it with.
type ArtifactResponse struct {
	jobs.Artifact
	ContentType string `json:"content_type"`
}

// TimingResponse is where the time of one execution went, in milliseconds.
// The last four fields are the original's names for the same phases:
// startup_ms is start_ms and execution_ms is run_ms. DepInstallMS is
// always null: tako installs requirements into images before a job, never
// during one. PhaseAtExit is the phase a program that failed on its own
// was in ("startup" or "execution"), null otherwise, as in the original.
type TimingResponse struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`

	StartupMS    float64  `json:"startup_ms"`
	DepInstallMS *float64 `json:"dep_install_ms"`
	ExecutionMS  float64  `json:"execution_ms"`
	PhaseAtExit  *string  `json:"phase_at_exit"`
}

// ExecutionResponse is the full record of one execution: what GET
// /jobs/:id/result and GET /executions/:id return. It is the
// ExecuteResponse plus the record's history, with the fields of the
// original's ExecutionRecordFullResponse: the original sends those only
// for ?view=full, tako always does.
type ExecutionResponse struct {
	ExecuteResponse
	HistoryResponse
	// JobRef is JobVersion under the full view's name.
	JobRef         string             `json:"job_ref"`
	InputArtifacts []ArtifactResponse `json:"input_artifacts"` // always []: tako takes no input files
	ResourceUsage  *json.RawMessage   `json:"resource_usage"`  // always null: not measured
	// CodeHash and InputHash are the hex SHA-256 of the code and of the
	// input JSON.
	CodeHash  *string `json:"code_hash"`
	InputHash *string `json:"input_hash"`
}

// ExecutionRecordResponse is the body of GET /executions/:id: the full
// record and what was submitted, the code and the input, which the console
// shows. Results and webhooks leave those two out: the caller has them.
type ExecutionRecordResponse struct {
	ExecutionResponse
	Code      string          `json:"code"`
	InputData json.RawMessage `json:"input_data"` // the input object; null when none was stored
}

// newExecutionRecordResponse renders exec's record with its code and input.
func newExecutionRecordResponse(exec *jobs.Execution) ExecutionRecordResponse {
	return ExecutionRecordResponse{
		ExecutionResponse: newExecutionResponse(exec),
		Code:              strings.ToValidUTF8(exec.Code, "\uFFFD"),
		InputData:         safeJSON(exec.InputJSON),
	}
}

// HistoryResponse is what the record of an execution keeps beside how it
// ran: when, where, in what, and who asked.
type HistoryResponse struct {
	CreatedAt  string  `json:"created_at"`  // RFC 3339, UTC
	StartedAt  *string `json:"started_at"`  // null until it runs
	FinishedAt *string `json:"finished_at"` // null until it ends
	EndedAt    *string `json:"ended_at"`    // the original's name for finished_at
	// DurationMS is the run's wall time in whole milliseconds, started to
	// finished; null until it ends.
	DurationMS *int64 `json:"duration_ms"`
	// JobVersion names what ran: the job type and, once it ran, the image,
	// as "job_type@image".
	JobVersion        string             `json:"job_version"`
	ParentExecutionID *string            `json:"parent_execution_id"` // the original's name for parent_id
	IdempotencyKey    *string            `json:"idempotency_key"`
	Attempt           int                `json:"attempt"`
	Node              string             `json:"node"`         // the tako instance that ran it; "" before it runs
	Image             string             `json:"image"`        // the image it ran in; "" before it runs
	Requirements      []string           `json:"requirements"` // ad-hoc pip requirements; [] when none
	ParentID          *string            `json:"parent_id"`    // null unless a rerun or fork
	Relationship      *jobs.Relationship `json:"relationship"` // "rerun", "fork" or null
	CorrelationID     string             `json:"correlation_id"`
	APIKey            *string            `json:"api_key"` // the name of the key that submitted it; null without keys
	// NetworkAllow is the request's narrowing of its job type's egress
	// allowlist; absent when it kept the job type's.
	NetworkAllow []string `json:"network_allow,omitempty"`
	// Egress lists the connections the job asked the egress proxy for,
	// [] when none; absent when its job type has no allowlist or it has
	// not ended.
	Egress *[]jobs.EgressAttempt `json:"egress,omitempty"`
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
	r := ExecuteResponse{RunResponse: RunResponse{
		Success:     status == jobs.StatusSucceeded,
		Output:      json.RawMessage("null"),
		JobType:     exec.JobType,
		ExecutionID: exec.ID,
		JobID:       exec.ID,
		Status:      status,
	}, Artifacts: []ArtifactResponse{}}
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
	for _, a := range res.Artifacts {
		r.Artifacts = append(r.Artifacts, ArtifactResponse{Artifact: a, ContentType: artifactContentType(a.Name)})
	}
	r.Timing = TimingResponse{
		QueueMS:     ms(res.Timing.Queue),
		StartMS:     ms(res.Timing.Start),
		RunMS:       ms(res.Timing.Run),
		CollectMS:   ms(res.Timing.Collect),
		TotalMS:     ms(res.Timing.Total),
		StartupMS:   ms(res.Timing.Start),
		ExecutionMS: ms(res.Timing.Run),
		PhaseAtExit: phaseAtExit(res),
	}
	return r
}

// phaseAtExit is the phase a failed program ended in, in the original's
// words: "startup" when it never got past start-up, "execution" when it
// failed while running; nil when it succeeded or tako ended it.
func phaseAtExit(res *jobs.Result) *string {
	var phase string
	switch {
	case res.Status == jobs.StatusSucceeded, res.Status == jobs.StatusCancelled:
		return nil
	case res.Error != nil && res.Error.Type == jobs.ErrStartupTimeout:
		phase = "startup"
	default:
		phase = "execution"
	}
	return &phase
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
		HistoryResponse: newHistoryResponse(exec),
		InputArtifacts:  []ArtifactResponse{},
	}
	r.JobRef = r.JobVersion
	if exec.Code != "" {
		r.CodeHash = sha256Hex([]byte(exec.Code))
	}
	if len(exec.InputJSON) > 0 {
		r.InputHash = sha256Hex(exec.InputJSON)
	}
	return r
}

// newHistoryResponse renders the history fields of exec's record.
func newHistoryResponse(exec *jobs.Execution) HistoryResponse {
	h := HistoryResponse{
		CreatedAt:      timestamp(exec.CreatedAt),
		StartedAt:      optTimestamp(exec.StartedAt),
		FinishedAt:     optTimestamp(exec.FinishedAt),
		EndedAt:        optTimestamp(exec.FinishedAt),
		JobVersion:     exec.JobType,
		IdempotencyKey: optString(exec.IdempotencyKey),
		Attempt:        exec.Attempt,
		Node:           exec.Node,
		Requirements:   nonNil(exec.Requirements),
		ParentID:       optString(exec.ParentID),
		CorrelationID:  exec.CorrelationID,
		APIKey:         optString(exec.APIKey),
	}
	h.ParentExecutionID = h.ParentID
	h.NetworkAllow = exec.NetworkAllow
	if exec.Result != nil {
		if exec.Result.Egress != nil {
			h.Egress = &exec.Result.Egress
		}
		h.Image = exec.Result.Image
		if h.Image != "" {
			h.JobVersion += "@" + h.Image
		}
	}
	if exec.FinishedAt != nil {
		var d time.Duration
		if exec.StartedAt != nil {
			d = max(exec.FinishedAt.Sub(*exec.StartedAt), 0)
		}
		msi := d.Milliseconds()
		h.DurationMS = &msi
	}
	if exec.Relationship != "" {
		rel := exec.Relationship
		h.Relationship = &rel
	}
	return h
}

// optString is s, or nil (JSON null) when it is empty.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// sha256Hex returns the hex SHA-256 of b.
func sha256Hex(b []byte) *string {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	return &h
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
