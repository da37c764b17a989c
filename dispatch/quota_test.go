package dispatch

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/runner"
)

// gateRunner blocks every run until release is closed, and remembers how
// many ran at once at most.
type gateRunner struct {
	available
	release chan struct{}
	started chan string // receives each run's execution id

	mu            sync.Mutex
	running, peak int
	runs          int
	releaseOnce   sync.Once
}

func newGateRunner() *gateRunner {
	return &gateRunner{release: make(chan struct{}), started: make(chan string, 100)}
}

func (g *gateRunner) Reserve(ctx context.Context, req runner.Request) (func(context.Context) (*jobs.Result, error), func(), error) {
	return func(ctx context.Context) (*jobs.Result, error) { return g.Execute(ctx, req) }, func() {}, nil
}

func (g *gateRunner) Execute(ctx context.Context, req runner.Request) (*jobs.Result, error) {
	g.mu.Lock()
	g.running++
	g.runs++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	g.started <- req.ExecutionID
	select {
	case <-g.release:
		return &jobs.Result{Status: jobs.StatusSucceeded}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *gateRunner) open() { g.releaseOnce.Do(func() { close(g.release) }) }

func (g *gateRunner) stats() (peak, runs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak, g.runs
}

// keyed is a submission of the API key named key.
func keyed(key, code string, mode jobs.Mode) jobs.Submission {
	sub := submission(code)
	sub.APIKey, sub.Mode = key, mode
	return sub
}

// assertOverQuota fails unless err is EOVERQUOTA naming quota, with a
// Retry-After.
func assertOverQuota(t *testing.T, err error, quota string) {
	t.Helper()
	var e *jobs.Error
	if !errors.As(err, &e) || e.Code != jobs.EOVERQUOTA || e.RetryAfter < 1 || !strings.Contains(e.Message, quota) {
		t.Fatalf("error %v, want EOVERQUOTA naming %s with a Retry-After", err, quota)
	}
}

// countOf returns how many executions the history holds for key.
func countOf(t *testing.T, s *Dispatcher, key string) int {
	t.Helper()
	page, err := s.List(context.Background(), jobs.System, jobs.ExecutionFilter{APIKey: key, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}

// TestQuotaMaxPending: a key's async submissions past its max_pending get
// EOVERQUOTA and store nothing; other keys and a retry of an accepted
// submission are not affected.
func TestQuotaMaxPending(t *testing.T) {
	t.Parallel()
	// Not started: submissions stay queued.
	s := newDispatcher(t, newGateRunner(), Options{Quotas: map[string]jobs.Quota{"ci": {MaxPending: 2}}})
	ctx := context.Background()
	first := keyed("ci", "print(1)", jobs.ModeAsync)
	first.IdempotencyKey = "key-0001"
	accepted, _, err := s.Submit(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Submit(ctx, keyed("ci", "print(2)", jobs.ModeAsync)); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Submit(ctx, keyed("ci", "print(3)", jobs.ModeAsync))
	assertOverQuota(t, err, "max_pending")
	// A rerun is a submission of the caller's too.
	_, err = s.Rerun(ctx, jobs.Caller{APIKey: "ci"}, accepted.ID, jobs.Overrides{})
	if jobs.ErrorCodeOf(err) != jobs.ENOTREADY { // not finished: refused before the quota
		t.Errorf("rerun of a queued job: %v", err)
	}
	_, err = s.Fork(ctx, jobs.Caller{APIKey: "ci"}, accepted.ID, "print(4)", jobs.Overrides{})
	assertOverQuota(t, err, "max_pending")
	if n := countOf(t, s, "ci"); n != 2 {
		t.Errorf("ci has %d executions recorded, want 2: refused ones store nothing", n)
	}
	if again, created, err := s.Submit(ctx, first); err != nil || created || again.ID != accepted.ID {
		t.Errorf("retry of an accepted submission at the quota: %v %v %v", again, created, err)
	}
	for _, key := range []string{"ops", ""} {
		if _, _, err := s.Submit(ctx, keyed(key, "print(5)", jobs.ModeAsync)); err != nil {
			t.Errorf("key %q is not limited by ci's quota: %v", key, err)
		}
	}
}

// TestQuotaMaxConcurrentSync: a sync request of a key that has
// max_concurrent executions running gets EOVERQUOTA and stores nothing.
func TestQuotaMaxConcurrentSync(t *testing.T) {
	t.Parallel()
	run := newGateRunner()
	s := newDispatcher(t, run, Options{Quotas: map[string]jobs.Quota{"ci": {MaxConcurrent: 1}}})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := s.Execute(ctx, keyed("ci", "print(1)", jobs.ModeSync))
		done <- err
	}()
	<-run.started // the first one holds ci's only slot
	_, err := s.Execute(ctx, keyed("ci", "print(2)", jobs.ModeSync))
	assertOverQuota(t, err, "max_concurrent")
	if n := countOf(t, s, "ci"); n != 1 {
		t.Errorf("ci has %d executions recorded, want 1", n)
	}
	// Another key runs meanwhile.
	other := make(chan error, 1)
	go func() {
		_, err := s.Execute(ctx, keyed("ops", "print(3)", jobs.ModeSync))
		other <- err
	}()
	<-run.started
	run.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-other; err != nil {
		t.Errorf("another key's sync run: %v", err)
	}
	if _, err := s.Execute(ctx, keyed("ci", "print(4)", jobs.ModeSync)); err != nil {
		t.Errorf("after the first ended: %v", err)
	}
}

// TestQuotaMaxConcurrentAsync: queued jobs of a key at its max_concurrent
// quota wait in the queue (their queue job is snoozed, which costs no
// attempt) and run when the key is below it again.
func TestQuotaMaxConcurrentAsync(t *testing.T) {
	t.Parallel()
	run := newGateRunner()
	s := newDispatcher(t, run, Options{Quotas: map[string]jobs.Quota{"ci": {MaxConcurrent: 1}}})
	start(t, s)
	ctx := context.Background()
	var ids []string
	for i := range 2 {
		e, _, err := s.Submit(ctx, keyed("ci", "print(1)", jobs.ModeAsync))
		if err != nil {
			t.Fatal(i, err)
		}
		ids = append(ids, e.ID)
	}
	first := <-run.started
	second := ids[0]
	if first == ids[0] {
		second = ids[1]
	}
	// The other job is picked up and put back: wait for River to record a
	// snooze, with the execution still queued.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var snoozes int
		err := s.pool.QueryRow(ctx, `SELECT coalesce((j.metadata->>'snoozes')::int, 0) FROM river_job j
			JOIN tako_executions e ON e.river_job_id = j.id WHERE e.id = $1`, second).Scan(&snoozes)
		if err != nil {
			t.Fatal(err)
		}
		if snoozes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second job of a key at its max_concurrent quota was never put back")
		}
	}
	if st, err := s.store.Status(ctx, jobs.System, second); err != nil || st != jobs.StatusQueued {
		t.Errorf("the held-back job is %s (%v), want queued", st, err)
	}
	run.open()
	for _, id := range ids {
		got, err := s.Wait(ctx, jobs.Caller{APIKey: "ci"}, id, 2*time.Minute)
		if err != nil || got.Status != jobs.StatusSucceeded || got.Attempt != 1 {
			t.Fatalf("job %s: %+v %v; want succeeded on its first attempt", id, got, err)
		}
	}
	if peak, runs := run.stats(); peak != 1 || runs != 2 {
		t.Errorf("%d runs, at most %d at once; want 2 runs, one at a time", runs, peak)
	}
}

// TestWaitAndCancelAreScoped: a caller waits on, cancels and replays only
// what it may see; another key's execution is ENOTFOUND.
func TestWaitAndCancelAreScoped(t *testing.T) {
	t.Parallel()
	s := newDispatcher(t, newGateRunner(), Options{})
	ctx := context.Background()
	e, _, err := s.Submit(ctx, keyed("A", "print(1)", jobs.ModeAsync))
	if err != nil {
		t.Fatal(err)
	}
	b := jobs.Caller{APIKey: "B"}
	if _, err := s.Wait(ctx, b, e.ID, time.Second); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("B waits on A's job: %v", err)
	}
	if _, err := s.Cancel(ctx, b, e.ID); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("B cancels A's job: %v", err)
	}
	if _, err := s.Fork(ctx, b, e.ID, "print(2)", jobs.Overrides{}); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("B forks A's job: %v", err)
	}
	got, err := s.Cancel(ctx, jobs.Caller{APIKey: "A"}, e.ID)
	if err != nil || got.Status != jobs.StatusCancelled {
		t.Fatalf("A cancels its job: %+v %v", got, err)
	}
	if _, err := s.Rerun(ctx, b, e.ID, jobs.Overrides{}); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("B reruns A's job: %v", err)
	}
	child, err := s.Rerun(ctx, jobs.Caller{APIKey: "ops", Admin: true}, e.ID, jobs.Overrides{})
	if err != nil || child.APIKey != "ops" {
		t.Errorf("an admin reruns A's job: %+v %v; want a job recorded as the admin's", child, err)
	}
}

