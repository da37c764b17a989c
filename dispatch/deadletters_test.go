package dispatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/runner"
)

// programRunner answers Execute by the program's code, so that one dispatcher
// can run programs that succeed, fail, and meet infrastructure failures
// side by side. A test changes a program's answer with set.
type programRunner struct {
	available
	mu    sync.Mutex
	steps map[string]func() (*jobs.Result, error)
	runs  map[string]int
}

func newProgramRunner() *programRunner {
	return &programRunner{steps: map[string]func() (*jobs.Result, error){}, runs: map[string]int{}}
}

// set makes every later run of code answer with step.
func (r *programRunner) set(code string, step func() (*jobs.Result, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps[code] = step
}

func (r *programRunner) Execute(ctx context.Context, req runner.Request) (*jobs.Result, error) {
	r.mu.Lock()
	step, ok := r.steps[req.Code]
	r.runs[req.Code]++
	r.mu.Unlock()
	if !ok {
		return nil, errors.New("programRunner: no answer for " + req.Code)
	}
	return step()
}

func (r *programRunner) Reserve(ctx context.Context, req runner.Request) (func(context.Context) (*jobs.Result, error), func(), error) {
	return func(ctx context.Context) (*jobs.Result, error) { return r.Execute(ctx, req) }, func() {}, nil
}

// count is how many times code has run.
func (r *programRunner) count(code string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[code]
}

// programFails is a program that runs and exits with an error of its own.
func programFails() (*jobs.Result, error) {
	return &jobs.Result{Status: jobs.StatusFailed, ExitCode: 1, Error: &jobs.ExecError{Type: jobs.ErrName, Message: "NameError: x"}}, nil
}

// noSlot is the runner turning work away.
func noSlot() (*jobs.Result, error) {
	return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "no free slot"}
}

// waitLimit bounds every wait of these tests: generous, for a loaded
// machine; nothing asserts on how long anything took.
const waitLimit = 2 * time.Minute

