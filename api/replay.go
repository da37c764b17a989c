package api

import (
	"bytes"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// The fields of the rerun and fork bodies, the original's RerunRequest and
// ForkRequest.
var (
	rerunFieldNames = []string{"job_type", "timeout"}
	forkFieldNames  = []string{"code", "job_type", "timeout"}
)

// ReplayResponse is the body of POST /jobs/:id/rerun and /fork (HTTP 200, as
// in the original):
// the new job, queued, and how it links to its parent.
type ReplayResponse struct {
	JobID        string            `json:"job_id"`
	Status       jobs.Status       `json:"status"`
	ParentID     string            `json:"parent_id"`
	Relationship jobs.Relationship `json:"relationship"`
}

// replayRequest is a validated rerun or fork body. A zero field keeps the
// parent's value.
type replayRequest struct {
	code    string            // fork only
	jobType *jobtypes.JobType // nil: the parent's
	timeout time.Duration     // 0: the parent's
}

// handleRerun is POST /jobs/:id/rerun: run the stored code and input of a
// finished job again.
func (s *Server) handleRerun(c *fiber.Ctx) error { return s.handleReplay(c, jobs.RelRerun) }

// handleFork is POST /jobs/:id/fork: run new code on the stored input of a
// job.
func (s *Server) handleFork(c *fiber.Ctx) error { return s.handleReplay(c, jobs.RelFork) }

// handleReplay validates a rerun or fork and queues it through the Service.
func (s *Server) handleReplay(c *fiber.Ctx, rel jobs.Relationship) error {
	id, err := pathID(c, jobNotFound)
	if err != nil {
		return err
	}
	body, err := rawBody(c)
	if err != nil {
		return err
	}
	req, err := decodeReplayRequest(body, rel == jobs.RelFork, s.registry, s.limits)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	caller := callerOf(c)
	if req.timeout > 0 && req.jobType == nil {
		// The new job inherits the parent's job type, so the timeout must
		// fit that one's limit.
		parent, err := s.service.Get(ctx, caller, id)
		if parent, err = executionOrNotFound(parent, err, jobNotFound); err != nil {
			return err
		}
		if jt, ok := s.registry.Get(parent.JobType); ok {
			if err := checkJobTypeTimeout(req.timeout, jt); err != nil {
				return err
			}
		}
	}
	o := jobs.Overrides{CorrelationID: s.correlate(c), Timeout: req.timeout}
	if req.jobType != nil {
		o.JobType = req.jobType.Name
	}
	var exec *jobs.Execution
	if rel == jobs.RelFork {
		exec, err = s.service.Fork(ctx, caller, id, req.code, o)
	} else {
		exec, err = s.service.Rerun(ctx, caller, id, o)
	}
	if exec, err = executionOrNotFound(exec, err, jobNotFound); err != nil {
		return err
	}
	resp := ReplayResponse{JobID: exec.ID, Status: jobs.StatusQueued, ParentID: exec.ParentID, Relationship: exec.Relationship}
	if resp.ParentID == "" {
		resp.ParentID = id
	}
	if resp.Relationship == "" {
		resp.Relationship = rel
	}
	return c.JSON(resp)
}

// decodeReplayRequest parses and validates a rerun body (fork false) or a
// fork body (fork true) as strictly as DecodeExecuteRequest: exact field
// names, job_type known to reg, timeout within lim and the job type's
// limit. An empty rerun body means {}.
func decodeReplayRequest(body []byte, fork bool, reg *jobtypes.Registry, lim Limits) (replayRequest, error) {
	lim = lim.withDefaults()
	var req replayRequest
	names := rerunFieldNames
	if fork {
		names = forkFieldNames
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if fork {
			return req, jobs.Errorf(jobs.EMALFORMED, emptyExecuteBody)
		}
		return req, nil
	}
	f, err := scanBody(body, names)
	if err != nil {
		return req, err
	}
	if fork {
		if req.code, err = decodeCode(f["code"], lim.MaxCodeBytes); err != nil {
			return req, err
		}
	}
	if req.jobType, err = decodeJobType(f["job_type"], reg); err != nil {
		return req, err
	}
	if req.timeout, err = decodeTimeout(f["timeout"], req.jobType, lim.MaxTimeout); err != nil {
		return req, err
	}
	return req, nil
}
