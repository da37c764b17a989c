// Package dispatch is the dispatcher that admits, queues and runs
// executions: it records every execution in PostgreSQL, runs sync
// executions at once and async ones through a River queue per job type,
// and answers the history. The executions table is the single source of
// truth for the API; River carries the work. It sits between the API above
// and the runner below; the domain (package jobs) and its store know
// nothing of it.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/webhook"
)

// Runner runs one program; *runner.Runner satisfies it.
type Runner interface {
	// Availability says whether jt can run on this node.
	Availability(jt jobtypes.JobType) runner.Availability
	// Reserve admits req on this node (its image, a slot) without running
	// it, so that sync executions are stored only once admitted. run runs
	// the program once; release, called run or not, ends the reservation
	// and starts the engine work its run leaves (removal, refill): the
	// dispatcher calls it once the result is recorded.
	Reserve(ctx context.Context, req runner.Request) (run func(context.Context) (*jobs.Result, error), release func(), err error)
}

// Options configure a Dispatcher.
type Options struct {
	// BuildTimeout bounds building the image of an execution's ad-hoc
	// requirements; an async attempt is allowed that much more time.
	BuildTimeout time.Duration
	// KeepOutput keeps a job's live output log after its record is written
	// (streaming.keep_chunks).
	KeepOutput bool
	// Heartbeat is how often this node tells the database it is alive;
	// 0 means 2 seconds.
	Heartbeat time.Duration
	// JobTypes are the job types this node runs (worker.job_types); empty
	// means all. It works only their queues.
	JobTypes []string
	// MaxAttempts bounds runs of a job that meets infrastructure failures.
	MaxAttempts int
	// MaxPending is the most queued executions across all nodes.
	MaxPending int
	// Metrics records every execution that ends; nil records nothing.
	Metrics *metrics.Metrics
	// Node names this process in records; it must be unique among the
	// processes sharing the database (the runner's instance id).
	Node string
	// NodeTimeout is how long a node may go without a heartbeat before it
	// is taken for gone and its sync executions are ended; 0 means 15
	// seconds.
	NodeTimeout time.Duration
	// Quotas bound the work of each API key, by name, across all nodes.
	// A key it does not list, and work submitted without a key, has no
	// quota.
	Quotas map[string]jobs.Quota
	// Role is what the node says it is in its heartbeat: "all" (the
	// default) or "worker". A Dispatcher without a Runner is "api".
	Role string
	// SyncQueueWait is how long a sync execution this node cannot run
	// waits in the queue for a worker to take it before it is cancelled
	// with 503; 0 means 10 seconds.
	SyncQueueWait time.Duration
	// RescueAfter is how long a job may run before River takes its node
	// for dead and runs it again.
	RescueAfter time.Duration
	// Retention is how long records and artifacts are kept.
	Retention time.Duration
	// Webhooks configure the callbacks sent when jobs end.
	Webhooks Webhooks
	// SyncHistory is the database the records of sync executions are
	// written through: a pool with asynchronous commit
	// (postgres.AsyncCommit), since their callers get the result in the
	// answer; nil means the main pool.
	SyncHistory *pgxpool.Pool
}

// Dispatcher records, queues and runs executions: it admits each one (job
// type, quotas, queue limit), runs sync ones on this node and async ones
// from River, and stores every result. It is safe for concurrent use.
// Start it before use and Stop it on shutdown.
type Dispatcher struct {
	beats    *heartbeat
	held     heldAttempts // the attempts this node runs
	live     liveRunners  // what the live nodes run
	logger   *slog.Logger
	notifier *notifier
	opts     Options
	pool     *pgxpool.Pool
	registry *jobtypes.Registry
	river    *river.Client[pgx.Tx]
	runner   Runner
	store    *postgres.Store
	// webhooks delivers webhooks: it dials only addresses the policy allows.
	webhooks *http.Client
}

// queueName is the River queue of a job type.
func queueName(jobType string) string { return "jt_" + jobType }

// New builds a Dispatcher on a migrated database. Each job type gets its own
// River queue with the job type's concurrency, worked by the nodes that run
// it. With a nil run the node runs no jobs (an api node): it queues sync
// executions for the workers too, and waits for their results.
func New(pool *pgxpool.Pool, registry *jobtypes.Registry, run Runner, opts Options, logger *slog.Logger) (*Dispatcher, error) {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 2 * time.Second
	}
	if opts.SyncQueueWait <= 0 {
		opts.SyncQueueWait = 10 * time.Second
	}
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = 15 * time.Second
	}
	s := &Dispatcher{
		logger:   logger.With("component", "jobs"),
		opts:     opts,
		pool:     pool,
		registry: registry,
		runner:   run,
		store:    postgres.NewStore(pool),
	}
	s.notifier = newNotifier(pool, s.logger)
	s.webhooks = webhook.NewClient(opts.Webhooks.Policy, opts.Webhooks.Timeout)

	client, err := river.NewClient(riverpgxv5.New(pool), s.riverConfig(logger.With("component", "river")))
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	s.river = client
	return s, nil
}

