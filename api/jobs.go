package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// The original's details for the job routes.
const (
	jobNotFound       = "Job not found"
	executionNotFound = "Execution not found"
	waitTimedOut      = "Timeout waiting for job"
	cancelNotFound    = "Job not found or already completed"
	stillInProgress   = "Job still in progress"
)

// JobStatusResponse is the body of GET /jobs/:id, the original's
// JobStatusResponse plus tako's timestamps and attempt. Nullable fields are
// always present: DurationMS once the job has ended, QueuePosition while it
// is queued.
type JobStatusResponse struct {
	JobID         string      `json:"job_id"`
	Status        jobs.Status `json:"status"`
	JobType       string      `json:"job_type"`
	CreatedAt     string      `json:"created_at"`
	StartedAt     *string     `json:"started_at"`
	FinishedAt    *string     `json:"finished_at"`
	DurationMS    *float64    `json:"duration_ms"`
	QueuePosition *int        `json:"queue_position"`
	Attempt       int         `json:"attempt"`
	// Stdout and Stderr are what a running job has printed so far (tako's
	// own); absent once it has ended: GET /jobs/{id}/result has it all.
	Stdout *string `json:"stdout,omitempty"`
	Stderr *string `json:"stderr,omitempty"`
}

// PendingResultResponse is the body of GET /jobs/:id/result?wait=false for
// a job that has not ended yet (HTTP 200, as in the original).
type PendingResultResponse struct {
	JobID         string      `json:"job_id"`
	Status        jobs.Status `json:"status"`
	Message       string      `json:"message"`
	QueuePosition *int        `json:"queue_position"`
}

// CancelResponse is the body of POST /jobs/:id/cancel: the job's status
// after the cancel.
type CancelResponse struct {
	Status jobs.Status `json:"status"`
	JobID  string      `json:"job_id"`
}

// handleJob is GET /jobs/:id.
func (s *Server) handleJob(c *fiber.Ctx) error {
	exec, err := s.routeExecution(c, jobNotFound)
	if err != nil {
		return err
	}
	r := newJobStatusResponse(exec)
	if exec.Status == jobs.StatusRunning {
		ctx, cancel := s.opContext()
		defer cancel()
		out, err := s.service.OutputSoFar(ctx, callerOf(c), exec.ID)
		if err != nil {
			return err
		}
		r.Stdout, r.Stderr = &out.Stdout, &out.Stderr
	}
	return c.JSON(r)
}

// handleResult is GET /jobs/:id/result: the full record once the job has
// ended. With wait=false an unfinished job gets the in-progress stub; with
// wait=true the request waits up to timeout seconds and then gets 408,
// while the job keeps running.
func (s *Server) handleResult(c *fiber.Ctx) error {
	id, err := pathID(c, jobNotFound)
	if err != nil {
		return err
	}
	q, err := parseResultQuery(c)
	if err != nil {
		return err
	}
	var exec *jobs.Execution
	if q.wait {
		exec, err = s.wait(callerOf(c), id, q.timeout)
	} else {
		ctx, cancel := s.opContext()
		defer cancel()
		exec, err = s.service.Get(ctx, callerOf(c), id)
	}
	if exec, err = executionOrNotFound(exec, err, jobNotFound); err != nil {
		return err
	}
	if !exec.Terminal() {
		return c.JSON(PendingResultResponse{
			JobID:         exec.ID,
			Status:        exec.Status,
			Message:       stillInProgress,
			QueuePosition: queuePosition(exec),
		})
	}
	return c.JSON(newExecutionResponse(exec))
}

