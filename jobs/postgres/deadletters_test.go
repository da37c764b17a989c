package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// riverJob is a row of River's job table as a test writes it, standing in
// for what River itself would have left there.
type riverJob struct {
	kind      string // "" for tako_execute
	state     string
	attempt   int
	finalized time.Time // zero for a job that has not ended
	errors    []string  // the attempts' error messages, oldest first
}

// insertRiverJob writes j into River's table and returns its id.
func insertRiverJob(t *testing.T, s *postgres.Store, j riverJob) int64 {
	t.Helper()
	if j.kind == "" {
		j.kind = "tako_execute"
	}
	var finalized *time.Time
	if !j.finalized.IsZero() {
		finalized = &j.finalized
	}
	const sql = `
INSERT INTO river_job (kind, state, attempt, max_attempts, attempted_at, finalized_at, args, queue, errors)
VALUES ($1, $2, $3::smallint, greatest($3::smallint, 1::smallint), now(), $4, '{}', 'jt_default',
        (SELECT array_agg(jsonb_build_object('attempt', n, 'error', m)) FROM unnest($5::text[]) WITH ORDINALITY AS x(m, n)))
RETURNING id`
	var id int64
	if err := s.Pool().QueryRow(context.Background(), sql, j.kind, j.state, j.attempt, finalized, j.errors).Scan(&id); err != nil {
		t.Fatalf("insert river job: %v", err)
	}
	return id
}

// deadExecution inserts an async execution of key whose River job is j,
// and ends it with res unless res is nil. It returns the execution as
// stored and the job's id.
func deadExecution(t *testing.T, s *postgres.Store, key string, res *jobs.Result, j riverJob) (*jobs.Execution, int64) {
	t.Helper()
	ctx := context.Background()
	e := newExecution("default")
	e.APIKey, e.CorrelationID, e.Code = key, "corr-"+key, "print('"+key+"')"
	e.InputJSON = []byte(`{"b":2,"a":1}`)
	mustInsert(t, s, e)
	jobID := insertRiverJob(t, s, j)
	if err := s.SetRiverJobID(ctx, nil, jobs.System, e.ID, jobID); err != nil {
		t.Fatal(err)
	}
	if res != nil {
		if ok, err := s.Finish(ctx, nil, jobs.System, e.ID, res, nil); err != nil || !ok {
			t.Fatalf("Finish: %v %v", ok, err)
		}
	}
	return mustGet(t, s, e.ID), jobID
}

// infraFailure is the result the worker stores when it gives up.
func infraFailure(errType, msg string) *jobs.Result {
	return &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Error: &jobs.ExecError{Type: errType, Message: msg}}
}

// ids returns the entries' ids, in order.
func ids(items []jobs.DeadLetter) []int64 {
	out := make([]int64, len(items))
	for i, d := range items {
		out[i] = d.ID
	}
	return out
}

