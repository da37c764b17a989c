package dispatch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
)

// Execute records sub and runs it now: on this node when it runs sub's job
// type, else on a worker through the queue (see Begin). The record shows
// in the history like any other; the returned execution carries its
// result. A key at its max_concurrent quota gets EOVERQUOTA, and nothing
// is stored.
func (s *Dispatcher) Execute(ctx context.Context, sub jobs.Submission) (*jobs.Execution, error) {
	_, run, err := s.Begin(ctx, sub)
	if err != nil {
		return nil, err
	}
	return run()
}

// Begin admits sub and records it, as Execute does, and returns its record
// and run, which runs it under ctx and returns it finished. run must be
// called, once. Between the two, the execution can be followed by its id
// (Events). A node that runs sub's job type admits it on its runner and
// records it as running here; any other node (an api node) queues it at
// sync priority and run waits for the worker's result (beginQueued).
func (s *Dispatcher) Begin(ctx context.Context, sub jobs.Submission) (*jobs.Execution, func() (*jobs.Execution, error), error) {
	sub.IdempotencyKey = "" // honoured by async submissions only, as in Tako VM
	jt, err := s.admit(ctx, &sub)
	if err != nil {
		return nil, nil, err
	}
	if !s.serves(jt.Name) {
		return s.beginQueued(ctx, sub)
	}
	e := newExecution(sub, jobs.StatusRunning)
	e.Attempt, e.Node = 1, s.opts.Node
	out := s.newOutputLog(e)
	req := request(e, jt)
	req.Output = out
	// Admitted before it is stored: a request this node cannot take (503)
	// or that is over its key's quota (429) leaves no record behind.
	runReserved, release, err := s.runner.Reserve(ctx, req)
	if err != nil {
		out.close()
		return nil, nil, err
	}
	// Recorded as running on this node from the start.
	if err := s.recordRunning(ctx, e); err != nil {
		out.close()
		release()
		return nil, nil, err
	}
	run := func() (*jobs.Execution, error) {
		// After the record: the container's removal and the pool's refill
		// then do not slow it.
		defer release()
		rctx, unhold := s.held.hold(ctx, e.ID, e.Attempt)
		defer unhold()
		res, err := runReserved(rctx)
		logged := out.close()
		if err != nil {
			s.finish(e, infrastructureResult(err), 0)
			s.dropOutput(e, logged, false)
			return nil, err
		}
		stored, err := s.finish(e, res, 0)
		if err != nil {
			return nil, s.dbError("record result", err)
		}
		s.dropOutput(e, logged, false)
		if !stored {
			// The leader ended it while this node was silent: the record
			// says how, not what this node saw.
			return s.Get(context.WithoutCancel(ctx), jobs.System, e.ID)
		}
		now := time.Now()
		e.Status, e.Result, e.FinishedAt = res.Status, res, &now
		return e, nil
	}
	return e, run, nil
}

// admit checks what every submission must meet before it is recorded: a
// configured job type, a network narrowing its allowlist covers, a
// callback URL the policy allows (resolved into sub), and, for a job type
// this node does not run, a live node that does. It returns the job type.
func (s *Dispatcher) admit(ctx context.Context, sub *jobs.Submission) (jobtypes.JobType, error) {
	jt, ok := s.registry.Get(sub.JobType)
	if !ok {
		return jt, jobs.FieldErrorf("job_type", "%s", s.registry.UnknownError(sub.JobType))
	}
	if err := checkNetwork(*sub, jt); err != nil {
		return jt, err
	}
	if !s.serves(jt.Name) && s.live.count(jt.Name) == 0 {
		return jt, &jobs.Error{Code: jobs.EUNAVAILABLE, RetryAfter: 5, Message: fmt.Sprintf(
			"no live worker runs job type %q: start a worker that serves it (worker.job_types), or check the workers' /health", jt.Name)}
	}
	if err := s.resolveCallback(ctx, sub, jt.CallbackURL); err != nil {
		return jt, err
	}
	return jt, nil
}

