package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Status is where an execution is in its life.
type Status string

// The statuses of an execution.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusOOM       Status = "oom"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether s is an end state: the execution will not
// change again.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimeout, StatusOOM, StatusCancelled:
		return true
	}
	return false
}

// Request is the body of POST /execute and /execute/async. Only Code is
// required; a zero field takes the server's or the job type's default.
type Request struct {
	Code string `json:"code"`
	// InputData is the program's /input/data.json: a value that encodes
	// as a JSON object. nil sends {}.
	InputData any    `json:"input_data,omitempty"`
	JobType   string `json:"job_type,omitempty"`
	// Timeout is the execution's limit in whole seconds (not the HTTP
	// timeout, which the context sets); 0 is the job type's.
	Timeout int `json:"timeout,omitempty"`
	// StartupTimeout bounds the start of the container, in seconds
	// (10 to 600); 0 is the server's default.
	StartupTimeout int `json:"startup_timeout,omitempty"`
	// Requirements are ad-hoc pip requirements, built into an image once.
	Requirements []string `json:"requirements,omitempty"`
	// CallbackURL gets the result as a signed webhook when the job ends.
	CallbackURL string `json:"callback_url,omitempty"`
	// NetworkAllow narrows the job type's egress allowlist.
	NetworkAllow []string `json:"-"`
}

// wireRequest is Request as the server reads it, with the idempotency key
// that Submit adds.
type wireRequest struct {
	Request
	IdempotencyKey string   `json:"idempotency_key,omitempty"`
	Network        *network `json:"network,omitempty"`
}

// network is the body's "network" field.
type network struct {
	Allow []string `json:"allow"`
}

// wire is r as the server reads it, with idempotencyKey when not empty.
func (r Request) wire(idempotencyKey string) wireRequest {
	w := wireRequest{Request: r, IdempotencyKey: idempotencyKey}
	if r.NetworkAllow != nil {
		w.Network = &network{Allow: r.NetworkAllow}
	}
	return w
}

// ExecError is how a program failed, or why tako ended it: Type is one of
// the server's error types ("runtime_error", "timeout", "oom",
// "cancelled", ...).
type ExecError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Artifact is a file the program left in /output.
type Artifact struct {
	Name        string `json:"name"`
	SHA256      string `json:"sha256"`
	SizeBytes   int64  `json:"size_bytes"`
	ContentType string `json:"content_type"`
}

// Timing is where an execution's time went, in milliseconds.
type Timing struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// Run is how one program ran, as every answer that shows it has it.
type Run struct {
	JobID              string          `json:"job_id"`
	ExecutionID        string          `json:"execution_id"` // the same as JobID
	Status             Status          `json:"status"`
	Success            bool            `json:"success"`
	Output             json.RawMessage `json:"output"` // /output/result.json, or null
	Stdout             string          `json:"stdout"`
	Stderr             string          `json:"stderr"`
	ExitCode           *int            `json:"exit_code"` // nil when the program never ran
	ExecutionTime      float64         `json:"execution_time"`
	JobType            string          `json:"job_type"`
	Error              *ExecError      `json:"error"`
	Runtime            string          `json:"runtime"`
	Start              string          `json:"start"` // "warm" or "cold"
	StdoutTruncated    bool            `json:"stdout_truncated"`
	StderrTruncated    bool            `json:"stderr_truncated"`
	ArtifactsTruncated bool            `json:"artifacts_truncated"`
	Timing             Timing          `json:"timing"`
}

// History is what the record of an execution keeps beside how it ran.
// POST /execute's answer has none of it.
type History struct {
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	DurationMS     *int64     `json:"duration_ms"`
	IdempotencyKey *string    `json:"idempotency_key"`
	Attempt        int        `json:"attempt"`
	Node           string     `json:"node"`
	Image          string     `json:"image"`
	Requirements   []string   `json:"requirements"`
	ParentID       *string    `json:"parent_id"`
	Relationship   *string    `json:"relationship"` // "rerun", "fork" or nil
	CorrelationID  string     `json:"correlation_id"`
	APIKey         *string    `json:"api_key"` // the submitting key's name
}

// Execution is an execution as Execute, Wait and the "result" event return
// it, and the little Submit, Rerun and Fork know of a new job (JobID,
// Status and, for the latter two, ParentID and Relationship).
type Execution struct {
	Run
	History
	Artifacts []Artifact `json:"artifacts"`
}

