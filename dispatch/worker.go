package dispatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/tako-run/tako/jobs"
)

// executeArgs is the River job that runs one queued execution.
type executeArgs struct {
	ExecutionID string `json:"execution_id"`
	// MaxRunMS bounds one attempt: the execution's start-up and run
	// timeouts plus slack. River's rescuer only takes a job running for
	// longer than this (and queue.rescue_after) to be on a dead node.
	MaxRunMS int64 `json:"max_run_ms"`
	// PriorAttempts counts the attempts made under earlier queue jobs of
	// the execution: its node went silent, and the leader queued it
	// again as a new job (see sweepWorker).
	PriorAttempts int `json:"prior_attempts,omitempty"`
}

// attemptSlack is added to an execution's timeouts to bound one attempt.
const attemptSlack = 10 * time.Second

// defaultStartup is what the runner allows for start-up when an execution
// does not say.
const defaultStartup = 60 * time.Second

// maxRun bounds one attempt of e: its timeouts, and the building of its
// requirements' image, which may come first.
func (s *Dispatcher) maxRun(e *jobs.Execution) time.Duration {
	startup := e.StartupTimeout
	if startup == 0 {
		startup = defaultStartup
	}
	d := e.Timeout + startup + attemptSlack
	if len(e.Requirements) > 0 {
		d += s.opts.BuildTimeout
	}
	return d
}

// Kind implements river.JobArgs.
func (executeArgs) Kind() string { return "tako_execute" }

// executeWorker runs queued executions.
type executeWorker struct {
	river.WorkerDefaults[executeArgs]
	s *Dispatcher
}

// Timeout bounds one attempt. The runner enforces the execution's own
// timeouts well before this; it is what tells River's rescuer when a job
// still marked running belongs to a node that died.
func (w *executeWorker) Timeout(job *river.Job[executeArgs]) time.Duration {
	if job.Args.MaxRunMS <= 0 {
		return defaultStartup + 5*time.Minute + attemptSlack
	}
	return time.Duration(job.Args.MaxRunMS) * time.Millisecond
}

// NextRetry retries infrastructure failures soon; see retryDelay.
func (w *executeWorker) NextRetry(job *river.Job[executeArgs]) time.Time {
	return time.Now().Add(retryDelay(job.Attempt))
}

// retryDelay is how long a job waits after its attempt failed on
// infrastructure: 1 s, 2 s, 4 s ... at most 30 s. The shift is bounded,
// so a job with queue.max_attempts in the dozens never overflows to no
// delay at all.
func retryDelay(attempt int) time.Duration {
	return min(time.Second<<min(max(attempt-1, 0), 5), 30*time.Second)
}