// Queue priorities: River runs a queue's jobs of priority 1 first. Sync
// executions queued by an api node have callers waiting on the line.
const (
	syncPriority  = 1
	asyncPriority = 2
)

// Submit records sub and queues it, in one transaction. An idempotency key
// that is already taken returns that execution when the payload is the same
// (created false) and ECONFLICT when it differs; the database's unique index
// decides between concurrent duplicates, whichever node they reach. A key
// at its max_pending quota gets EOVERQUOTA, a full queue EUNAVAILABLE, and
// then nothing is stored.
func (s *Dispatcher) Submit(ctx context.Context, sub jobs.Submission) (*jobs.Execution, bool, error) {
	if _, err := s.admit(ctx, &sub); err != nil {
		return nil, false, err
	}
	return s.enqueue(ctx, newExecution(sub, jobs.StatusQueued), asyncPriority)
}

// enqueue records e, queued, and its River job of priority, in one
// transaction, after the idempotency key (see Submit), the key's
// max_pending quota and queue.max_pending.
func (s *Dispatcher) enqueue(ctx context.Context, e *jobs.Execution, priority int) (*jobs.Execution, bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, s.dbError("submit", err)
	}
	defer tx.Rollback(context.Background())
	existing, err := s.store.Insert(ctx, tx, e)
	if err != nil {
		return nil, false, s.dbError("submit", err)
	}
	if existing != nil {
		prior, err := reuse(existing, e)
		return prior, false, err
	}
	// The key's quota before the global limit: every submission takes the
	// two locks in this order.
	if err := s.checkPending(ctx, tx, e); err != nil {
		return nil, false, s.dbError("submit", err)
	}
	queued, err := s.queued(ctx, tx)
	if err != nil {
		return nil, false, s.dbError("submit", err)
	}
	if err := queueFull(queued, s.opts.MaxPending); err != nil {
		return nil, false, err
	}
	res, err := s.river.InsertTx(ctx, tx, executeArgs{ExecutionID: e.ID, MaxRunMS: s.maxRun(e).Milliseconds()}, &river.InsertOpts{
		MaxAttempts: s.opts.MaxAttempts,
		Priority:    priority,
		Queue:       queueName(e.JobType),
	})
	if err != nil {
		return nil, false, s.dbError("enqueue", err)
	}
	if err := s.store.SetRiverJobID(ctx, tx, jobs.System, e.ID, res.Job.ID); err != nil {
		return nil, false, s.dbError("enqueue", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, s.dbError("submit", err)
	}
	return e, true, nil
}

// reuse decides a submission e whose idempotency key existing already
// took: the same payload gets existing back, another payload ECONFLICT.
func reuse(existing, e *jobs.Execution) (*jobs.Execution, error) {
	if existing.Fingerprint != e.Fingerprint {
		return nil, &jobs.Error{Code: jobs.ECONFLICT, Message: jobs.IdempotencyConflictMessage}
	}
	return existing, nil
}

// lockMargin is how close to queue.max_pending the queue must be before
// submissions take the submission lock. Far from the limit they do not
// serialize on it; near it they do, so the limit holds unless more than
// this many submissions race past it at once. A key's max_pending quota
// uses the same margin for its quota lock.
const lockMargin = 64

// nearLimit reports whether a count of n is close enough to limit that
// the count must be taken again under a lock to be exact.
func nearLimit(n, limit int) bool {
	return n+lockMargin > limit
}

// queueFull returns EUNAVAILABLE when queued, the queued executions with
// the one being admitted, exceed queue.max_pending; nil otherwise.
func queueFull(queued, maxPending int) error {
	if queued > maxPending {
		return &jobs.Error{Code: jobs.EUNAVAILABLE, Message: fmt.Sprintf("the queue is full (%d jobs pending); try again later", maxPending), RetryAfter: 5}
	}
	return nil
}