// submitAs queues code as the API key key would, with a correlation id and
// an input.
func submitAs(t *testing.T, s *Dispatcher, key, code string) *jobs.Execution {
	t.Helper()
	sub := submission(code)
	sub.APIKey, sub.CorrelationID, sub.InputJSON = key, "corr-"+code, []byte(`{"b":2,"a":1}`)
	e, _, err := s.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitEnded waits until execution id has ended and returns it.
func waitEnded(t *testing.T, s *Dispatcher, id string) *jobs.Execution {
	t.Helper()
	e, err := s.Wait(context.Background(), jobs.System, id, waitLimit)
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return e
}

// queueJob returns the id, state and attempt of execution id's River job.
func queueJob(t *testing.T, s *Dispatcher, id string) (jobID int64, state string, attempt int) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT j.id, j.state, j.attempt FROM river_job j
		JOIN tako_executions e ON e.river_job_id = j.id WHERE e.id = $1`, id).Scan(&jobID, &state, &attempt)
	if err != nil {
		t.Fatalf("read queue job of %s: %v", id, err)
	}
	return jobID, state, attempt
}

// waitQueueJob waits until execution id's River job is in state after
// attempt (0 for any), and returns its id. River settles a job shortly
// after the worker has stored the execution's result.
func waitQueueJob(t *testing.T, s *Dispatcher, id, state string, attempt int) int64 {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(20 * time.Millisecond) {
		jobID, got, n := queueJob(t, s, id)
		if got == state && (attempt == 0 || n == attempt) {
			return jobID
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue job of %s is %s after attempt %d, want %s after %d", id, got, n, state, attempt)
		}
	}
}

// deadLetters returns the whole dead-letter queue c may see.
func deadLetters(t *testing.T, s *Dispatcher, c jobs.Caller, f jobs.DeadLetterFilter) jobs.DeadLetterPage {
	t.Helper()
	page, err := s.DeadLetters(context.Background(), c, f)
	if err != nil {
		t.Fatalf("DeadLetters: %v", err)
	}
	return page
}

// stats returns the dead-letter counts c may see.
func stats(t *testing.T, s *Dispatcher, c jobs.Caller) jobs.DeadLetterStats {
	t.Helper()
	st, err := s.DeadLetterStats(context.Background(), c)
	if err != nil {
		t.Fatalf("DeadLetterStats: %v", err)
	}
	return st
}

// entryIDs returns the River job ids of the entries, in order.
func entryIDs(items []jobs.DeadLetter) []int64 {
	out := make([]int64, len(items))
	for i, d := range items {
		out[i] = d.ID
	}
	return out
}

// assertDLQNotFound fails unless err is the dead-letter queue's ENOTFOUND,
// with Tako VM's detail.
func assertDLQNotFound(t *testing.T, what string, err error) {
	t.Helper()
	var de *jobs.Error
	if !errors.As(err, &de) || de.Code != jobs.ENOTFOUND || de.Message != "DLQ entry not found" {
		t.Errorf("%s: %v, want ENOTFOUND %q", what, err, "DLQ entry not found")
	}
}

// TestDeadLetterAfterLastAttempt: an execution whose every attempt fails
// on infrastructure ends failed and lands in the dead-letter queue with
// everything a user needs to act on it; a program that succeeds or fails
// by itself does not.
func TestDeadLetterAfterLastAttempt(t *testing.T) {
	t.Parallel()
	run := newProgramRunner()
	run.set("broken", dockerDown)
	run.set("fine", succeeded)
	run.set("buggy", programFails)
	s := newDispatcher(t, run, Options{MaxAttempts: 2})
	start(t, s)

	broken := submitAs(t, s, "a", "broken")
	fine, buggy := submitAs(t, s, "a", "fine"), submitAs(t, s, "a", "buggy")
	got := waitEnded(t, s, broken.ID)
	if got.Status != jobs.StatusFailed || got.Result.Error == nil || got.Result.Error.Type != jobs.ErrInternal || got.Attempt != 2 {
		t.Fatalf("broken execution: status %s, result %+v, attempt %d", got.Status, got.Result, got.Attempt)
	}
	jobID := waitQueueJob(t, s, broken.ID, "discarded", 2)
	waitEnded(t, s, fine.ID)
	waitEnded(t, s, buggy.ID)
	waitQueueJob(t, s, fine.ID, "completed", 1)
	waitQueueJob(t, s, buggy.ID, "completed", 1)

	page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{})
	if len(page.Items) != 1 || page.HasMore {
		t.Fatalf("dead letters: %+v, want the broken execution only", page)
	}
	d := page.Items[0]
	if d.ID != jobID || d.ExecutionID != broken.ID || d.JobType != "default" || d.APIKey != "a" ||
		d.CorrelationID != "corr-broken" || d.Code != "broken" || string(d.InputJSON) != `{"b":2,"a":1}` ||
		d.ErrorType != jobs.ErrInternal || d.ErrorMessage != "tako could not run the program" || d.Attempts != 2 ||
		!d.CreatedAt.Equal(broken.CreatedAt) || d.FailedAt.Before(d.CreatedAt) {
		t.Errorf("entry: %+v\nexecution created %v, queue job %d", d, broken.CreatedAt, jobID)
	}
	if run.count("broken") != 2 {
		t.Errorf("broken ran %d times, want 2", run.count("broken"))
	}
	st := stats(t, s, jobs.System)
	if st.Total != 1 || len(st.ByErrorType) != 1 || st.ByErrorType[jobs.ErrInternal] != 1 {
		t.Errorf("stats: %+v, want 1 internal_error", st)
	}
}

// TestRetryDeadLetter: a retried entry runs again as the same execution;
// if it fails again it is back with one more attempt, and once it
// succeeds it leaves the queue for good.
func TestRetryDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := newProgramRunner()
	run.set("flaky", dockerDown)
	s := newDispatcher(t, run, Options{MaxAttempts: 2})
	start(t, s)
	e := submitAs(t, s, "a", "flaky")
	waitEnded(t, s, e.ID)
	jobID := waitQueueJob(t, s, e.ID, "discarded", 2)

	// Docker is still down: the retry fails, and is back.
	again, err := s.RetryDeadLetter(ctx, jobs.System, jobID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != e.ID || again.Status != jobs.StatusQueued || again.Result != nil || again.StartedAt != nil ||
		again.FinishedAt != nil || again.Code != "flaky" || again.APIKey != "a" {
		t.Errorf("retried execution: %+v", again)
	}
	waitEnded(t, s, e.ID)
	waitQueueJob(t, s, e.ID, "discarded", 3)
	page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{})
	if len(page.Items) != 1 || page.Items[0].ID != jobID || page.Items[0].Attempts != 3 {
		t.Fatalf("after a failed retry: %+v, want entry %d after 3 attempts", page.Items, jobID)
	}

	// Docker is back: the retry succeeds, and the entry is gone.
	run.set("flaky", succeeded)
	if _, err := s.RetryDeadLetter(ctx, jobs.Caller{APIKey: "a"}, jobID); err != nil {
		t.Fatal(err)
	}
	got := waitEnded(t, s, e.ID)
	if got.ID != e.ID || got.Status != jobs.StatusSucceeded || got.Result.Stdout != "ok\n" || got.Result.Error != nil || got.Attempt != 4 {
		t.Errorf("after a successful retry: status %s, result %+v, attempt %d", got.Status, got.Result, got.Attempt)
	}
	waitQueueJob(t, s, e.ID, "completed", 4)
	if page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{}); len(page.Items) != 0 {
		t.Errorf("dead letters after success: %+v", page.Items)
	}
	if st := stats(t, s, jobs.System); st.Total != 0 || len(st.ByErrorType) != 0 {
		t.Errorf("stats after success: %+v", st)
	}
	if run.count("flaky") != 4 {
		t.Errorf("flaky ran %d times, want 4", run.count("flaky"))
	}
	_, err = s.RetryDeadLetter(ctx, jobs.System, jobID)
	assertDLQNotFound(t, "retry of a completed job", err)
}

// TestRemoveDeadLetter: a removed entry is gone from the queue while its
// execution stays in the history as it ended; a second removal, or a
// retry, finds nothing.
func TestRemoveDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := newProgramRunner()
	run.set("broken", dockerDown)
	s := newDispatcher(t, run, Options{MaxAttempts: 1})
	start(t, s)
	e := submitAs(t, s, "a", "broken")
	waitEnded(t, s, e.ID)
	jobID := waitQueueJob(t, s, e.ID, "discarded", 1)

	if err := s.RemoveDeadLetter(ctx, jobs.Caller{APIKey: "a"}, jobID); err != nil {
		t.Fatal(err)
	}
	if page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{}); len(page.Items) != 0 {
		t.Errorf("dead letters after removal: %+v", page.Items)
	}
	var rows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = $1`, jobID).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("queue job %d after removal: %d rows, %v", jobID, rows, err)
	}
	// The maintenance job, which ends executions whose queue job is gone,
	// leaves an ended one as it was.
	if err := (&maintenanceWorker{s: s}).Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, jobs.Caller{APIKey: "a"}, e.ID)
	if err != nil || got.Status != jobs.StatusFailed || got.Result.Error.Type != jobs.ErrInternal ||
		got.Result.Error.Message != "tako could not run the program" {
		t.Errorf("execution after removal: %+v, %v", got, err)
	}
	assertDLQNotFound(t, "second removal", s.RemoveDeadLetter(ctx, jobs.System, jobID))
	_, err = s.RetryDeadLetter(ctx, jobs.System, jobID)
	assertDLQNotFound(t, "retry after removal", err)
	assertDLQNotFound(t, "removal of an id that never existed", s.RemoveDeadLetter(ctx, jobs.System, jobID+1000))
}

