package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// SubmitResponse is the body of POST /execute/async: the job and its status,
// "queued" for a new job or the current one on an idempotent hit.
type SubmitResponse struct {
	JobID  string      `json:"job_id"`
	Status jobs.Status `json:"status"`
}

// handleExecute is POST /execute: validate, run synchronously through the
// Service (which records the execution), answer with the result.
func (s *Server) handleExecute(c *fiber.Ctx) error {
	sub, err := s.decodeSubmission(c, jobs.ModeSync)
	if err != nil {
		return err
	}
	if wantsEvents(c) {
		return s.executeStreaming(c, sub)
	}
	// The server's context, not the request's: fiber does not cancel on
	// disconnect, and Shutdown must be able to stop the work.
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	exec, err := s.service.Execute(ctx, sub)
	if err != nil {
		return err
	}
	if exec == nil || (exec.Result == nil && !exec.Terminal()) {
		return jobs.Errorf(jobs.EINTERNAL, "service returned an unfinished execution and no error for a sync run")
	}
	if exec.JobType == "" {
		exec.JobType = sub.JobType
	}
	return c.JSON(newExecuteResponse(exec))
}

// handleSubmit is POST /execute/async: validate, queue and answer 200 with
// the new job, or with the existing one on an idempotent hit. The original
// answers 200, not 202, and its clients check for exactly that.
func (s *Server) handleSubmit(c *fiber.Ctx) error {
	sub, err := s.decodeSubmission(c, jobs.ModeAsync)
	if err != nil {
		return err
	}
	if wantsEvents(c) {
		return s.submitStreaming(c, sub)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	exec, created, err := s.service.Submit(ctx, sub)
	switch {
	case jobs.ErrorCodeOf(err) == jobs.ECONFLICT:
		return jobs.Errorf(jobs.ECONFLICT, jobs.IdempotencyConflictMessage)
	case err != nil:
		return err
	case exec == nil:
		return jobs.Errorf(jobs.EINTERNAL, "service returned no execution and no error for a submission")
	case created:
		return c.JSON(SubmitResponse{JobID: exec.ID, Status: jobs.StatusQueued})
	default:
		return c.JSON(SubmitResponse{JobID: exec.ID, Status: exec.Status})
	}
}

// executeStreaming is POST /execute with Accept: text/event-stream: the
// job runs on this node as without the header, and the answer is its
// event stream instead of its result.
func (s *Server) executeStreaming(c *fiber.Ctx, sub jobs.Submission) error {
	if err := s.acquireStream(); err != nil {
		return err
	}
	// The job's context is the server's: it runs to its end whether or
	// not the client stays.
	ctx, cancel := context.WithCancel(s.base)
	exec, run, err := s.service.Begin(ctx, sub)
	if err != nil {
		cancel()
		s.streams.release()
		return err
	}
	go func() {
		defer cancel()
		_, _ = run() // recorded by the Service; the stream reads the record
	}()
	return s.serveEvents(c, s.follow(callerOf(c), exec.ID))
}

// submitStreaming is POST /execute/async with Accept: text/event-stream:
// the job is queued as without the header (an idempotent hit follows the
// existing job), and the answer is its event stream.
func (s *Server) submitStreaming(c *fiber.Ctx, sub jobs.Submission) error {
	if err := s.acquireStream(); err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	exec, _, err := s.service.Submit(ctx, sub)
	if err != nil {
		s.streams.release()
		if jobs.ErrorCodeOf(err) == jobs.ECONFLICT {
			return jobs.Errorf(jobs.ECONFLICT, jobs.IdempotencyConflictMessage)
		}
		return err
	}
	return s.serveEvents(c, s.follow(callerOf(c), exec.ID))
}

// follow is the feed of execution id's events from the start, as caller
// may see them.
func (s *Server) follow(caller jobs.Caller, id string) followFunc {
	return func(ctx context.Context, emit func(jobs.Event) error) error {
		return s.service.Events(ctx, caller, id, "", emit)
	}
}

// decodeSubmission reads and validates the body of POST /execute or
// /execute/async and stamps it with mode and the correlation id.
func (s *Server) decodeSubmission(c *fiber.Ctx, mode jobs.Mode) (jobs.Submission, error) {
	body, err := rawBody(c)
	if err != nil {
		return jobs.Submission{}, err
	}
	sub, err := DecodeExecuteRequest(body, s.registry, s.limits)
	if err != nil {
		return jobs.Submission{}, err
	}
	sub.Mode = mode
	sub.CorrelationID = s.correlate(c)
	sub.APIKey = callerOf(c).APIKey
	return sub, nil
}

// rawBody returns the request body as sent. Compressed bodies are refused:
// fiber's c.Body() would inflate gzip and friends past BodyLimit.
func rawBody(c *fiber.Ctx) ([]byte, error) {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && enc != "identity" {
		return nil, jobs.Errorf(jobs.EMALFORMED, "Content-Encoding %q is not supported; send the JSON body uncompressed", jobs.Truncate(enc, 32))
	}
	return c.Request().Body(), nil
}