// equalIDs reports whether got and want hold the same ids in the same
// order.
func equalIDs(got []jobs.DeadLetter, want ...int64) bool {
	g := ids(got)
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

// assertDeadLetterNotFound fails unless err is the DLQ's ENOTFOUND.
func assertDeadLetterNotFound(t *testing.T, err error) {
	t.Helper()
	var de *jobs.Error
	if !errors.As(err, &de) || de.Code != jobs.ENOTFOUND || de.Message != "DLQ entry not found" {
		t.Fatalf("error = %v, want ENOTFOUND %q", err, "DLQ entry not found")
	}
}

// TestDeadLetters: the queue lists discarded execution jobs with their
// executions, newest failure first, scoped to the caller, filtered by error
// type and paged; everything else River holds stays out of it.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	now := time.Now().Truncate(time.Millisecond)

	oldest, oldestJob := deadExecution(t, s, "a", infraFailure(jobs.ErrInternal, "tako could not run the program"),
		riverJob{state: "discarded", attempt: 2, finalized: now.Add(-2 * time.Minute), errors: []string{"docker down", "docker still down"}})
	_, middleJob := deadExecution(t, s, "b", infraFailure(jobs.ErrServiceUnavail, "no slot"),
		riverJob{state: "discarded", attempt: 3, finalized: now.Add(-time.Minute), errors: []string{"x"}})
	// Discarded by River's rescuer; maintenance has not ended it yet.
	rescued, rescuedJob := deadExecution(t, s, "a", nil,
		riverJob{state: "discarded", attempt: 1, finalized: now, errors: []string{"Stuck job rescued by JobRescuer"}})
	// None of these is a dead letter.
	deadExecution(t, s, "a", &jobs.Result{Status: jobs.StatusFailed, ExitCode: 1, Error: &jobs.ExecError{Type: jobs.ErrName, Message: "NameError"}},
		riverJob{state: "completed", attempt: 1, finalized: now})
	deadExecution(t, s, "a", cancelledResult(), riverJob{state: "cancelled", attempt: 1, finalized: now})
	deadExecution(t, s, "a", nil, riverJob{state: "retryable", attempt: 1, errors: []string{"x"}})
	deadExecution(t, s, "a", infraFailure(jobs.ErrInternal, "x"), riverJob{kind: "other_kind", state: "discarded", attempt: 1, finalized: now})
	insertRiverJob(t, s, riverJob{state: "discarded", attempt: 1, finalized: now}) // its execution is gone

	admin := jobs.Caller{APIKey: "ops", Admin: true}
	a := jobs.Caller{APIKey: "a"}
	page, err := s.DeadLetters(ctx, admin, jobs.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalIDs(page.Items, rescuedJob, middleJob, oldestJob) || page.HasMore {
		t.Fatalf("admin sees %v (more: %v), want %v", ids(page.Items), page.HasMore, []int64{rescuedJob, middleJob, oldestJob})
	}
	want := jobs.DeadLetter{
		ID: oldestJob, ExecutionID: oldest.ID, JobType: "default", APIKey: "a", CorrelationID: "corr-a",
		Code: "print('a')", ErrorType: jobs.ErrInternal, ErrorMessage: "tako could not run the program",
		Attempts: 2, CreatedAt: oldest.CreatedAt, FailedAt: now.Add(-2 * time.Minute),
	}
	got := page.Items[2]
	if string(got.InputJSON) != `{"b":2,"a":1}` {
		t.Errorf("InputJSON = %s, want the input as sent", got.InputJSON)
	}
	got.InputJSON = nil
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.FailedAt.Equal(want.FailedAt) {
		t.Errorf("CreatedAt %v FailedAt %v, want %v %v", got.CreatedAt, got.FailedAt, want.CreatedAt, want.FailedAt)
	}
	got.CreatedAt, got.FailedAt, want.CreatedAt, want.FailedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got.ID != want.ID || got.ExecutionID != want.ExecutionID || got.JobType != want.JobType || got.APIKey != want.APIKey ||
		got.CorrelationID != want.CorrelationID || got.Code != want.Code || got.ErrorType != want.ErrorType ||
		got.ErrorMessage != want.ErrorMessage || got.Attempts != want.Attempts {
		t.Errorf("entry = %+v\nwant    %+v", got, want)
	}
	// An execution without an error of its own shows the internal_error
	// maintenance will give it, never River's own error text.
	if r := page.Items[0]; r.ExecutionID != rescued.ID || r.ErrorType != jobs.ErrInternal || r.ErrorMessage != "the queue gave up on the job after its last attempt" {
		t.Errorf("rescued entry: %+v", r)
	}

	pages := []struct {
		name   string
		caller jobs.Caller
		filter jobs.DeadLetterFilter
		want   []int64
		more   bool
	}{
		{"own only", a, jobs.DeadLetterFilter{}, []int64{rescuedJob, oldestJob}, false},
		{"no key sees nothing", jobs.Caller{}, jobs.DeadLetterFilter{}, nil, false},
		{"error type", admin, jobs.DeadLetterFilter{ErrorType: jobs.ErrServiceUnavail}, []int64{middleJob}, false},
		{"error type of another's", a, jobs.DeadLetterFilter{ErrorType: jobs.ErrServiceUnavail}, nil, false},
		{"first page", admin, jobs.DeadLetterFilter{Limit: 2}, []int64{rescuedJob, middleJob}, true},
		{"middle page", admin, jobs.DeadLetterFilter{Limit: 1, Offset: 1}, []int64{middleJob}, true},
		{"last page", admin, jobs.DeadLetterFilter{Limit: 2, Offset: 2}, []int64{oldestJob}, false},
		{"past the end", admin, jobs.DeadLetterFilter{Offset: 3}, nil, false},
		{"negative offset", admin, jobs.DeadLetterFilter{Limit: 1, Offset: -5}, []int64{rescuedJob}, true},
	}
	for _, tc := range pages {
		page, err := s.DeadLetters(ctx, tc.caller, tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if page.Items == nil || !equalIDs(page.Items, tc.want...) || page.HasMore != tc.more {
			t.Errorf("%s: %v (more: %v), want %v (more: %v)", tc.name, ids(page.Items), page.HasMore, tc.want, tc.more)
		}
	}

	stats, err := s.DeadLetterStats(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Total != 3 || len(stats.ByErrorType) != 2 || stats.ByErrorType[jobs.ErrInternal] != 2 ||
		stats.ByErrorType[jobs.ErrServiceUnavail] != 1 {
		t.Errorf("admin stats = %+v", stats)
	}
	if stats, err := s.DeadLetterStats(ctx, a); err != nil || stats.Total != 2 || stats.ByErrorType[jobs.ErrInternal] != 2 {
		t.Errorf("stats of a = %+v, %v; want 2 internal errors", stats, err)
	}
	if stats, err := s.DeadLetterStats(ctx, jobs.Caller{}); err != nil || stats.Total != 0 || stats.ByErrorType == nil {
		t.Errorf("stats of no key = %+v, %v; want none, with an empty map", stats, err)
	}
}

// TestDeadLettersLimit: the page size defaults to 100 and is capped at
// 1000.
func TestDeadLettersLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	const fill = `
WITH j AS (
    INSERT INTO river_job (kind, state, attempt, max_attempts, finalized_at, args, queue)
    SELECT 'tako_execute', 'discarded', 1, 1, now(), '{}', 'jt_default' FROM generate_series(1, 1001)
    RETURNING id
)
INSERT INTO tako_executions (id, status, mode, job_type, code, input, timeout_ms, river_job_id, error)
SELECT gen_random_uuid(), 'failed', 'async', 'default', '', '{}', 1000, j.id, '{"type": "internal_error", "message": "x"}'
FROM j`
	if _, err := s.Pool().Exec(ctx, fill); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {5000, 1000}} {
		page, err := s.DeadLetters(ctx, jobs.System, jobs.DeadLetterFilter{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != tc.want || !page.HasMore {
			t.Errorf("limit %d: %d items (more: %v), want %d and more", tc.limit, len(page.Items), page.HasMore, tc.want)
		}
	}
	if stats, err := s.DeadLetterStats(ctx, jobs.System); err != nil || stats.Total != 1001 {
		t.Errorf("stats = %+v, %v; want 1001", stats, err)
	}
}

// TestLockDeadLetter: an entry is found only while it is a discarded
// execution job the caller may see, and stays locked until the
// transaction ends.
func TestLockDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	now := time.Now()
	dead, deadJob := deadExecution(t, s, "a", infraFailure(jobs.ErrInternal, "x"),
		riverJob{state: "discarded", attempt: 2, finalized: now})
	_, completedJob := deadExecution(t, s, "a", &jobs.Result{Status: jobs.StatusSucceeded},
		riverJob{state: "completed", attempt: 1, finalized: now})
	_, otherKindJob := deadExecution(t, s, "a", infraFailure(jobs.ErrInternal, "x"),
		riverJob{kind: "other_kind", state: "discarded", attempt: 1, finalized: now})
	orphanJob := insertRiverJob(t, s, riverJob{state: "discarded", attempt: 1, finalized: now})

	lock := func(c jobs.Caller, id int64) (*jobs.Execution, error) {
		var e *jobs.Execution
		err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
			var err error
			e, err = s.LockDeadLetter(ctx, tx, c, id)
			return err
		})
		return e, err
	}
	for name, tc := range map[string]struct {
		caller jobs.Caller
		id     int64
	}{
		"missing":       {jobs.System, deadJob + 1000},
		"completed":     {jobs.System, completedJob},
		"other kind":    {jobs.System, otherKindJob},
		"no execution":  {jobs.System, orphanJob},
		"another's":     {jobs.Caller{APIKey: "b"}, deadJob},
		"without a key": {jobs.Caller{}, deadJob},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := lock(tc.caller, tc.id)
			assertDeadLetterNotFound(t, err)
		})
	}
	e, err := lock(jobs.Caller{APIKey: "a"}, deadJob)
	if err != nil || e.ID != dead.ID || e.Status != jobs.StatusFailed || e.Result == nil || e.Result.Error.Type != jobs.ErrInternal {
		t.Fatalf("own entry: %+v, %v", e, err)
	}

	// While one transaction holds the entry, another cannot take it.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := s.LockDeadLetter(ctx, tx, jobs.System, deadJob); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, s.Pool(), func(other pgx.Tx) error {
		if _, err := other.Exec(ctx, `SET LOCAL lock_timeout = '50ms'`); err != nil {
			return err
		}
		_, err := s.LockDeadLetter(ctx, other, jobs.System, deadJob)
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" { // lock_not_available
		t.Errorf("second lock while the first is held: %v, want a lock timeout", err)
	}
}