// Work runs the execution. A program that fails is a finished job; only a
// failure of tako's own (Docker, the node) returns an error, so River
// retries it until MaxAttempts. On the last attempt such a failure ends
// the execution and still returns the error, so River discards the job:
// it is then in the dead-letter queue. A cancel from any node ends the
// execution as cancelled; a shutdown puts it back in the queue.
func (w *executeWorker) Work(ctx context.Context, job *river.Job[executeArgs]) error {
	s := w.s
	id := job.Args.ExecutionID
	// Read even when River has already cancelled ctx, so that a cancel
	// that came first is recorded below.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	e, err := s.store.Get(rctx, jobs.System, id)
	cancel()
	if jobs.ErrorCodeOf(err) == jobs.ENOTFOUND {
		return river.JobCancel(fmt.Errorf("execution %s no longer exists", id))
	}
	if err != nil {
		return fmt.Errorf("get execution: %w", err)
	}
	if e.Terminal() {
		return nil
	}
	queued := time.Since(e.CreatedAt)
	// Cancelled before it ran here: River would mark the job cancelled and
	// leave the execution to look abandoned; record the cancel instead.
	if cancelledRemotely(ctx) {
		s.finish(e, cancelledResult("the execution was cancelled"), queued)
		return nil
	}
	jt, ok := s.registry.Get(e.JobType)
	if !ok {
		s.finish(e, &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrConfig, Message: fmt.Sprintf("job type %q is not configured on this server", e.JobType)}}, queued)
		return nil
	}
	// Attempts under earlier queue jobs of the execution count too.
	attempt, maxAttempts := job.Args.PriorAttempts+job.Attempt, job.Args.PriorAttempts+job.MaxAttempts
	// A key at its max_concurrent quota: back to the queue for a while.
	if ok, err := s.markRunning(ctx, e, attempt); err != nil || !ok {
		if cancelledRemotely(ctx) {
			s.finish(e, cancelledResult("the execution was cancelled"), queued)
			return nil
		}
		return err
	}
	e.Node, e.Attempt = s.opts.Node, attempt
	log := s.jobLogger(e).With("attempt", attempt)
	ctx, unhold := s.held.hold(ctx, e.ID, attempt)
	defer unhold()

	if attempt > 1 {
		// An attempt that died with its node may have left output rows.
		s.dropOutput(e, true, true)
	}
	var res *jobs.Result
	out := s.newOutputLog(e)
	req := request(e, jt)
	req.Output = out
	run, release, err := s.runner.Reserve(ctx, req)
	if err == nil {
		defer release() // after the record, as Execute does
		res, err = run(ctx)
	}
	logged := out.close()
	d := attemptOutcome(endOf(ctx), res, err, attempt, maxAttempts, w.Timeout(job))
	switch d.verdict {
	case verdictDrop:
		// Its queue job was ended with it; another attempt, elsewhere or
		// here, runs the execution and writes its output and result.
		log.Warn("execution taken from this node while it was silent; dropping this attempt's result")
		return nil
	case verdictRequeue:
		// The error wraps River's stop cause, so River retries the job
		// whatever its attempt instead of dead-lettering it.
		s.dropOutput(e, logged, true)
		s.requeue(e)
		return fmt.Errorf("execution %s interrupted by shutdown: %w", id, context.Cause(ctx))
	case verdictRetry:
		log.Warn("execution failed on infrastructure; retrying", "error", err)
		s.dropOutput(e, logged, true)
		s.requeue(e)
		return err
	case verdictGiveUp:
		log.Error("execution failed on infrastructure; giving up", "error", err)
		s.finish(e, d.result, queued)
		s.dropOutput(e, logged, false)
		// Returned on the last attempt, the error makes River discard the
		// job rather than complete it: the dead-letter queue is River's
		// discarded jobs.
		return err
	}
	s.finish(e, d.result, queued)
	s.dropOutput(e, logged, false)
	return nil
}

// attemptEnd is how an attempt's context stood when the runner returned.
type attemptEnd int

const (
	// endRan: the context is live; the runner's answer stands.
	endRan attemptEnd = iota
	// endTaken: the execution was taken from this node while it was
	// silent; another attempt holds it.
	endTaken
	// endCancelled: someone cancelled the job, from whichever node.
	endCancelled
	// endDeadline: the attempt ran out of the time it was given.
	endDeadline
	// endShutdown: the context ended otherwise; the node is stopping.
	endShutdown
)

// endOf reports how ctx, an attempt's context, stands. A taken execution
// wins over a remote cancel, that over the deadline, and all over a
// shutdown.
func endOf(ctx context.Context) attemptEnd {
	switch {
	case taken(ctx):
		return endTaken
	case cancelledRemotely(ctx):
		return endCancelled
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return endDeadline
	case ctx.Err() != nil:
		return endShutdown
	}
	return endRan
}

// verdict is what becomes of an execution and its River job after an
// attempt.
type verdict int

const (
	// verdictFinish stores the decision's result and completes the job.
	verdictFinish verdict = iota
	// verdictRequeue puts the execution back in the queue for River to run
	// again whatever its attempt: the node is shutting down.
	verdictRequeue
	// verdictRetry puts the execution back in the queue and fails the
	// attempt, for River to retry: infrastructure failed, attempts remain.
	verdictRetry
	// verdictGiveUp stores the decision's result and fails the attempt, so
	// River discards the job into the dead-letter queue: infrastructure
	// failed on the last attempt.
	verdictGiveUp
	// verdictDrop stores nothing: the execution was taken from this node,
	// and its queue job ended with the attempt.
	verdictDrop
)