// riverConfig is the configuration of the dispatcher's River client: its
// workers, one queue per job type with the job type's concurrency, and the
// periodic maintenance. Discarded jobs, the dead-letter queue, are kept as
// long as the records they belong to (queue.retention_days), not River's
// default week. River logs to logger.
func (s *Dispatcher) riverConfig(logger *slog.Logger) *river.Config {
	workers := river.NewWorkers()
	river.AddWorker(workers, &executeWorker{s: s})
	river.AddWorker(workers, &maintenanceWorker{s: s})
	river.AddWorker(workers, &sweepWorker{s: s})
	river.AddWorker(workers, &deliverWorker{s: s, client: s.webhooks})
	queues := map[string]river.QueueConfig{
		river.QueueDefault: {MaxWorkers: 1},
		webhookQueue:       {MaxWorkers: webhookWorkers},
	}
	for _, jt := range s.registry.All() {
		if s.serves(jt.Name) {
			queues[queueName(jt.Name)] = river.QueueConfig{MaxWorkers: max(jt.Concurrency, 1)}
		}
	}
	return &river.Config{
		DiscardedJobRetentionPeriod: s.opts.Retention,
		FetchCooldown:               10 * time.Millisecond,
		ID:                          s.opts.Node,
		JobTimeout:                  s.opts.RescueAfter, // for maintenance; executions bound their own
		Logger:                      logger,
		MaxAttempts:                 s.opts.MaxAttempts,
		PeriodicJobs:                []*river.PeriodicJob{maintenanceJob(), sweepJob(s.opts.NodeTimeout)},
		Queues:                      queues,
		RescueStuckJobsAfter:        s.opts.RescueAfter,
		Workers:                     workers,
	}
}

// Start announces this node, starts working the queues and listening for
// finished executions.
func (s *Dispatcher) Start(ctx context.Context) error {
	beats, err := startHeartbeat(ctx, s.store, s.opts.Node, s.opts.Heartbeat, s.beat, s.logger)
	if err != nil {
		return err
	}
	if err := s.river.Start(ctx); err != nil {
		beats.stop()
		return fmt.Errorf("start queue: %w", err)
	}
	s.beats = beats
	s.notifier.start()
	return nil
}

// Stop stops claiming jobs and lets running ones finish until ctx is done;
// then it cancels them, and their executions go back to the queue for the
// next node. It is idempotent.
func (s *Dispatcher) Stop(ctx context.Context) {
	if err := s.river.Stop(ctx); err != nil {
		cancelCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.river.StopAndCancel(cancelCtx); err != nil {
			s.logger.Warn("stop queue", "error", err)
		}
	}
	s.notifier.stop()
	s.webhooks.CloseIdleConnections()
	if s.beats != nil {
		s.beats.stop()
	}
}

// DatabaseHealth reports whether the database answers.
func (s *Dispatcher) DatabaseHealth(ctx context.Context) error { return s.store.Ping(ctx) }

// QueueDepths returns the queued executions of each job type, over all
// nodes. It is one grouped count on an index; the metrics sample it.
func (s *Dispatcher) QueueDepths(ctx context.Context) (map[string]int, error) {
	return s.store.QueueDepths(ctx)
}

// Queued returns how many executions wait in the queue, over all nodes,
// counted up to just past queue.max_pending, and that limit.
func (s *Dispatcher) Queued(ctx context.Context) (int, int, error) {
	n, err := s.store.CountQueued(ctx, nil, s.opts.MaxPending+1)
	return n, s.opts.MaxPending, err
}

// dbError turns a store error into what the caller should see: domain
// errors pass through, a database that does not answer is EUNAVAILABLE, the
// rest is wrapped as internal.
func (s *Dispatcher) dbError(op string, err error) error {
	var e *jobs.Error
	if errors.As(err, &e) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if s.store.Ping(ctx) != nil {
		return &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "the database is unavailable; try again shortly", RetryAfter: 5}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Get returns one execution, if c may see it; ENOTFOUND otherwise.
func (s *Dispatcher) Get(ctx context.Context, c jobs.Caller, id string) (*jobs.Execution, error) {
	e, err := s.store.Get(ctx, c, id)
	if err != nil {
		return nil, s.dbError("get execution", err)
	}
	return e, nil
}

// Artifact returns one stored artifact, bytes included, if c may see its
// execution; ENOTFOUND otherwise.
func (s *Dispatcher) Artifact(ctx context.Context, c jobs.Caller, id, name string) (*jobs.ArtifactContent, error) {
	a, err := s.store.Artifact(ctx, c, id, name)
	if err != nil {
		return nil, s.dbError("get artifact", err)
	}
	return a, nil
}

// List returns one page of the history c may see, as summaries.
func (s *Dispatcher) List(ctx context.Context, c jobs.Caller, f jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
	page, err := s.store.List(ctx, c, f)
	if err != nil {
		return jobs.ExecutionPage{}, s.dbError("list executions", err)
	}
	return page, nil
}