// TestReopen: a dead letter's execution goes back to queued as the same
// execution, its result and artifacts gone, so that its next run is
// stored as if it were the first; another caller changes nothing.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := newExecution("default")
	e.APIKey = "a"
	mustInsert(t, s, e)
	if ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 2, "node-1"); err != nil || !ok {
		t.Fatalf("MarkRunning: %v %v", ok, err)
	}
	old := jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "out.txt"}, Content: []byte("old")}
	res := &jobs.Result{Status: jobs.StatusFailed, ExitCode: -1, Stdout: "partial", StdoutTruncated: true,
		Output: []byte(`{"x":1}`), Error: &jobs.ExecError{Type: jobs.ErrInternal, Message: "x"}, Image: "img", Runtime: "runsc",
		Start: jobs.StartWarm, ArtifactsTruncated: true, Timing: jobs.Timing{Total: time.Second}}
	if ok, err := s.Finish(ctx, nil, jobs.System, e.ID, res, []jobs.ArtifactContent{old}); err != nil || !ok {
		t.Fatalf("Finish: %v %v", ok, err)
	}

	if _, err := s.Reopen(ctx, nil, jobs.Caller{APIKey: "b"}, e.ID); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Fatalf("Reopen by another key: %v, want ENOTFOUND", err)
	}
	if got := mustGet(t, s, e.ID); got.Status != jobs.StatusFailed || len(got.Result.Artifacts) != 1 {
		t.Fatalf("after another key's Reopen: status %s, %d artifacts; want it untouched", got.Status, len(got.Result.Artifacts))
	}

	reopened, err := s.Reopen(ctx, nil, jobs.Caller{APIKey: "a"}, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []*jobs.Execution{reopened, mustGet(t, s, e.ID)} {
		if got.ID != e.ID || got.Status != jobs.StatusQueued || got.Result != nil || got.StartedAt != nil ||
			got.FinishedAt != nil || got.Node != "" || got.QueuePosition != 1 || got.Attempt != 2 || got.Code != e.Code {
			t.Errorf("reopened: %+v", got)
		}
	}
	if _, err := s.Artifact(ctx, jobs.System, e.ID, "out.txt"); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("artifact after Reopen: %v, want ENOTFOUND", err)
	}

	// The next run is stored in full, its artifacts in place of the old.
	fresh := jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "out.txt"}, Content: []byte("new")}
	if ok, err := s.Finish(ctx, nil, jobs.System, e.ID, &jobs.Result{Status: jobs.StatusSucceeded, Stdout: "ok"}, []jobs.ArtifactContent{fresh}); err != nil || !ok {
		t.Fatalf("Finish after Reopen: %v %v", ok, err)
	}
	got := mustGet(t, s, e.ID)
	if got.Status != jobs.StatusSucceeded || got.Result.Stdout != "ok" || got.Result.StdoutTruncated || got.Result.Error != nil ||
		got.Result.ArtifactsTruncated || got.Result.Image != "" || len(got.Result.Artifacts) != 1 {
		t.Errorf("rerun result: %+v", got.Result)
	}
	if a, err := s.Artifact(ctx, jobs.System, e.ID, "out.txt"); err != nil || string(a.Content) != "new" {
		t.Errorf("artifact after rerun: %v, want the new content", err)
	}

	if _, err := s.Reopen(ctx, nil, jobs.System, "not-a-uuid"); jobs.ErrorCodeOf(err) != jobs.ENOTFOUND {
		t.Errorf("Reopen of a malformed id: %v", err)
	}
}

// cancelledResult is a cancelled execution's result.
func cancelledResult() *jobs.Result {
	return &jobs.Result{Status: jobs.StatusCancelled, ExitCode: -1, Error: &jobs.ExecError{Type: jobs.ErrCancelled, Message: "cancelled"}}
}
