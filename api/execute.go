package api

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
)

// handleExecute is POST /execute: validate, run synchronously, answer with
// the result.
func (s *Server) handleExecute(c *fiber.Ctx) error {
	// The raw body: fiber's c.Body() would inflate gzip and friends past
	// BodyLimit.
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && enc != "identity" {
		return jobs.Errorf(jobs.EMALFORMED, "Content-Encoding %q is not supported; send the JSON body uncompressed", truncate(enc, 32))
	}
	req, err := DecodeExecuteRequest(c.Request().Body(), s.registry, s.limits)
	if err != nil {
		return err
	}
	req.ExecutionID = newExecutionID()

	// The server's context, not the request's: fiber does not cancel on
	// disconnect, and Shutdown must be able to stop the work.
	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	res, err := s.runner.Execute(ctx, req)
	if err != nil {
		return err
	}
	if res == nil {
		return jobs.Errorf(jobs.EINTERNAL, "runner returned no result and no error for %s", req.ExecutionID)
	}
	return c.JSON(newExecuteResponse(res, req.ExecutionID, req.JobType.Name))
}

// newExecutionID returns a time-ordered UUID (v7), or a random one (v4) if
// the clock source fails.
func newExecutionID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}