// decision is what attemptOutcome decided: the verdict, and the result to
// store for verdictFinish and verdictGiveUp.
type decision struct {
	verdict verdict
	result  *jobs.Result
}

// attemptOutcome decides what an attempt that ended as end, with the
// runner's res and err, means for its execution: attempt of maxAttempts,
// each allowed limit. A program that fails is a finished execution; only
// a failure of tako's own is retried.
func attemptOutcome(end attemptEnd, res *jobs.Result, err error, attempt, maxAttempts int, limit time.Duration) decision {
	switch {
	case end == endTaken:
		return decision{verdict: verdictDrop}
	case end == endCancelled:
		if res == nil || res.Status != jobs.StatusCancelled {
			res = cancelledResult("the execution was cancelled")
		}
		return decision{verdict: verdictFinish, result: res}
	case end == endDeadline:
		// The attempt ran out of the time it was given, build included:
		// another attempt would only do the same.
		if res == nil || res.Status == jobs.StatusCancelled {
			res = &jobs.Result{Status: jobs.StatusTimeout, ExitCode: -1, Error: &jobs.ExecError{
				Type: jobs.ErrTimeout, Message: fmt.Sprintf("the execution did not finish within its attempt's %s, building its requirements included", limit),
			}}
		}
		return decision{verdict: verdictFinish, result: res}
	case end == endShutdown:
		// Run it again, here after a restart or on another node.
		return decision{verdict: verdictRequeue}
	case jobs.ErrorCodeOf(err) == jobs.EINVALID || jobs.ErrorCodeOf(err) == jobs.ENOTALLOWED:
		// The request itself cannot be met (a requirement pip cannot
		// resolve): retrying would only fail again.
		return decision{verdict: verdictFinish, result: infrastructureResult(err)}
	case err != nil && attempt < maxAttempts:
		return decision{verdict: verdictRetry}
	case err != nil:
		return decision{verdict: verdictGiveUp, result: infrastructureResult(err)}
	}
	return decision{verdict: verdictFinish, result: res}
}

// cancelledRemotely reports whether ctx ended because someone cancelled the
// job, from whichever node.
func cancelledRemotely(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely)
}

// requeue puts e back in the queue after an interrupted attempt.
func (s *Dispatcher) requeue(e *jobs.Execution) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.Requeue(ctx, jobs.System, e.ID); err != nil {
		s.jobLogger(e).Error("requeue execution", "error", err)
	}
}

// maintenanceArgs is the periodic job that applies retention.
type maintenanceArgs struct{}

// Kind implements river.JobArgs.
func (maintenanceArgs) Kind() string { return "tako_maintenance" }

func maintenanceJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(5*time.Minute), func() (river.JobArgs, *river.InsertOpts) {
		return maintenanceArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// maintenanceWorker deletes records and artifacts past retention and ends
// executions whose queue job ended without them.
type maintenanceWorker struct {
	river.WorkerDefaults[maintenanceArgs]
	s *Dispatcher
}

// Work implements river.Worker.
func (w *maintenanceWorker) Work(ctx context.Context, _ *river.Job[maintenanceArgs]) error {
	n, err := w.s.store.DeleteOlderThan(ctx, time.Now().Add(-w.s.opts.Retention))
	if err != nil {
		return fmt.Errorf("apply retention: %w", err)
	}
	if n > 0 {
		w.s.logger.Info("deleted executions past retention", "count", n)
	}
	orphans, err := w.s.store.Orphans(ctx)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		e, err := w.s.store.Get(ctx, jobs.System, o.ID)
		if err != nil {
			return fmt.Errorf("get orphaned execution: %w", err)
		}
		if o.Cancelled {
			w.s.jobLogger(e).Info("ending an execution whose queue job was cancelled before it ran")
			w.s.finish(e, cancelledResult("the execution was cancelled"), 0)
			continue
		}
		w.s.jobLogger(e).Warn("ending an execution whose queue job ended without it")
		w.s.finish(e, abandonedResult(), 0)
	}
	return nil
}

// abandonedResult records an async execution whose queue job ended
// without it, for example discarded by River's rescuer after a node died
// on its last attempt.
func abandonedResult() *jobs.Result {
	return infrastructureFailure("the execution was abandoned after its last attempt")
}