// TestQuotaOf: a key's quota is the configured one; a key the
// configuration does not list, and work without a key, have none.
func TestQuotaOf(t *testing.T) {
	t.Parallel()
	s := &Dispatcher{opts: Options{Quotas: map[string]jobs.Quota{"ci": {MaxPending: 2, MaxConcurrent: 1}, "": {MaxPending: 1}}}}
	for _, tc := range []struct {
		key  string
		want jobs.Quota
	}{
		{"ci", jobs.Quota{MaxPending: 2, MaxConcurrent: 1}},
		{"other", jobs.Quota{}},
		{"", jobs.Quota{}},
	} {
		if got := s.quota(tc.key); got != tc.want {
			t.Errorf("quota(%q) = %+v, want %+v", tc.key, got, tc.want)
		}
	}
}

// TestOverQuota: max_pending counts the execution being admitted;
// max_concurrent counts the others running, so reaching it refuses.
func TestOverQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		over       bool
		quota      string
		retryAfter int
	}{
		{"pending below the quota", overPending("ci", 1, 2), false, "", 0},
		{"pending at the quota", overPending("ci", 2, 2), false, "", 0},
		{"pending over the quota", overPending("ci", 3, 2), true, `API key "ci" is at its max_pending quota (2 queued jobs)`, pendingRetryAfter},
		{"running below the quota", overConcurrent("ci", 0, 1), false, "", 0},
		{"running at the quota", overConcurrent("ci", 1, 1), true, `API key "ci" is at its max_concurrent quota (1 running executions)`, concurrentRetryAfter},
		{"running over the quota", overConcurrent("ci", 2, 1), true, "max_concurrent", concurrentRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !tc.over {
				if tc.err != nil {
					t.Fatalf("error %v, want none", tc.err)
				}
				return
			}
			assertOverQuota(t, tc.err, tc.quota)
			var e *jobs.Error
			if errors.As(tc.err, &e) && e.RetryAfter != tc.retryAfter {
				t.Errorf("Retry-After %d, want %d", e.RetryAfter, tc.retryAfter)
			}
		})
	}
}
