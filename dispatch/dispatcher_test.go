package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
)

// scriptedRunner answers Execute from a script, one entry per call, and
// repeats the last entry. It stands in for Docker to test the queue's
// retry logic; the real runner is exercised end to end in cmd/tako.
// available is the Availability of the test runners: every job type runs.
type available struct{}

// Availability implements Runner.
func (available) Availability(jobtypes.JobType) runner.Availability {
	return runner.Availability{Available: true}
}

type scriptedRunner struct {
	available
	mu     sync.Mutex
	script []func() (*jobs.Result, error)
	calls  int
}

func (r *scriptedRunner) Execute(ctx context.Context, req runner.Request) (*jobs.Result, error) {
	r.mu.Lock()
	step := r.script[min(r.calls, len(r.script)-1)]
	r.calls++
	r.mu.Unlock()
	return step()
}

func (r *scriptedRunner) Reserve(ctx context.Context, req runner.Request) (func(context.Context) (*jobs.Result, error), func(), error) {
	return func(ctx context.Context) (*jobs.Result, error) { return r.Execute(ctx, req) }, func() {}, nil
}

func (r *scriptedRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func succeeded() (*jobs.Result, error) {
	return &jobs.Result{Status: jobs.StatusSucceeded, Stdout: "ok\n"}, nil
}

func dockerDown() (*jobs.Result, error) {
	return nil, errors.New("create container: connection refused")
}

func newDispatcher(t *testing.T, run Runner, opts Options) *Dispatcher {
	t.Helper()
	pool := pgtest.DB(t)
	reg, err := jobtypes.NewRegistry([]jobtypes.JobType{{Name: "default", Concurrency: 2, Limits: jobtypes.Limits{Timeout: 10 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 3
	}
	if opts.MaxPending == 0 {
		opts.MaxPending = 100
	}
	opts.Node, opts.RescueAfter, opts.Retention = "test-node", time.Hour, 24*time.Hour
	s, err := New(pool, reg, run, opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, s *Dispatcher) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Stop(ctx)
	})
}

func submission(code string) jobs.Submission {
	return jobs.Submission{Code: code, JobType: "default", Mode: jobs.ModeAsync, Timeout: 10 * time.Second}
}

// runToEnd submits code and waits until its execution has ended.
func runToEnd(t *testing.T, s *Dispatcher, code string) *jobs.Execution {
	t.Helper()
	e, _, err := s.Submit(context.Background(), submission(code))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Wait(context.Background(), jobs.System, e.ID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestInfrastructureFailuresAreRetried(t *testing.T) {
	t.Parallel()
	run := &scriptedRunner{script: []func() (*jobs.Result, error){dockerDown, succeeded}}
	s := newDispatcher(t, run, Options{})
	start(t, s)
	got := runToEnd(t, s, "print('ok')")
	if got.Status != jobs.StatusSucceeded || got.Attempt != 2 || run.count() != 2 {
		t.Errorf("status %s attempt %d after %d runs; want succeeded on attempt 2", got.Status, got.Attempt, run.count())
	}
}

func TestInfrastructureFailuresGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	run := &scriptedRunner{script: []func() (*jobs.Result, error){dockerDown}}
	s := newDispatcher(t, run, Options{MaxAttempts: 2})
	start(t, s)
	got := runToEnd(t, s, "print('ok')")
	if got.Status != jobs.StatusFailed || got.Result.Error == nil || got.Result.Error.Type != jobs.ErrInternal || got.Attempt != 2 || run.count() != 2 {
		t.Errorf("status %s error %+v attempt %d after %d runs", got.Status, got.Result.Error, got.Attempt, run.count())
	}
}

func TestFailingProgramIsNotRetried(t *testing.T) {
	t.Parallel()
	run := &scriptedRunner{script: []func() (*jobs.Result, error){func() (*jobs.Result, error) {
		return &jobs.Result{Status: jobs.StatusFailed, ExitCode: 1, Error: &jobs.ExecError{Type: jobs.ErrName, Message: "NameError: x"}}, nil
	}}}
	s := newDispatcher(t, run, Options{})
	start(t, s)
	got := runToEnd(t, s, "x")
	// A retry would be scheduled before River settles the job: wait for
	// its final state, then count.
	var state string
	var attempt int
	for deadline := time.Now().Add(2 * time.Minute); state != "completed"; time.Sleep(20 * time.Millisecond) {
		err := s.pool.QueryRow(context.Background(), `SELECT j.state, j.attempt FROM river_job j
			JOIN tako_executions e ON e.river_job_id = j.id WHERE e.id = $1`, got.ID).Scan(&state, &attempt)
		if err != nil {
			t.Fatal(err)
		}
		if state == "retryable" || state == "available" || time.Now().After(deadline) {
			break
		}
	}
	if got.Status != jobs.StatusFailed || got.Attempt != 1 || run.count() != 1 || state != "completed" || attempt != 1 {
		t.Errorf("status %s attempt %d after %d runs, queue job %s after %d attempts; want one failed run, completed",
			got.Status, got.Attempt, run.count(), state, attempt)
	}
}

func TestSubmitLimits(t *testing.T) {
	t.Parallel()
	// Not started: nothing is worked, so submissions stay queued.
	s := newDispatcher(t, &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}, Options{MaxPending: 2})
	ctx := context.Background()
	keyed := submission("print('keyed')")
	keyed.IdempotencyKey = "key-0001"
	first, _, err := s.Submit(ctx, keyed)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Submit(ctx, submission("print(1)")); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Submit(ctx, submission("print(1)"))
	var e *jobs.Error
	if !errors.As(err, &e) || e.Code != jobs.EUNAVAILABLE || e.RetryAfter == 0 {
		t.Fatalf("third submission over max_pending 2: %v", err)
	}
	page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{})
	if err != nil || len(page.Items) != 2 {
		t.Errorf("%d executions recorded, want 2 (nothing half-written): %v", len(page.Items), err)
	}
	// A retry of an accepted submission still finds its job when full.
	again, created, err := s.Submit(ctx, keyed)
	if err != nil || created || again.ID != first.ID {
		t.Errorf("retry of an accepted submission while full: %v %v %v", again, created, err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newDispatcher(t, &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}, Options{})
	ctx := context.Background()
	sub := submission("print('same')")
	sub.IdempotencyKey = "key-0001"
	first, created, err := s.Submit(ctx, sub)
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	again, created, err := s.Submit(ctx, sub)
	if err != nil || created || again.ID != first.ID {
		t.Errorf("same key and payload: %v %v %v", again, created, err)
	}
	sub.Code = "print('other')"
	if _, _, err := s.Submit(ctx, sub); jobs.ErrorCodeOf(err) != jobs.ECONFLICT {
		t.Errorf("same key, other payload: %v", err)
	}
}

func TestMaintenanceEndsOrphanedExecutions(t *testing.T) {
	t.Parallel()
	s := newDispatcher(t, &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}, Options{})
	ctx := context.Background()
	e, _, err := s.Submit(ctx, submission("print(1)"))
	if err != nil {
		t.Fatal(err)
	}
	// As if River had discarded the job after a node died on its last attempt.
	if _, err := s.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = (SELECT river_job_id FROM tako_executions WHERE id = $1)`, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := (&maintenanceWorker{s: s}).Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, jobs.System, e.ID)
	if err != nil || got.Status != jobs.StatusFailed || got.Result.Error.Type != jobs.ErrInternal {
		t.Errorf("orphaned execution: %+v %v", got, err)
	}
}

// TestCancelBeforeTheWorkerRecordsIt: River may cancel a job whose worker
// has not recorded anything yet (the cancel arrives as the worker starts).
// The execution ends as cancelled, whether the worker sees the cancel or
// maintenance finds the execution later; never as failed.
func TestCancelBeforeTheWorkerRecordsIt(t *testing.T) {
	t.Parallel()
	run := &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}
	s := newDispatcher(t, run, Options{})
	bg := context.Background()

	t.Run("the worker sees it", func(t *testing.T) {
		e, _, err := s.Submit(bg, submission("print(1)"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancelCause(bg)
		cancel(river.ErrJobCancelledRemotely)
		job := &river.Job[executeArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 3}, Args: executeArgs{ExecutionID: e.ID}}
		if err := (&executeWorker{s: s}).Work(ctx, job); err != nil {
			t.Fatalf("Work: %v", err)
		}
		got, err := s.Get(bg, jobs.System, e.ID)
		if err != nil || got.Status != jobs.StatusCancelled || run.count() != 0 {
			t.Errorf("execution %+v after %d runs, %v; want cancelled, never run", got, run.count(), err)
		}
	})
	t.Run("maintenance finds it", func(t *testing.T) {
		e, _, err := s.Submit(bg, submission("print(2)"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(bg, `UPDATE river_job SET state = 'cancelled', finalized_at = now() WHERE id = (SELECT river_job_id FROM tako_executions WHERE id = $1)`, e.ID); err != nil {
			t.Fatal(err)
		}
		if err := (&maintenanceWorker{s: s}).Work(bg, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(bg, jobs.System, e.ID)
		if err != nil || got.Status != jobs.StatusCancelled || got.Result.Error.Type != jobs.ErrCancelled {
			t.Errorf("orphan of a cancelled job: %+v %v", got, err)
		}
	})
}

// TestAttemptDeadlineIsNotAShutdown: an attempt that runs out of its time
// ends the execution as a timeout, once; it is not put back in the queue
// as a shutdown would be.
func TestAttemptDeadlineIsNotAShutdown(t *testing.T) {
	t.Parallel()
	run := &scriptedRunner{script: []func() (*jobs.Result, error){func() (*jobs.Result, error) {
		return nil, nil // replaced below: blocks until its context ends
	}}}
	blocking := &blockingRunner{scriptedRunner: run}
	s := newDispatcher(t, blocking, Options{})
	start(t, s)
	sub := submission("import time; time.sleep(600)")
	sub.Timeout, sub.StartupTimeout = time.Second, time.Second // an attempt gets 1+1+10 s
	e, _, err := s.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Wait(context.Background(), jobs.System, e.ID, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != jobs.StatusTimeout || got.Attempt != 1 || blocking.count() != 1 {
		t.Errorf("status %s attempt %d after %d runs; want one timed-out attempt", got.Status, got.Attempt, blocking.count())
	}
}

// blockingRunner runs until its context ends, as a build or a program that
// outlives the attempt would.
type blockingRunner struct{ *scriptedRunner }

func (r *blockingRunner) Reserve(ctx context.Context, req runner.Request) (func(context.Context) (*jobs.Result, error), func(), error) {
	run := func(ctx context.Context) (*jobs.Result, error) {
		r.scriptedRunner.Execute(ctx, req)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return run, func() {}, nil
}

func TestMaxRun(t *testing.T) {
	t.Parallel()
	s := &Dispatcher{opts: Options{BuildTimeout: 15 * time.Minute}}
	plain := &jobs.Execution{Timeout: 30 * time.Second}
	withReqs := &jobs.Execution{Timeout: 30 * time.Second, StartupTimeout: 5 * time.Second, Requirements: []string{"numpy"}}
	if got := s.maxRun(plain); got != 30*time.Second+defaultStartup+attemptSlack {
		t.Errorf("maxRun without requirements = %s", got)
	}
	if got := s.maxRun(withReqs); got != 35*time.Second+attemptSlack+15*time.Minute {
		t.Errorf("maxRun with requirements = %s, want the build timeout counted", got)
	}
}

// TestWaitWhoseCallerGivesUpFirst: a long poll whose caller's deadline
// fires before, or with, the wait's own timer is the same timeout
// (ETIMEOUT, a 408), never the shutdown's EUNAVAILABLE. The API's long poll
// sets both to the same duration, so either may fire first.
func TestWaitWhoseCallerGivesUpFirst(t *testing.T) {
	t.Parallel()
	s := newDispatcher(t, &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}, Options{})
	e, _, err := s.Submit(context.Background(), submission("print(1)")) // never started: stays queued
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(ctx, jobs.System, e.ID, time.Hour); jobs.ErrorCodeOf(err) != jobs.ETIMEOUT {
		t.Errorf("wait past the caller's deadline: %v, want ETIMEOUT", err)
	}
}

// releaseRunner records, at each release, whether the execution it ran
// was already stored as ended.
type releaseRunner struct {
	available
	s *Dispatcher

	mu       sync.Mutex
	releases map[string]int
	stored   map[string]bool // at release: the execution's record had ended
}

func (r *releaseRunner) Reserve(ctx context.Context, req runner.Request) (func(context.Context) (*jobs.Result, error), func(), error) {
	run := func(context.Context) (*jobs.Result, error) { return succeeded() }
	release := func() {
		e, err := r.s.Get(context.Background(), jobs.System, req.ExecutionID)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.releases[req.ExecutionID]++
		r.stored[req.ExecutionID] = err == nil && e.Terminal()
	}
	return run, release, nil
}

// TestReleaseFollowsTheRecord proves that the runner's engine work after
// a run (removing the container, refilling the pool), which starts at
// release, waits until the result is stored, sync or async.
func TestReleaseFollowsTheRecord(t *testing.T) {
	t.Parallel()
	run := &releaseRunner{releases: map[string]int{}, stored: map[string]bool{}}
	s := newDispatcher(t, run, Options{})
	run.s = s
	start(t, s)
	sub := submission("print('sync')")
	sub.Mode = jobs.ModeSync
	done, err := s.Execute(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	async := runToEnd(t, s, "print('async')")
	// The worker releases after the record that ended Wait.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		run.mu.Lock()
		n := run.releases[async.ID]
		run.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	for _, id := range []string{done.ID, async.ID} {
		if run.releases[id] != 1 || !run.stored[id] {
			t.Errorf("execution %s: released %d times, stored when released: %v; want once, after the record", id, run.releases[id], run.stored[id])
		}
	}
}

func TestSyncHistoryCommitsAsynchronously(t *testing.T) {
	t.Parallel()
	s := newDispatcher(t, &scriptedRunner{script: []func() (*jobs.Result, error){succeeded}}, Options{})
	async, err := postgres.AsyncCommit(context.Background(), s.pool, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(async.Close)
	s.opts.SyncHistory = async
	start(t, s)
	sub := submission("print('sync')")
	sub.Mode = jobs.ModeSync
	if s.historyOf(&jobs.Execution{Mode: jobs.ModeSync}) != async || s.historyOf(&jobs.Execution{Mode: jobs.ModeAsync}) != s.pool {
		t.Fatal("sync records must go through the async-commit pool, async ones through the main pool")
	}
	e, err := s.Execute(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(context.Background(), jobs.System, e.ID)
	if err != nil || got.Status != jobs.StatusSucceeded || got.Result == nil || got.Result.Stdout != "ok\n" {
		t.Fatalf("the sync record read back: %+v, %v", got, err)
	}
	if got := runToEnd(t, s, "print('async')"); got.Status != jobs.StatusSucceeded {
		t.Errorf("an async execution beside it: %s", got.Status)
	}
}

func TestDeadLettersLastAsLongAsTheirRecords(t *testing.T) {
	t.Parallel()
	reg, err := jobtypes.NewRegistry([]jobtypes.JobType{{Name: "default", Concurrency: 3}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Dispatcher{registry: reg, runner: &scriptedRunner{}, opts: Options{Retention: 30 * 24 * time.Hour, Node: "n"}}
	cfg := s.riverConfig(slog.New(slog.DiscardHandler))
	if cfg.DiscardedJobRetentionPeriod != s.opts.Retention {
		t.Errorf("discarded jobs (the dead-letter queue) are kept %s, want queue.retention_days (%s)", cfg.DiscardedJobRetentionPeriod, s.opts.Retention)
	}
	if q := cfg.Queues[queueName("default")]; q.MaxWorkers != 3 {
		t.Errorf("the job type's queue has %d workers, want its concurrency 3", q.MaxWorkers)
	}
}

// TestQueuesByRole checks that a node works the queues of the job types it
// runs, and only those: an api node none, a worker those of
// worker.job_types. Every node works the maintenance and webhook queues.
func TestQueuesByRole(t *testing.T) {
	t.Parallel()
	reg, err := jobtypes.NewRegistry([]jobtypes.JobType{{Name: "default", Concurrency: 1}, {Name: "data", Concurrency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		runner Runner
		serves []string
		want   []string
	}{
		{"all", &scriptedRunner{}, nil, []string{"default", "jt_data", "jt_default", webhookQueue}},
		{"worker of data", &scriptedRunner{}, []string{"data"}, []string{"default", "jt_data", webhookQueue}},
		{"api", nil, nil, []string{"default", webhookQueue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Dispatcher{registry: reg, opts: Options{Node: "n", JobTypes: tt.serves}}
			if tt.runner != nil {
				s.runner = tt.runner
			}
			got := slices.Sorted(maps.Keys(s.riverConfig(slog.New(slog.DiscardHandler)).Queues))
			if !slices.Equal(got, tt.want) {
				t.Errorf("queues %v, want %v", got, tt.want)
			}
		})
	}
}