// JobStatus is GET /jobs/{id}: where a job is, and what a running job has
// printed so far.
type JobStatus struct {
	JobID         string     `json:"job_id"`
	Status        Status     `json:"status"`
	JobType       string     `json:"job_type"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	DurationMS    *float64   `json:"duration_ms"`
	QueuePosition *int       `json:"queue_position"`
	Attempt       int        `json:"attempt"`
	Stdout        *string    `json:"stdout,omitempty"` // while it runs
	Stderr        *string    `json:"stderr,omitempty"`
}

// Execute runs req and waits for its end (POST /execute). A program that
// failed is returned with Success false and a nil error. It is retried
// only when no connection could be made: the server may otherwise have
// run it.
func (c *Client) Execute(ctx context.Context, req Request) (*Execution, error) {
	var out Execution
	if err := c.do(ctx, call{method: http.MethodPost, path: "/execute", body: req.wire(""), retry: retryDial}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Submit queues req (POST /execute/async) and returns the job with its
// JobID and Status. With an idempotency key (8 to 255 letters, digits,
// '_' and '-') a repeated Submit returns the same job, so it is retried on
// connection errors, 503 and 429; without one it is retried only when no
// connection could be made.
func (c *Client) Submit(ctx context.Context, req Request, idempotencyKey string) (*Execution, error) {
	policy := retryDial
	if idempotencyKey != "" {
		policy = retrySafe
	}
	var out Execution
	if err := c.do(ctx, call{method: http.MethodPost, path: "/execute/async", body: req.wire(idempotencyKey), retry: policy}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Job returns where job id is (GET /jobs/{id}).
func (c *Client) Job(ctx context.Context, id string) (*JobStatus, error) {
	var out JobStatus
	if err := c.do(ctx, call{method: http.MethodGet, path: jobPath(id, ""), retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Wait long-polls job id until it ends and returns its full record. It
// asks again each time the server's wait (at most 300 s a request) runs
// out, until timeout has passed since the call (timeout <= 0: until ctx
// ends). When timeout runs out first, the error is the server's 408
// *APIError; when ctx ends, ctx's error.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (*Execution, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		poll := c.waitCap
		if !deadline.IsZero() {
			poll = min(poll, time.Until(deadline))
		}
		// The server takes 1 to 300 seconds, fractions allowed.
		secs := max(math.Ceil(poll.Seconds()*1000)/1000, 1)
		q := url.Values{"wait": {"true"}, "timeout": {strconv.FormatFloat(secs, 'f', -1, 64)}}
		var out Execution
		err := c.do(ctx, call{method: http.MethodGet, path: jobPath(id, "/result"), query: q, retry: retrySafe}, &out)
		var apiErr *APIError
		switch {
		case err == nil && out.Status.Terminal():
			return &out, nil
		case err == nil:
			// Not ended yet (the server stopped waiting early): ask again.
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestTimeout:
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return nil, err
			}
		default:
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil, &APIError{Status: http.StatusRequestTimeout, Detail: "Timeout waiting for job"}
		}
	}
}

// Cancel cancels job id (POST /jobs/{id}/cancel) and returns its status
// after the cancel. A job that has already ended is a 404 *APIError, as
// one that does not exist.
func (c *Client) Cancel(ctx context.Context, id string) (Status, error) {
	var out struct {
		Status Status `json:"status"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, path: jobPath(id, "/cancel"), retry: retryDial}, &out); err != nil {
		return "", err
	}
	return out.Status, nil
}

// Rerun queues the stored code and input of job id, which has ended, again
// (POST /jobs/{id}/rerun), and returns the new job.
func (c *Client) Rerun(ctx context.Context, id string) (*Execution, error) {
	var out Execution
	if err := c.do(ctx, call{method: http.MethodPost, path: jobPath(id, "/rerun"), body: struct{}{}, retry: retryDial}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Fork queues code with the stored input of job id (POST
// /jobs/{id}/fork) and returns the new job.
func (c *Client) Fork(ctx context.Context, id, code string) (*Execution, error) {
	body := struct {
		Code string `json:"code"`
	}{code}
	var out Execution
	if err := c.do(ctx, call{method: http.MethodPost, path: jobPath(id, "/fork"), body: body, retry: retryDial}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