// TestDeadLetterOfRescuedJob: a job River's rescuer discarded (its node
// died on the last attempt) is a dead letter too: before the maintenance
// job has ended its execution, with River's error, and after, as the
// internal_error maintenance records. Removing it ends the execution;
// retrying it runs it.
func TestDeadLetterOfRescuedJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := newProgramRunner()
	run.set("lost", succeeded)
	// Not started yet: nothing works the queue while the test plays the
	// node that died and River's rescuer.
	s := newDispatcher(t, run, Options{MaxAttempts: 2})
	var lost []*jobs.Execution
	for range 2 {
		e := submitAs(t, s, "a", "lost")
		if ok, err := s.store.MarkRunning(ctx, nil, jobs.System, e.ID, 2, "dead-node"); err != nil || !ok {
			t.Fatalf("MarkRunning: %v %v", ok, err)
		}
		_, err := s.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', attempt = max_attempts,
			attempted_at = now(), finalized_at = now(),
			errors = array_append(errors, '{"attempt": 2, "error": "Stuck job rescued by JobRescuer"}'::jsonb)
			WHERE id = (SELECT river_job_id FROM tako_executions WHERE id = $1)`, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		lost = append(lost, e)
	}
	page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{})
	if len(page.Items) != 2 {
		t.Fatalf("dead letters of rescued jobs: %+v", page.Items)
	}
	for _, d := range page.Items {
		if d.ErrorType != jobs.ErrInternal || d.ErrorMessage != "the queue gave up on the job after its last attempt" || d.Attempts != 2 {
			t.Errorf("entry of a rescued job before maintenance: %+v", d)
		}
	}

	// Removed before maintenance came: the execution ends at once.
	removedJob, _, _ := queueJob(t, s, lost[0].ID)
	if err := s.RemoveDeadLetter(ctx, jobs.System, removedJob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, jobs.System, lost[0].ID); err != nil || got.Status != jobs.StatusFailed || got.Result.Error.Type != jobs.ErrInternal {
		t.Errorf("execution of a removed rescued entry: %+v, %v", got, err)
	}

	// Maintenance ends the other; it stays a dead letter, now typed.
	if err := (&maintenanceWorker{s: s}).Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	page = deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{})
	if len(page.Items) != 1 || page.Items[0].ExecutionID != lost[1].ID || page.Items[0].ErrorType != jobs.ErrInternal ||
		page.Items[0].ErrorMessage != "the execution was abandoned after its last attempt" {
		t.Fatalf("dead letters after maintenance: %+v", page.Items)
	}
	if st := stats(t, s, jobs.System); st.Total != 1 || st.ByErrorType[jobs.ErrInternal] != 1 {
		t.Errorf("stats after maintenance: %+v", st)
	}

	// Retried on a live node, it runs and succeeds.
	start(t, s)
	if _, err := s.RetryDeadLetter(ctx, jobs.System, page.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := waitEnded(t, s, lost[1].ID); got.Status != jobs.StatusSucceeded || got.Attempt != 3 {
		t.Errorf("retried rescued execution: status %s, attempt %d", got.Status, got.Attempt)
	}
}

// TestDeadLetterScope: a caller sees, counts, removes and retries only the
// entries of its own executions; another's answer exactly as one that
// does not exist. An admin sees all of them.
func TestDeadLetterScope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := newProgramRunner()
	run.set("of-a", dockerDown)
	run.set("of-b", dockerDown)
	s := newDispatcher(t, run, Options{MaxAttempts: 1})
	start(t, s)
	ofA, ofB := submitAs(t, s, "a", "of-a"), submitAs(t, s, "b", "of-b")
	waitEnded(t, s, ofA.ID)
	waitEnded(t, s, ofB.ID)
	jobA := waitQueueJob(t, s, ofA.ID, "discarded", 1)
	jobB := waitQueueJob(t, s, ofB.ID, "discarded", 1)
	a, admin := jobs.Caller{APIKey: "a"}, jobs.Caller{APIKey: "ops", Admin: true}

	if page := deadLetters(t, s, a, jobs.DeadLetterFilter{}); len(page.Items) != 1 || page.Items[0].ID != jobA {
		t.Errorf("a sees %v, want [%d]", entryIDs(page.Items), jobA)
	}
	if page := deadLetters(t, s, jobs.Caller{}, jobs.DeadLetterFilter{}); len(page.Items) != 0 {
		t.Errorf("a caller without a key sees %v", entryIDs(page.Items))
	}
	if page := deadLetters(t, s, admin, jobs.DeadLetterFilter{}); len(page.Items) != 2 {
		t.Errorf("admin sees %v, want both", entryIDs(page.Items))
	}
	if st := stats(t, s, a); st.Total != 1 || st.ByErrorType[jobs.ErrInternal] != 1 {
		t.Errorf("stats of a: %+v", st)
	}
	if st := stats(t, s, admin); st.Total != 2 || st.ByErrorType[jobs.ErrInternal] != 2 {
		t.Errorf("stats of admin: %+v", st)
	}

	assertDLQNotFound(t, "a removes b's entry", s.RemoveDeadLetter(ctx, a, jobB))
	_, err := s.RetryDeadLetter(ctx, a, jobB)
	assertDLQNotFound(t, "a retries b's entry", err)
	if got, err := s.Get(ctx, jobs.System, ofB.ID); err != nil || got.Status != jobs.StatusFailed {
		t.Errorf("b's execution after a's attempts: %+v, %v", got, err)
	}
	if err := s.RemoveDeadLetter(ctx, a, jobA); err != nil {
		t.Errorf("a removes its own entry: %v", err)
	}
	if page := deadLetters(t, s, admin, jobs.DeadLetterFilter{}); len(page.Items) != 1 || page.Items[0].ID != jobB {
		t.Errorf("admin sees %v, want b's entry %d left", entryIDs(page.Items), jobB)
	}
}

// TestDeadLetterPaging: pages follow one another newest failure first,
// without gaps or repeats, HasMore says when another follows, and the
// error type narrows both the pages and nothing else.
func TestDeadLetterPaging(t *testing.T) {
	t.Parallel()
	run := newProgramRunner()
	s := newDispatcher(t, run, Options{MaxAttempts: 1})
	start(t, s)
	codes := map[string]func() (*jobs.Result, error){
		"internal-1": dockerDown, "internal-2": dockerDown, "internal-3": dockerDown,
		"unavailable-1": noSlot, "unavailable-2": noSlot,
	}
	for code, step := range codes {
		run.set(code, step)
		e := submitAs(t, s, "a", code)
		waitEnded(t, s, e.ID)
		waitQueueJob(t, s, e.ID, "discarded", 1)
	}

	all := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{})
	if len(all.Items) != 5 || all.HasMore {
		t.Fatalf("whole queue: %d entries (more: %v), want 5", len(all.Items), all.HasMore)
	}
	for i := 1; i < len(all.Items); i++ {
		prev, d := all.Items[i-1], all.Items[i]
		if d.FailedAt.After(prev.FailedAt) || d.FailedAt.Equal(prev.FailedAt) && d.ID > prev.ID {
			t.Errorf("entry %d (%d, failed %v) comes after %d (failed %v): not newest first", i, d.ID, d.FailedAt, prev.ID, prev.FailedAt)
		}
	}
	var paged []int64
	for _, tc := range []struct {
		offset, n int
		more      bool
	}{{0, 2, true}, {2, 2, true}, {4, 1, false}} {
		page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{Limit: 2, Offset: tc.offset})
		if len(page.Items) != tc.n || page.HasMore != tc.more {
			t.Errorf("offset %d: %d entries (more: %v), want %d (more: %v)", tc.offset, len(page.Items), page.HasMore, tc.n, tc.more)
		}
		paged = append(paged, entryIDs(page.Items)...)
	}
	if want := entryIDs(all.Items); len(paged) != len(want) {
		t.Errorf("pages hold %v, want %v", paged, want)
	} else {
		for i := range want {
			if paged[i] != want[i] {
				t.Errorf("pages hold %v, want %v", paged, want)
				break
			}
		}
	}

	unavailable := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{ErrorType: jobs.ErrServiceUnavail})
	if len(unavailable.Items) != 2 || unavailable.HasMore {
		t.Errorf("service_unavailable entries: %d (more: %v), want 2", len(unavailable.Items), unavailable.HasMore)
	}
	for _, d := range unavailable.Items {
		if d.ErrorType != jobs.ErrServiceUnavail || d.ErrorMessage != "no free slot" {
			t.Errorf("filtered entry: %+v", d)
		}
	}
	first := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{ErrorType: jobs.ErrInternal, Limit: 2})
	if len(first.Items) != 2 || !first.HasMore {
		t.Errorf("first page of internal_error: %d entries (more: %v), want 2 and more", len(first.Items), first.HasMore)
	}
	st := stats(t, s, jobs.System)
	if st.Total != 5 || len(st.ByErrorType) != 2 || st.ByErrorType[jobs.ErrInternal] != 3 || st.ByErrorType[jobs.ErrServiceUnavail] != 2 {
		t.Errorf("stats: %+v", st)
	}
}

// TestRetryDeadLetterRespectsQueueLimits: a retry queues an execution
// again, so the key's max_pending quota and queue.max_pending apply as to
// a submission; a retry they refuse changes nothing.
func TestRetryDeadLetterRespectsQueueLimits(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts Options
		want jobs.ErrorCode
	}{
		"key quota":   {Options{Quotas: map[string]jobs.Quota{"a": {MaxPending: 1}}}, jobs.EOVERQUOTA},
		"max_pending": {Options{MaxPending: 1}, jobs.EUNAVAILABLE},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// Not started: queued executions stay queued.
			s := newDispatcher(t, newProgramRunner(), tc.opts)
			dead := submitAs(t, s, "a", "dead")
			_, err := s.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', attempt = max_attempts,
				attempted_at = now(), finalized_at = now()
				WHERE id = (SELECT river_job_id FROM tako_executions WHERE id = $1)`, dead.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := (&maintenanceWorker{s: s}).Work(ctx, nil); err != nil {
				t.Fatal(err)
			}
			submitAs(t, s, "a", "waiting") // the one queued execution allowed
			jobID, _, _ := queueJob(t, s, dead.ID)

			_, err = s.RetryDeadLetter(ctx, jobs.System, jobID)
			if jobs.ErrorCodeOf(err) != tc.want {
				t.Fatalf("retry over the limit: %v, want %s", err, tc.want)
			}
			if got, err := s.Get(ctx, jobs.System, dead.ID); err != nil || got.Status != jobs.StatusFailed || got.Result == nil {
				t.Errorf("execution after a refused retry: %+v, %v; want it failed as before", got, err)
			}
			if page := deadLetters(t, s, jobs.System, jobs.DeadLetterFilter{}); len(page.Items) != 1 || page.Items[0].ID != jobID {
				t.Errorf("dead letters after a refused retry: %v, want [%d]", entryIDs(page.Items), jobID)
			}
		})
	}
}