// queued counts the queued executions, this transaction's included, for the
// max_pending check.
func (s *Dispatcher) queued(ctx context.Context, tx pgx.Tx) (int, error) {
	n, err := s.store.CountQueued(ctx, tx, s.opts.MaxPending+1)
	if err != nil || !nearLimit(n, s.opts.MaxPending) {
		return n, err
	}
	if err := s.store.LockSubmissions(ctx, tx); err != nil {
		return 0, err
	}
	return s.store.CountQueued(ctx, tx, s.opts.MaxPending+1)
}

// request is what the runner needs to run e under jt.
func request(e *jobs.Execution, jt jobtypes.JobType) runner.Request {
	return runner.Request{
		Code: e.Code, ExecutionID: e.ID, InputJSON: e.InputJSON, JobType: jt, NetworkAllow: e.NetworkAllow,
		Requirements: e.Requirements, StartupTimeout: e.StartupTimeout, Timeout: e.Timeout,
	}
}

// newExecution is the record of a new submission.
func newExecution(sub jobs.Submission, status jobs.Status) *jobs.Execution {
	input := sub.InputJSON
	if len(input) == 0 {
		input = []byte("{}")
	}
	return &jobs.Execution{
		Code:           sub.Code,
		CorrelationID:  sub.CorrelationID,
		Fingerprint:    fingerprint(sub),
		ID:             newID(),
		IdempotencyKey: sub.IdempotencyKey,
		APIKey:         sub.APIKey,
		CallbackURL:    sub.CallbackURL,
		InputJSON:      input,
		JobType:        sub.JobType,
		Mode:           sub.Mode,
		NetworkAllow:   sub.NetworkAllow,
		ParentID:       sub.ParentID,
		Relationship:   sub.Relationship,
		Requirements:   sub.Requirements,
		StartupTimeout: sub.StartupTimeout,
		Status:         status,
		Timeout:        sub.Timeout,
	}
}

// fingerprint hashes what makes two submissions the same job: a reused
// idempotency key must come with the same fingerprint.
func fingerprint(sub jobs.Submission) string {
	var input any
	if err := json.Unmarshal(sub.InputJSON, &input); err != nil {
		input = string(sub.InputJSON)
	}
	b, _ := json.Marshal(struct {
		Code           string   `json:"code"`
		Input          any      `json:"input"` // re-encoded: key order does not matter
		JobType        string   `json:"job_type"`
		NetworkAllow   []string `json:"network_allow,omitempty"`
		Requirements   []string `json:"requirements"`
		StartupTimeout int64    `json:"startup_timeout_ms"`
		Timeout        int64    `json:"timeout_ms"`
	}{sub.Code, input, sub.JobType, sub.NetworkAllow, sub.Requirements, sub.StartupTimeout.Milliseconds(), sub.Timeout.Milliseconds()})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newID returns a time-ordered UUID.
func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// finish stores the result of e, artifacts included, and records it in the
// metrics and the log. queued is how long e waited in the queue before a
// node picked it up. It uses its own context: a result is stored even when
// the request that asked for it has gone.
func (s *Dispatcher) finish(e *jobs.Execution, res *jobs.Result, queued time.Duration) (stored bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	arts := make([]jobs.ArtifactContent, len(res.Artifacts))
	for i, a := range res.Artifacts {
		arts[i] = jobs.ArtifactContent{Artifact: a}
		if i < len(res.ArtifactBytes) {
			arts[i].Content = res.ArtifactBytes[i]
		}
	}
	log := s.jobLogger(e)
	done, err := s.storeResult(ctx, e, res, arts)
	if err != nil {
		log.Error("store result", "error", err)
		return false, err
	}
	if !done {
		// Cancelled meanwhile, or taken from this node while it was
		// silent (cluster.node_timeout) for another attempt.
		log.Warn("result not stored: the execution has ended, or another attempt holds it", "node", e.Node, "attempt", e.Attempt)
		return false, nil
	}
	total := time.Since(e.CreatedAt)
	s.opts.Metrics.JobEnded(e.JobType, res, queued, total)
	attrs := []slog.Attr{
		slog.String("status", string(res.Status)),
		slog.String("start", string(res.Start)),
		slog.Float64("duration_ms", float64(total)/float64(time.Millisecond)),
	}
	if res.Error != nil {
		attrs = append(attrs, slog.String("error_type", string(res.Error.Type)))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "execution finished", attrs...)
	return true, nil
}

// storeResult stores res as e's result, and queues e's webhook in the same
// transaction when it has one. It writes only while e's attempt holds the
// execution (e.Node and e.Attempt): false when it has ended or another
// attempt holds it.
func (s *Dispatcher) storeResult(ctx context.Context, e *jobs.Execution, res *jobs.Result, arts []jobs.ArtifactContent) (bool, error) {
	held := postgres.Holder{Node: e.Node, Attempt: e.Attempt}
	if e.CallbackURL == "" {
		return s.store.FinishHeld(ctx, s.historyOf(e), e.ID, held, res, arts)
	}
	var done bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		done, err = s.store.FinishHeld(ctx, tx, e.ID, held, res, arts)
		if err != nil || !done {
			return err
		}
		return s.enqueueDelivery(ctx, tx, e.ID, 1)
	})
	return done, err
}

