package dispatch

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
)

// beginQueued records sub, a sync execution this node does not run (it is
// an api node, or not among its worker.job_types), and queues it at sync
// priority for the nodes that run it. run waits for the result through the
// finish notification, so the caller sees the same answer as from a node
// that runs it: the job's result, or 503 when no worker takes it within
// Options.SyncQueueWait (the workers are busy; the record then says it was
// cancelled before it ran).
func (s *Dispatcher) beginQueued(ctx context.Context, sub jobs.Submission) (*jobs.Execution, func() (*jobs.Execution, error), error) {
	sub.Mode = jobs.ModeSync
	e := newExecution(sub, jobs.StatusQueued)
	if _, _, err := s.enqueue(ctx, e, syncPriority); err != nil {
		return nil, nil, err
	}
	return e, func() (*jobs.Execution, error) { return s.awaitQueued(ctx, e) }, nil
}

// awaitQueued waits for e, queued by beginQueued, to end, and returns it.
// When no worker starts it within SyncQueueWait it is withdrawn (503), and
// when ctx ends first (the caller has gone, or this node is stopping) it
// is cancelled wherever it runs: nobody is left to read its result.
func (s *Dispatcher) awaitQueued(ctx context.Context, e *jobs.Execution) (*jobs.Execution, error) {
	done, err := s.Wait(ctx, jobs.System, e.ID, s.opts.SyncQueueWait)
	if err == nil {
		return done, nil
	}
	if jobs.ErrorCodeOf(err) == jobs.ETIMEOUT {
		withdrawn, werr := s.withdraw(context.WithoutCancel(ctx), e, fmt.Sprintf("no worker took the execution within %s", s.opts.SyncQueueWait))
		if werr != nil {
			return nil, werr
		}
		if withdrawn {
			return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, RetryAfter: 5, Message: fmt.Sprintf(
				"no worker took the execution within %s (runner.acquire_timeout): the workers of job type %q are busy; try again shortly", s.opts.SyncQueueWait, e.JobType)}
		}
		// Started, or ended: wait for the rest of it.
		done, err = s.Wait(ctx, jobs.System, e.ID, s.maxRun(e)+attemptSlack)
		if err == nil {
			return done, nil
		}
	}
	s.cancel(context.WithoutCancel(ctx), jobs.System, e, "the request that waited for the execution ended")
	return nil, err
}

// withdraw ends e as cancelled with message if no worker has started it:
// its River job is deleted unless it runs, in the transaction that stores
// the end. It reports whether it withdrew e.
func (s *Dispatcher) withdraw(ctx context.Context, e *jobs.Execution, message string) (bool, error) {
	riverID, err := s.store.RiverJobID(ctx, jobs.System, e.ID)
	if err != nil {
		return false, s.dbError("withdraw", err)
	}
	var done bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := s.river.JobDeleteTx(ctx, tx, riverID); err != nil {
			return err
		}
		var err error
		done, err = s.store.Finish(ctx, tx, jobs.System, e.ID, cancelledResult(message), nil)
		return err
	})
	if errors.Is(err, rivertype.ErrJobRunning) {
		return false, nil
	}
	if err != nil {
		return false, s.dbError("withdraw", err)
	}
	return done, nil
}

// Workers is the view of the nodes that run jobs from a node that runs
// none (an api node): the api.Runner such a node serves /health,
// /job-types and submissions with. It knows what the last heartbeat
// learnt of the live nodes.
type Workers struct{ s *Dispatcher }

// Workers returns the dispatcher's view of the nodes that run jobs.
func (s *Dispatcher) Workers() Workers { return Workers{s} }

// Availability says whether a live node runs jt.
func (w Workers) Availability(jt jobtypes.JobType) runner.Availability {
	if n := w.s.live.count(jt.Name); n > 0 {
		return runner.Availability{Available: true, Runtime: "workers"}
	}
	return runner.Availability{Reason: fmt.Sprintf("no live worker runs job type %q", jt.Name)}
}

// Health reports whether any live node runs jobs: the Docker engines are
// theirs.
func (w Workers) Health(context.Context) runner.Health {
	if w.s.live.any() {
		return runner.Health{DockerAvailable: true, GVisorReason: "this api node runs no jobs: see the workers' /health"}
	}
	return runner.Health{DockerError: "no live worker runs jobs", GVisorReason: "this api node runs no jobs: see the workers' /health"}
}

// Build refuses: the workers build the images of their job types.
func (w Workers) Build(context.Context, jobtypes.JobType) (string, error) {
	return "", &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "this api node builds no images: each worker builds the images of its job types when it starts"}
}
