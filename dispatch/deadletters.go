package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/tako-run/tako/jobs"
)

// The dead-letter queue is not a table of tako's: it is River's discarded
// execution jobs, joined to their executions. A job is discarded when an
// attempt fails on infrastructure and it was the last one (executeWorker),
// or when River's rescuer finds it stuck on its last attempt because its
// node died (the maintenance job then ends the execution). Programs that
// fail, time out or are cancelled complete their job and never get here.

// DeadLetters returns one page of the dead-letter queue c may see, newest
// failure first; see the store's DeadLetters for paging and filtering.
func (s *Dispatcher) DeadLetters(ctx context.Context, c jobs.Caller, f jobs.DeadLetterFilter) (jobs.DeadLetterPage, error) {
	page, err := s.store.DeadLetters(ctx, c, f)
	if err != nil {
		return jobs.DeadLetterPage{}, s.dbError("list dead letters", err)
	}
	return page, nil
}

// DeadLetterStats counts the dead-letter entries c may see, in all and by
// error type.
func (s *Dispatcher) DeadLetterStats(ctx context.Context, c jobs.Caller) (jobs.DeadLetterStats, error) {
	stats, err := s.store.DeadLetterStats(ctx, c)
	if err != nil {
		return jobs.DeadLetterStats{}, s.dbError("count dead letters", err)
	}
	return stats, nil
}

// RemoveDeadLetter deletes dead-letter entry id, a River job id, if c may
// see it: the discarded job goes, the execution's record stays in the
// history. ENOTFOUND "DLQ entry not found" for an entry that does not
// exist, is no longer a dead letter or is not c's.
func (s *Dispatcher) RemoveDeadLetter(ctx context.Context, c jobs.Caller, id int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.dbError("remove dead letter", err)
	}
	defer tx.Rollback(context.Background())
	e, err := s.store.LockDeadLetter(ctx, tx, c, id)
	if err != nil {
		return s.dbError("remove dead letter", err)
	}
	if _, err := s.river.JobDeleteTx(ctx, tx, id); err != nil {
		return s.dbError("remove dead letter", err)
	}
	// A job the rescuer discarded leaves its execution running until the
	// maintenance job ends it. Without its job nothing else would (a
	// cancel could not reach it), so it ends here as maintenance would
	// have ended it.
	ended := false
	if !e.Terminal() {
		if ended, err = s.store.Finish(ctx, tx, c, e.ID, abandonedResult(), nil); err != nil {
			return s.dbError("remove dead letter", err)
		}
		if ended && e.CallbackURL != "" {
			if err := s.enqueueDelivery(ctx, tx, e.ID, 1); err != nil {
				return s.dbError("remove dead letter", err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return s.dbError("remove dead letter", err)
	}
	if ended {
		s.opts.Metrics.JobEnded(e.JobType, abandonedResult(), 0, time.Since(e.CreatedAt))
		s.jobLogger(e).Warn("ended an execution whose dead-letter entry was removed")
	}
	return nil
}

// RetryDeadLetter runs dead-letter entry id's execution again, if c may
// see it, and returns the execution as now stored: the same execution,
// queued, its result cleared. In one transaction the execution is reopened
// and its River job made available again, with River's one more attempt,
// so the entry leaves the dead-letter queue. The execution's API key's
// max_pending quota (EOVERQUOTA) and queue.max_pending (EUNAVAILABLE)
// apply as to a submission. ENOTFOUND "DLQ entry not found" as for
// RemoveDeadLetter.
func (s *Dispatcher) RetryDeadLetter(ctx context.Context, c jobs.Caller, id int64) (*jobs.Execution, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	defer tx.Rollback(context.Background())
	e, err := s.store.LockDeadLetter(ctx, tx, c, id)
	if err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	e, err = s.store.Reopen(ctx, tx, c, e.ID)
	if err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	// The key's quota before the global limit, in Submit's order.
	if err := s.checkPending(ctx, tx, e); err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	queued, err := s.queued(ctx, tx)
	if err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	if err := queueFull(queued, s.opts.MaxPending); err != nil {
		return nil, err
	}
	// River makes a discarded job available, now, and gives it one more
	// attempt when it had used all of them.
	job, err := s.river.JobRetryTx(ctx, tx, id)
	if err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	if job.State != rivertype.JobStateAvailable {
		return nil, fmt.Errorf("retry dead letter: river left job %d %s", id, job.State)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.dbError("retry dead letter", err)
	}
	s.jobLogger(e).Info("dead-letter entry retried", "river_job_id", id)
	return e, nil
}
