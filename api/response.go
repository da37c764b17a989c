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
// A program that failed is still a 200 with Success false.
type ExecuteResponse struct {
	Success         bool            `json:"success"`
	Output          json.RawMessage `json:"output"` // /output/result.json, or null
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	ExitCode        int             `json:"exit_code"`
	ExecutionTime   float64         `json:"execution_time"` // seconds, the whole request
	JobType         string          `json:"job_type"`
	ExecutionID     string          `json:"execution_id"`
	Status          jobs.Status     `json:"status"`
	Error           *jobs.ExecError `json:"error"`
	Runtime         string          `json:"runtime"`
	Start           jobs.Start      `json:"start"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	Artifacts       []jobs.Artifact `json:"artifacts"`
	Timing          TimingResponse  `json:"timing"`
}

// TimingResponse is where the time of one execution went, in milliseconds.
type TimingResponse struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// newExecuteResponse renders res. Whatever bytes the program printed, the
// result encodes: invalid UTF-8 becomes U+FFFD and an output that is not
// valid JSON becomes null.
func newExecuteResponse(res *jobs.Result, executionID, jobType string) ExecuteResponse {
	artifacts := res.Artifacts
	if artifacts == nil {
		artifacts = []jobs.Artifact{}
	}
	return ExecuteResponse{
		Success:         res.Success(),
		Output:          safeJSON(res.Output),
		Stdout:          strings.ToValidUTF8(res.Stdout, "\uFFFD"),
		Stderr:          strings.ToValidUTF8(res.Stderr, "\uFFFD"),
		ExitCode:        res.ExitCode,
		ExecutionTime:   res.Timing.Total.Seconds(),
		JobType:         jobType,
		ExecutionID:     executionID,
		Status:          res.Status,
		Error:           res.Error,
		Runtime:         res.Runtime,
		Start:           res.Start,
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		Artifacts:       artifacts,
		Timing: TimingResponse{
			QueueMS:   ms(res.Timing.Queue),
			StartMS:   ms(res.Timing.Start),
			RunMS:     ms(res.Timing.Run),
			CollectMS: ms(res.Timing.Collect),
			TotalMS:   ms(res.Timing.Total),
		},
	}
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
