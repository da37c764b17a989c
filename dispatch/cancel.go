package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/tako-run/tako/jobs"
)

// cancelWait is how long Cancel waits for a running execution's node to
// kill it, so that it can answer with the final status.
const cancelWait = 5 * time.Second

// Cancel stops a queued or running async execution that c may act on,
// whichever node has it. As in the original, an execution that has ended,
// or that is synchronous (it ends with its request), is ENOTFOUND, like
// one that does not exist or is not c's. A queued one is cancelled at
// once; for a running one River tells the node that runs it, whose runner
// kills the container.
func (s *Dispatcher) Cancel(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error) {
	e, err := s.Get(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if e.Terminal() || e.Mode == jobs.ModeSync {
		return nil, jobs.Errorf(jobs.ENOTFOUND, "Job not found or already completed")
	}
	return s.cancel(ctx, c, e, "the execution was cancelled before it ran")
}

// cancel stops e, a queued or running execution that has a River job, as
// Cancel does; a queued one ends at once with the message.
func (s *Dispatcher) cancel(ctx context.Context, c jobs.Caller, e *jobs.Execution, message string) (*jobs.Execution, error) {
	id := e.ID
	riverID, err := s.store.RiverJobID(ctx, c, id)
	if err != nil {
		return nil, s.dbError("cancel", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.dbError("cancel", err)
	}
	defer tx.Rollback(context.Background())
	row, err := s.river.JobCancelTx(ctx, tx, riverID)
	if err != nil {
		return nil, s.dbError("cancel", err)
	}
	if row.State == rivertype.JobStateCancelled {
		// It had not started: nobody else will write its result.
		done, err := s.store.Finish(ctx, tx, c, id, cancelledResult(message), nil)
		if err != nil {
			return nil, s.dbError("cancel", err)
		}
		if done && e.CallbackURL != "" {
			if err := s.enqueueDelivery(ctx, tx, id, 1); err != nil {
				return nil, s.dbError("cancel", err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.dbError("cancel", err)
	}
	if after, err := s.Wait(ctx, c, id, cancelWait); err == nil {
		return after, nil
	}
	return s.Get(ctx, c, id)
}

// Rerun queues a new execution, c's, with the code and input of a finished
// one that c may see; ENOTFOUND for any other.
func (s *Dispatcher) Rerun(ctx context.Context, c jobs.Caller, id string, o jobs.Overrides) (*jobs.Execution, error) {
	parent, err := s.Get(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if !parent.Terminal() {
		return nil, jobs.Errorf(jobs.ENOTREADY, "Cannot rerun job that hasn't completed")
	}
	return s.replay(ctx, c, parent, parent.Code, jobs.RelRerun, o)
}

// Fork queues a new execution, c's, with new code and the input of one that
// c may see; ENOTFOUND for any other.
func (s *Dispatcher) Fork(ctx context.Context, c jobs.Caller, id, code string, o jobs.Overrides) (*jobs.Execution, error) {
	parent, err := s.Get(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return s.replay(ctx, c, parent, code, jobs.RelFork, o)
}

// replay submits the rerun or fork of parent as c's: c's quotas apply.
func (s *Dispatcher) replay(ctx context.Context, c jobs.Caller, parent *jobs.Execution, code string, rel jobs.Relationship, o jobs.Overrides) (*jobs.Execution, error) {
	sub := jobs.Submission{
		APIKey:         c.APIKey,
		Code:           code,
		CorrelationID:  cmp.Or(o.CorrelationID, parent.CorrelationID),
		InputJSON:      parent.InputJSON,
		JobType:        parent.JobType,
		Mode:           jobs.ModeAsync,
		NetworkAllow:   parent.NetworkAllow,
		ParentID:       parent.ID,
		Relationship:   rel,
		Requirements:   parent.Requirements,
		StartupTimeout: parent.StartupTimeout,
		Timeout:        parent.Timeout,
	}
	if o.JobType != "" {
		sub.JobType = o.JobType
	}
	jt, ok := s.registry.Get(sub.JobType)
	if !ok {
		return nil, jobs.FieldErrorf("job_type", "%s", s.registry.UnknownError(sub.JobType))
	}
	if o.Timeout != 0 {
		sub.Timeout = o.Timeout
	}
	// The parent's timeout may not fit the job type it moves to.
	sub.Timeout = min(sub.Timeout, jt.Limits.Timeout)
	e, _, err := s.Submit(ctx, sub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return e, nil
}