// wait long-polls the Service for id. Its context is the server's, so
// Shutdown ends the wait, bounded by the wait's own timeout; a deadline
// that runs out is the same 408 as the Service's ETIMEOUT.
func (s *Server) wait(caller jobs.Caller, id string, timeout time.Duration) (*jobs.Execution, error) {
	ctx, cancel := context.WithTimeout(s.base, timeout)
	defer cancel()
	exec, err := s.service.Wait(ctx, caller, id, timeout)
	switch {
	case jobs.ErrorCodeOf(err) == jobs.ETIMEOUT,
		errors.Is(err, context.DeadlineExceeded) && s.base.Err() == nil:
		return nil, &jobs.Error{Code: jobs.ETIMEOUT, Message: waitTimedOut}
	}
	return exec, err
}

// handleCancel is POST /jobs/:id/cancel. A job that has ended is a 404,
// the same as one that does not exist, with the original's detail.
func (s *Server) handleCancel(c *fiber.Ctx) error {
	id, err := pathID(c, cancelNotFound)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	exec, err := s.service.Cancel(ctx, callerOf(c), id)
	if exec, err = executionOrNotFound(exec, err, cancelNotFound); err != nil {
		return err
	}
	return c.JSON(CancelResponse{Status: exec.Status, JobID: exec.ID})
}

// handleExecution is GET /executions/:id: the full record.
func (s *Server) handleExecution(c *fiber.Ctx) error {
	if err := checkView(c); err != nil {
		return err
	}
	exec, err := s.routeExecution(c, executionNotFound)
	if err != nil {
		return err
	}
	return c.JSON(newExecutionRecordResponse(exec))
}

// routeExecution returns the execution named by the route's :id, or
// ENOTFOUND with notFound as its detail.
func (s *Server) routeExecution(c *fiber.Ctx, notFound string) (*jobs.Execution, error) {
	id, err := pathID(c, notFound)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	exec, err := s.service.Get(ctx, callerOf(c), id)
	return executionOrNotFound(exec, err, notFound)
}

// executionOrNotFound checks what the Service returned for one execution:
// ENOTFOUND gets the route's fixed detail, and a nil execution without an
// error is a bug.
func executionOrNotFound(exec *jobs.Execution, err error, notFound string) (*jobs.Execution, error) {
	switch {
	case jobs.ErrorCodeOf(err) == jobs.ENOTFOUND:
		return nil, &jobs.Error{Code: jobs.ENOTFOUND, Message: notFound}
	case err != nil:
		return nil, err
	case exec == nil:
		return nil, errors.New("service returned no execution and no error")
	}
	return exec, nil
}

// pathID returns the route's :id. One that cannot be an id (ids are short
// tokens of [A-Za-z0-9._-]) is ENOTFOUND with notFound as its detail,
// without asking the Service.
func pathID(c *fiber.Ctx, notFound string) (string, error) {
	id := c.Params("id")
	if !validToken(id) {
		return "", &jobs.Error{Code: jobs.ENOTFOUND, Message: notFound}
	}
	return id, nil
}

// newJobStatusResponse renders the status of exec.
func newJobStatusResponse(exec *jobs.Execution) JobStatusResponse {
	r := JobStatusResponse{
		JobID:         exec.ID,
		Status:        exec.Status,
		JobType:       exec.JobType,
		CreatedAt:     timestamp(exec.CreatedAt),
		StartedAt:     optTimestamp(exec.StartedAt),
		FinishedAt:    optTimestamp(exec.FinishedAt),
		QueuePosition: queuePosition(exec),
		Attempt:       exec.Attempt,
	}
	if exec.FinishedAt != nil {
		// The run's duration; a job that ended without running (cancelled
		// in the queue) took none.
		var d time.Duration
		if exec.StartedAt != nil {
			d = max(exec.FinishedAt.Sub(*exec.StartedAt), 0)
		}
		msf := ms(d)
		r.DurationMS = &msf
	}
	return r
}

// queuePosition is exec's 1-based place in its queue, or nil when it is not
// queued (or the Service does not know).
func queuePosition(exec *jobs.Execution) *int {
	if exec.Status != jobs.StatusQueued || exec.QueuePosition <= 0 {
		return nil
	}
	p := exec.QueuePosition
	return &p
}