// historyOf is the database e's record is written through: the pool with
// asynchronous commit for a sync execution, when there is one. Async
// submissions and their results always commit synchronously: nothing
// accepted may be lost.
func (s *Dispatcher) historyOf(e *jobs.Execution) *pgxpool.Pool {
	// A record that starts a webhook commits with its delivery job, which
	// must not be lost.
	if e.Mode == jobs.ModeSync && s.opts.SyncHistory != nil && e.CallbackURL == "" {
		return s.opts.SyncHistory
	}
	return s.pool
}

// newOutputLog starts the live output log of e, run on this node.
func (s *Dispatcher) newOutputLog(e *jobs.Execution) *outputLog {
	return newOutputLog(s.store, e.ID, s.opts.Node, s.opts.KeepOutput, s.jobLogger(e))
}

// dropOutput deletes e's output log once its record holds the output
// (unless streaming.keep_chunks), or before it runs again (again): logged
// says the log has rows.
func (s *Dispatcher) dropOutput(e *jobs.Execution, logged, again bool) {
	if !logged || (s.opts.KeepOutput && !again) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.DeleteOutput(ctx, e.ID); err != nil {
		s.jobLogger(e).Warn("delete live output", "error", err)
	}
}

// jobLogger returns the logger for lines about e: each carries its
// execution id, job type and correlation id.
func (s *Dispatcher) jobLogger(e *jobs.Execution) *slog.Logger {
	return s.logger.With("execution_id", e.ID, "job_type", e.JobType, "correlation_id", e.CorrelationID)
}

// infrastructureResult records a run that tako could not carry out.
func infrastructureResult(err error) *jobs.Result {
	t, msg := jobs.ErrInternal, "tako could not run the program"
	switch jobs.ErrorCodeOf(err) {
	case jobs.EUNAVAILABLE:
		t, msg = jobs.ErrServiceUnavail, err.Error()
	case jobs.EINVALID, jobs.ENOTALLOWED:
		// What was asked for cannot be provided, e.g. a requirement the
		// index does not have.
		t, msg = jobs.ErrDependency, err.Error()
	}
	return &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Error: &jobs.ExecError{Type: t, Message: msg}}
}

// cancelledResult records an execution stopped before or while it ran.
func cancelledResult(msg string) *jobs.Result {
	return &jobs.Result{Status: jobs.StatusCancelled, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrCancelled, Message: msg}}
}
