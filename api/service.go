package api

import (
	"context"
	"time"

	"github.com/tako-run/tako/jobs"
)

// Service is what the API needs from tako's dispatcher: recorded sync
// runs, the durable queue and the history. The real implementation lives
// in package dispatch; tests use a fake. Every error is a *jobs.Error where the
// caller can act on it (ENOTFOUND, ECONFLICT, EUNAVAILABLE, EOVERQUOTA,
// ETIMEOUT ...); anything else is internal.
//
// Every call on existing executions takes the jobs.Caller the request was
// authenticated as, and answers only for the executions it may see: for
// any other, ENOTFOUND, exactly as for an id that does not exist.
type Service interface {
	// Execute records sub and runs it now, returning the finished
	// execution. A key at its max_concurrent quota gets EOVERQUOTA.
	Execute(ctx context.Context, sub jobs.Submission) (*jobs.Execution, error)
	// Begin admits and records sub as Execute does, and returns its
	// record and run, which runs it under ctx and returns it finished;
	// run must be called once. In between, the execution can be followed.
	Begin(ctx context.Context, sub jobs.Submission) (exec *jobs.Execution, run func() (*jobs.Execution, error), err error)
	// Submit records sub and queues it. created is false when an execution
	// with the same idempotency key and payload already exists; that one is
	// returned instead (a different payload is ECONFLICT). A key at its
	// max_pending quota gets EOVERQUOTA.
	Submit(ctx context.Context, sub jobs.Submission) (exec *jobs.Execution, created bool, err error)
	// Get returns one execution.
	Get(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error)
	// OutputSoFar returns what a running execution has printed up to now.
	OutputSoFar(ctx context.Context, c jobs.Caller, id string) (jobs.OutputSoFar, error)
	// Events sends an execution's events to emit, from just after the
	// event lastEventID names ("" for the first), until the last (nil),
	// emit fails or ctx ends. EINVALID names Last-Event-ID when it is not
	// one of the stream's.
	Events(ctx context.Context, c jobs.Caller, id, lastEventID string, emit func(jobs.Event) error) error
	// Deliveries returns the recorded attempts to deliver an execution's
	// webhook, oldest first.
	Deliveries(ctx context.Context, c jobs.Caller, id string) ([]jobs.Delivery, error)
	// RetryDelivery delivers an ended execution's webhook again, with a
	// fresh schedule: ENOTREADY while it runs, ECONFLICT when it has no
	// callback URL.
	RetryDelivery(ctx context.Context, c jobs.Caller, id string) error
	// Wait returns the execution once it has ended, or ETIMEOUT when it has
	// not ended within timeout; the job itself keeps running.
	Wait(ctx context.Context, c jobs.Caller, id string, timeout time.Duration) (*jobs.Execution, error)
	// Cancel stops a queued or running async execution; ENOTFOUND when it
	// has already ended or is synchronous. It returns the execution as it is afterwards.
	Cancel(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error)
	// Rerun queues a new execution, c's, with the code and input of id.
	Rerun(ctx context.Context, c jobs.Caller, id string, o jobs.Overrides) (*jobs.Execution, error)
	// Fork queues a new execution, c's, with the input of id and new code.
	Fork(ctx context.Context, c jobs.Caller, id, code string, o jobs.Overrides) (*jobs.Execution, error)
	// Artifact returns one stored artifact of an execution, bytes included.
	Artifact(ctx context.Context, c jobs.Caller, id, name string) (*jobs.ArtifactContent, error)
	// List returns one page of the history c may see, as summaries.
	List(ctx context.Context, c jobs.Caller, f jobs.ExecutionFilter) (jobs.ExecutionPage, error)
	// DatabaseHealth reports whether the database answers.
	DatabaseHealth(ctx context.Context) error
	// Queued returns how many executions wait in the queue, counted up to
	// just past the limit, and the limit (queue.max_pending).
	Queued(ctx context.Context) (queued, limit int, err error)

	// DeadLetters returns one page of the dead-letter queue c may see:
	// the async executions that exhausted their attempts.
	DeadLetters(ctx context.Context, c jobs.Caller, f jobs.DeadLetterFilter) (jobs.DeadLetterPage, error)
	// DeadLetterStats counts the dead-letter entries c may see.
	DeadLetterStats(ctx context.Context, c jobs.Caller) (jobs.DeadLetterStats, error)
	// RemoveDeadLetter deletes entry id from the dead-letter queue; the
	// execution's record stays. ENOTFOUND when no such entry is c's to see.
	RemoveDeadLetter(ctx context.Context, c jobs.Caller, id int64) error
	// RetryDeadLetter queues entry id's execution again, as the same
	// execution with a fresh attempt, and takes it out of the dead-letter
	// queue. It returns the execution as queued. ENOTFOUND as for
	// RemoveDeadLetter.
	RetryDeadLetter(ctx context.Context, c jobs.Caller, id int64) (*jobs.Execution, error)
}
