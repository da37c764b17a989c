package dispatch

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tako-run/tako/jobs"
)

// How long a caller over a quota is told to wait (Retry-After, seconds),
// and how long an async job whose key is at its max_concurrent quota goes
// back to the queue before it is tried again. A snooze costs no attempt.
const (
	pendingRetryAfter    = 5
	concurrentRetryAfter = 1
	quotaSnooze          = time.Second
)

// quota returns the quota of the API key named apiKey; work without a key
// has none.
func (s *Dispatcher) quota(apiKey string) jobs.Quota {
	if apiKey == "" {
		return jobs.Quota{}
	}
	return s.opts.Quotas[apiKey]
}

// recordRunning records e, a sync execution about to run on this node,
// unless its API key is at its max_concurrent quota: then it stores
// nothing and returns EOVERQUOTA. Without that quota it is one INSERT;
// with it, the count and the insert share a transaction under the key's
// quota lock, so concurrent requests on any node cannot overshoot it.
func (s *Dispatcher) recordRunning(ctx context.Context, e *jobs.Execution) error {
	limit := s.quota(e.APIKey).MaxConcurrent
	if limit <= 0 {
		if _, err := s.store.Insert(ctx, s.historyOf(e), e); err != nil {
			return s.dbError("record execution", err)
		}
		return nil
	}
	err := pgx.BeginFunc(ctx, s.historyOf(e), func(tx pgx.Tx) error {
		if err := s.checkConcurrent(ctx, tx, e.APIKey, "", limit); err != nil {
			return err
		}
		_, err := s.store.Insert(ctx, tx, e)
		return err
	})
	if err != nil {
		return s.dbError("record execution", err)
	}
	return nil
}

// markRunning records that attempt of e, an async execution, has started
// on this node, as the store's MarkRunning does, unless e's API key is at
// its max_concurrent quota: then e stays queued and the error returned
// snoozes its River job for quotaSnooze.
func (s *Dispatcher) markRunning(ctx context.Context, e *jobs.Execution, attempt int) (bool, error) {
	limit := s.quota(e.APIKey).MaxConcurrent
	if limit <= 0 {
		return s.store.MarkRunning(ctx, nil, jobs.System, e.ID, attempt, s.opts.Node)
	}
	var started bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// e itself may still be running from an attempt on a node that
		// died: it does not count against its own start.
		if err := s.checkConcurrent(ctx, tx, e.APIKey, e.ID, limit); err != nil {
			return err
		}
		var err error
		started, err = s.store.MarkRunning(ctx, tx, jobs.System, e.ID, attempt, s.opts.Node)
		return err
	})
	if jobs.ErrorCodeOf(err) == jobs.EOVERQUOTA {
		return false, river.JobSnooze(quotaSnooze)
	}
	return started, err
}

// checkConcurrent returns EOVERQUOTA when the API key apiKey has limit or
// more running executions, except the execution except. It takes the
// key's quota lock first, so that what tx does next is counted by the
// next check, on whichever node.
func (s *Dispatcher) checkConcurrent(ctx context.Context, tx pgx.Tx, apiKey, except string, limit int) error {
	if err := s.store.LockAPIKey(ctx, tx, apiKey); err != nil {
		return err
	}
	n, err := s.store.CountActive(ctx, tx, apiKey, jobs.StatusRunning, except, limit)
	if err != nil {
		return err
	}
	return overConcurrent(apiKey, n, limit)
}

// overConcurrent returns EOVERQUOTA when the API key apiKey, running n
// executions besides the one to start, is at its max_concurrent quota
// limit; nil otherwise.
func overConcurrent(apiKey string, n, limit int) error {
	if n >= limit {
		return &jobs.Error{
			Code:       jobs.EOVERQUOTA,
			Message:    fmt.Sprintf("API key %q is at its max_concurrent quota (%d running executions); retry when one has finished", apiKey, limit),
			RetryAfter: concurrentRetryAfter,
		}
	}
	return nil
}

// checkPending returns EOVERQUOTA when e's API key, e included, has more
// queued executions than its max_pending quota; tx has just inserted e,
// and rolling it back stores nothing. Far from the limit the count needs
// no lock; near it, the key's quota lock makes it exact across nodes.
func (s *Dispatcher) checkPending(ctx context.Context, tx pgx.Tx, e *jobs.Execution) error {
	limit := s.quota(e.APIKey).MaxPending
	if limit <= 0 {
		return nil
	}
	n, err := s.store.CountActive(ctx, tx, e.APIKey, jobs.StatusQueued, "", limit+1)
	if err != nil {
		return err
	}
	if nearLimit(n, limit) {
		if err := s.store.LockAPIKey(ctx, tx, e.APIKey); err != nil {
			return err
		}
		if n, err = s.store.CountActive(ctx, tx, e.APIKey, jobs.StatusQueued, "", limit+1); err != nil {
			return err
		}
	}
	return overPending(e.APIKey, n, limit)
}

// overPending returns EOVERQUOTA when the API key apiKey, with n queued
// executions including the one being admitted, is over its max_pending
// quota limit; nil otherwise.
func overPending(apiKey string, n, limit int) error {
	if n > limit {
		return &jobs.Error{
			Code:       jobs.EOVERQUOTA,
			Message:    fmt.Sprintf("API key %q is at its max_pending quota (%d queued jobs); retry when some have run", apiKey, limit),
			RetryAfter: pendingRetryAfter,
		}
	}
	return nil
}
