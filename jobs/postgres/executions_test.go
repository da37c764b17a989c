package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
)

func TestInsertGetRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)

	parent := newExecution("default")
	mustInsert(t, s, parent)

	e := &jobs.Execution{
		ID:             uuid.NewString(),
		Status:         jobs.StatusQueued,
		Mode:           jobs.ModeAsync,
		JobType:        "data",
		Code:           "import json\nprint('hé')",
		InputJSON:      json.RawMessage(`{"s":"x","n":1}`), // key order is kept for replay
		Requirements:   []string{"numpy==1.26", "requests"},
		Timeout:        45 * time.Second,
		StartupTimeout: 7 * time.Second,
		IdempotencyKey: "key-1",
		Fingerprint:    "sha256:abc",
		ParentID:       parent.ID,
		Relationship:   jobs.RelFork,
		CorrelationID:  "corr-1",
	}
	before := time.Now()
	mustInsert(t, s, e)
	if e.CreatedAt.IsZero() || e.CreatedAt.Before(before.Add(-time.Minute)) {
		t.Errorf("CreatedAt = %v, want the database's now()", e.CreatedAt)
	}

	got := mustGet(t, s, e.ID)
	want := *e
	want.QueuePosition = 1
	if got.Seq <= parent.Seq || parent.Seq == 0 {
		t.Errorf("Seq %d after the parent's %d, want a larger one", got.Seq, parent.Seq)
	}
	want.Seq = got.Seq
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("queued Get:\n got %+v\nwant %+v", got, &want)
	}

	ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 1, "node-a")
	if err != nil || !ok {
		t.Fatalf("MarkRunning = %v, %v", ok, err)
	}
	png := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	res := &jobs.Result{
		Status:             jobs.StatusFailed,
		ExitCode:           3,
		Stdout:             "ok\x00then \xff\xfe bad\n",
		Stderr:             "Traceback\x00",
		StdoutTruncated:    true,
		StderrTruncated:    false,
		ArtifactsTruncated: true,
		Output:             json.RawMessage(`{"answer": 42, "list": [1.5, "a"], "nul": "a\u0000b"}`),
		Error:              &jobs.ExecError{Type: "RuntimeError", Message: "boom \x00 \xc3"},
		Runtime:            "runc",
		Start:              jobs.StartWarm,
		Image:              "tako/data:abc",
		Timing: jobs.Timing{
			Queue: 1500 * time.Microsecond, Start: 2 * time.Millisecond, Run: 11*time.Millisecond + 123456,
			Collect: 789 * time.Microsecond, Total: 16 * time.Millisecond,
		},
	}
	artifacts := []jobs.ArtifactContent{
		{Artifact: jobs.Artifact{Name: "plot.png"}, Content: png},
		{Artifact: jobs.Artifact{Name: "empty.txt"}},
	}
	ok, err = s.Finish(ctx, nil, jobs.System, e.ID, res, artifacts)
	if err != nil || !ok {
		t.Fatalf("Finish = %v, %v", ok, err)
	}

	got = mustGet(t, s, e.ID)
	if got.Status != jobs.StatusFailed || got.Attempt != 1 || got.Node != "node-a" || got.QueuePosition != 0 {
		t.Errorf("status, attempt, node, position = %s, %d, %q, %d", got.Status, got.Attempt, got.Node, got.QueuePosition)
	}
	if got.StartedAt == nil || got.FinishedAt == nil || got.FinishedAt.Before(*got.StartedAt) {
		t.Errorf("StartedAt, FinishedAt = %v, %v", got.StartedAt, got.FinishedAt)
	}
	if got.ParentID != parent.ID || got.Relationship != jobs.RelFork {
		t.Errorf("parent, relationship = %q, %q", got.ParentID, got.Relationship)
	}
	r := got.Result
	if r == nil {
		t.Fatal("Result is nil for a failed execution")
	}
	wantResult := jobs.Result{
		Status:             jobs.StatusFailed,
		ExitCode:           3,
		Stdout:             "ok\uFFFDthen \uFFFD\uFFFD bad\n",
		Stderr:             "Traceback\uFFFD",
		StdoutTruncated:    true,
		ArtifactsTruncated: true,
		Error:              &jobs.ExecError{Type: "RuntimeError", Message: "boom \uFFFD \uFFFD"},
		Runtime:            "runc",
		Start:              jobs.StartWarm,
		Image:              "tako/data:abc",
		Timing:             res.Timing,
		Artifacts: []jobs.Artifact{
			{Name: "empty.txt", SizeBytes: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
			{Name: "plot.png", SizeBytes: int64(len(png)), SHA256: sha256Hex(png)},
		},
	}
	if string(r.Output) != string(res.Output) {
		t.Errorf("Output = %s, want %s as written", r.Output, res.Output)
	}
	r.Output = nil
	if !reflect.DeepEqual(*r, wantResult) {
		t.Errorf("Result:\n got %+v\nwant %+v", *r, wantResult)
	}

	a, err := s.Artifact(ctx, jobs.System, e.ID, "plot.png")
	if err != nil {
		t.Fatalf("Artifact: %v", err)
	}
	if !slices.Equal(a.Content, png) || a.SizeBytes != int64(len(png)) || a.SHA256 != sha256Hex(png) {
		t.Errorf("Artifact = %+v, want the stored bytes", a)
	}
	if _, err := s.Artifact(ctx, jobs.System, e.ID, "missing.txt"); err == nil {
		t.Error("Artifact(missing) succeeded")
	} else {
		assertNotFound(t, err)
	}
}

func TestInsertRunningSync(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	e := newExecution("default")
	e.Status, e.Mode, e.Attempt, e.Node = jobs.StatusRunning, jobs.ModeSync, 1, "node-a"
	mustInsert(t, s, e)
	if e.StartedAt == nil {
		t.Error("StartedAt not set for a running insert")
	}
	got := mustGet(t, s, e.ID)
	if got.Status != jobs.StatusRunning || got.Mode != jobs.ModeSync || got.Node != "node-a" || got.StartedAt == nil || got.Result != nil {
		t.Errorf("Get = %+v", got)
	}
}

func TestInsertIdempotencyRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.DB(t)
	s := postgres.NewStore(pool)

	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e := newExecution("default")
			e.IdempotencyKey = "same-key"
			e.Fingerprint = fmt.Sprintf("fp-%d", i)
			<-start
			existing, err := s.Insert(ctx, nil, e)
			errs[i] = err
			ids[i] = e.ID
			if existing != nil {
				ids[i] = existing.ID
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Insert %d: %v", i, err)
		}
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tako_executions WHERE idempotency_key = 'same-key'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("%d rows with the key, want 1", rows)
	}
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("goroutine %d got %s, goroutine 0 got %s", i, id, ids[0])
		}
	}
}

func TestInsertIdempotentReturnsExisting(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	first := newExecution("default")
	first.IdempotencyKey, first.Fingerprint = "k", "fp-1"
	mustInsert(t, s, first)
	mustFinish(t, s, first.ID, jobs.StatusSucceeded, jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "out.txt"}, Content: []byte("hi")})

	second := newExecution("default")
	second.IdempotencyKey, second.Fingerprint = "k", "fp-2"
	existing, err := s.Insert(context.Background(), nil, second)
	if err != nil {
		t.Fatal(err)
	}
	if existing == nil || existing.ID != first.ID || existing.Fingerprint != "fp-1" || existing.Status != jobs.StatusSucceeded {
		t.Fatalf("existing = %+v, want the first execution", existing)
	}
	if want := []jobs.Artifact{{Name: "out.txt", SizeBytes: 2, SHA256: sha256Hex([]byte("hi"))}}; !reflect.DeepEqual(existing.Result.Artifacts, want) {
		t.Errorf("existing artifacts = %+v, want %+v", existing.Result.Artifacts, want)
	}
	assertNotFoundErr(t, s, second.ID)
}

func assertNotFoundErr(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	_, err := s.Get(context.Background(), jobs.System, id)
	assertNotFound(t, err)
}

func TestFinishTerminalIsFinal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, status := range []jobs.Status{jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusTimeout, jobs.StatusOOM, jobs.StatusCancelled} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			e := newExecution("default")
			mustInsert(t, s, e)
			mustFinish(t, s, e.ID, status, jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "a"}, Content: []byte("1")})
			before := mustGet(t, s, e.ID)

			again := &jobs.Result{Status: jobs.StatusSucceeded, ExitCode: 9, Stdout: "changed"}
			ok, err := s.Finish(ctx, nil, jobs.System, e.ID, again, []jobs.ArtifactContent{{Artifact: jobs.Artifact{Name: "b"}, Content: []byte("2")}})
			if err != nil || ok {
				t.Fatalf("second Finish = %v, %v; want false, nil", ok, err)
			}
			if ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 2, "node-b"); err != nil || ok {
				t.Fatalf("MarkRunning on %s = %v, %v; want false, nil", status, ok, err)
			}
			if err := s.Requeue(ctx, jobs.System, e.ID); err != nil {
				t.Fatalf("Requeue: %v", err)
			}
			if after := mustGet(t, s, e.ID); !reflect.DeepEqual(after, before) {
				t.Errorf("execution changed:\nbefore %+v\n after %+v", before, after)
			}
		})
	}
}

func TestFinishInCallerTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.DB(t)
	s := postgres.NewStore(pool)
	tests := []struct {
		name   string
		commit bool
		want   jobs.Status
	}{
		{name: "commit", commit: true, want: jobs.StatusCancelled},
		{name: "rollback", commit: false, want: jobs.StatusQueued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newExecution("default")
			mustInsert(t, s, e)
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			ok, err := s.Finish(ctx, tx, jobs.System, e.ID, &jobs.Result{Status: jobs.StatusCancelled},
				[]jobs.ArtifactContent{{Artifact: jobs.Artifact{Name: "x"}, Content: []byte("x")}})
			if err != nil || !ok {
				t.Fatalf("Finish = %v, %v", ok, err)
			}
			if tt.commit {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, e.ID); got.Status != tt.want {
				t.Errorf("status = %s, want %s", got.Status, tt.want)
			}
			_, err = s.Artifact(ctx, jobs.System, e.ID, "x")
			if tt.commit && err != nil {
				t.Errorf("Artifact after commit: %v", err)
			}
			if !tt.commit && err == nil {
				t.Error("Artifact exists after rollback")
			}
		})
	}
}

func TestFinishNotifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.DB(t)
	s := postgres.NewStore(pool)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{postgres.NotifyChannel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	e := newExecution("default")
	mustInsert(t, s, e)
	mustFinish(t, s, e.ID, jobs.StatusSucceeded)

	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	if n.Channel != postgres.NotifyChannel || n.Payload != e.ID {
		t.Errorf("notification = %s %q, want %s %q", n.Channel, n.Payload, postgres.NotifyChannel, e.ID)
	}
	if _, err := conn.Exec(ctx, "UNLISTEN *"); err != nil {
		t.Fatal(err)
	}
}

func TestMarkRunningAndRequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := newExecution("default")
	mustInsert(t, s, e)

	steps := []struct {
		name    string
		do      func() (bool, error)
		want    bool
		status  jobs.Status
		attempt int
		node    string
	}{
		{"first attempt", func() (bool, error) { return s.MarkRunning(ctx, nil, jobs.System, e.ID, 1, "node-a") }, true, jobs.StatusRunning, 1, "node-a"},
		{"retried attempt", func() (bool, error) { return s.MarkRunning(ctx, nil, jobs.System, e.ID, 2, "node-b") }, true, jobs.StatusRunning, 2, "node-b"},
		{"requeue", func() (bool, error) { return true, s.Requeue(ctx, jobs.System, e.ID) }, true, jobs.StatusQueued, 2, ""},
		{"third attempt", func() (bool, error) { return s.MarkRunning(ctx, nil, jobs.System, e.ID, 3, "node-a") }, true, jobs.StatusRunning, 3, "node-a"},
		{"finish", func() (bool, error) {
			return s.Finish(ctx, nil, jobs.System, e.ID, &jobs.Result{Status: jobs.StatusTimeout}, nil)
		}, true, jobs.StatusTimeout, 3, "node-a"},
		{"after the end", func() (bool, error) { return s.MarkRunning(ctx, nil, jobs.System, e.ID, 4, "node-c") }, false, jobs.StatusTimeout, 3, "node-a"},
	}
	for _, st := range steps {
		ok, err := st.do()
		if err != nil || ok != st.want {
			t.Fatalf("%s = %v, %v; want %v, nil", st.name, ok, err, st.want)
		}
		got := mustGet(t, s, e.ID)
		if got.Status != st.status || got.Attempt != st.attempt || got.Node != st.node {
			t.Errorf("%s: status, attempt, node = %s, %d, %q; want %s, %d, %q",
				st.name, got.Status, got.Attempt, got.Node, st.status, st.attempt, st.node)
		}
		if (got.Status == jobs.StatusRunning) != (got.StartedAt != nil && got.FinishedAt == nil) {
			t.Errorf("%s: StartedAt, FinishedAt = %v, %v for %s", st.name, got.StartedAt, got.FinishedAt, got.Status)
		}
	}
}

func TestUnknownExecution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, id := range []string{uuid.NewString(), "not-a-uuid", "", "'; DROP TABLE tako_executions; --"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			t.Parallel()
			_, err := s.Get(ctx, jobs.System, id)
			assertNotFound(t, err)
			if err.Error() != "Job not found" {
				t.Errorf("Get error = %q, want %q", err, "Job not found")
			}
			_, err = s.MarkRunning(ctx, nil, jobs.System, id, 1, "n")
			assertNotFound(t, err)
			assertNotFound(t, s.Requeue(ctx, jobs.System, id))
			_, err = s.Finish(ctx, nil, jobs.System, id, &jobs.Result{Status: jobs.StatusFailed}, nil)
			assertNotFound(t, err)
			assertNotFound(t, s.SetRiverJobID(ctx, nil, jobs.System, id, 1))
			_, err = s.RiverJobID(ctx, jobs.System, id)
			assertNotFound(t, err)
			_, err = s.Artifact(ctx, jobs.System, id, "a")
			assertNotFound(t, err)
		})
	}
}

func TestQueuePosition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Interleaved inserts of two job types; positions count per type.
	a1, b1, a2, a3, b2 := newExecution("a"), newExecution("b"), newExecution("a"), newExecution("a"), newExecution("b")
	for _, e := range []*jobs.Execution{a1, b1, a2, a3, b2} {
		mustInsert(t, s, e)
	}
	assertPositions := func(step string, want map[*jobs.Execution]int) {
		t.Helper()
		for e, pos := range want {
			if got := mustGet(t, s, e.ID).QueuePosition; got != pos {
				t.Errorf("%s: %s #%s position = %d, want %d", step, e.JobType, e.ID[:8], got, pos)
			}
		}
	}
	assertPositions("initial", map[*jobs.Execution]int{a1: 1, a2: 2, a3: 3, b1: 1, b2: 2})

	if _, err := s.MarkRunning(ctx, nil, jobs.System, a1.ID, 1, "n"); err != nil {
		t.Fatal(err)
	}
	mustFinish(t, s, b1.ID, jobs.StatusCancelled)
	assertPositions("after a1 started and b1 was cancelled", map[*jobs.Execution]int{a1: 0, a2: 1, a3: 2, b1: 0, b2: 1})

	if err := s.Requeue(ctx, jobs.System, a1.ID); err != nil {
		t.Fatal(err)
	}
	assertPositions("after a1 was requeued", map[*jobs.Execution]int{a1: 1, a2: 2, a3: 3})
}

func TestSubmissionLockAndCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.DB(t)
	s := postgres.NewStore(pool)
	for _, st := range []jobs.Status{jobs.StatusQueued, jobs.StatusQueued, jobs.StatusRunning} {
		e := newExecution("default")
		e.Status = st
		mustInsert(t, s, e)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := s.LockSubmissions(ctx, tx); err != nil {
		t.Fatal(err)
	}
	n, err := s.CountQueued(ctx, tx, 1000)
	if err != nil || n != 2 {
		t.Fatalf("CountQueued = %d, %v; want 2", n, err)
	}
	if n, err := s.CountQueued(ctx, tx, 1); err != nil || n != 1 {
		t.Fatalf("CountQueued up to 1 = %d, %v; want 1", n, err)
	}
	// Another session cannot take the lock while tx holds it.
	if held := tryLockOther(t, pool); held {
		t.Error("a second session took the submission lock while it was held")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if held := tryLockOther(t, pool); !held {
		t.Error("the submission lock was still held after commit")
	}
}

// tryLockOther tries, in its own transaction, to take the lock that
// LockSubmissions takes, without waiting, and reports whether it got it.
func tryLockOther(t *testing.T, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}) bool {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var got bool
	// The key LockSubmissions uses ("takosubm"); a change there shows here.
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(0x74616b6f7375626d)).Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRiverJobID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := newExecution("default")
	mustInsert(t, s, e)
	if id, err := s.RiverJobID(ctx, jobs.System, e.ID); err != nil || id != 0 {
		t.Fatalf("RiverJobID before set = %d, %v; want 0", id, err)
	}
	if err := s.SetRiverJobID(ctx, nil, jobs.System, e.ID, 4242); err != nil {
		t.Fatal(err)
	}
	if id, err := s.RiverJobID(ctx, jobs.System, e.ID); err != nil || id != 4242 {
		t.Fatalf("RiverJobID = %d, %v; want 4242", id, err)
	}
}

func TestDeleteOlderThan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.DB(t)
	s := postgres.NewStore(pool)

	old := func(status jobs.Status) *jobs.Execution {
		e := newExecution("default")
		mustInsert(t, s, e)
		if status.Terminal() {
			mustFinish(t, s, e.ID, status, jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "f"}, Content: []byte("data")})
		}
		if _, err := pool.Exec(ctx, `UPDATE tako_executions SET created_at = now() - interval '40 days' WHERE id = $1`, e.ID); err != nil {
			t.Fatal(err)
		}
		return e
	}
	oldDone, oldFailed := old(jobs.StatusSucceeded), old(jobs.StatusFailed)
	oldQueued := old(jobs.StatusQueued)
	recent := newExecution("default")
	mustInsert(t, s, recent)
	mustFinish(t, s, recent.ID, jobs.StatusSucceeded)
	// A child of a deleted execution survives and loses its link.
	child := newExecution("default")
	child.ParentID, child.Relationship = oldDone.ID, jobs.RelRerun
	mustInsert(t, s, child)

	n, err := s.DeleteOlderThan(ctx, time.Now().Add(-30*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteOlderThan = %d, %v; want 2", n, err)
	}
	for _, e := range []*jobs.Execution{oldDone, oldFailed} {
		assertNotFoundErr(t, s, e.ID)
	}
	var artifacts int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tako_artifacts`).Scan(&artifacts); err != nil {
		t.Fatal(err)
	}
	if artifacts != 0 {
		t.Errorf("%d artifacts left, want 0", artifacts)
	}
	mustGet(t, s, oldQueued.ID)
	mustGet(t, s, recent.ID)
	if got := mustGet(t, s, child.ID); got.ParentID != "" {
		t.Errorf("child ParentID = %q, want empty", got.ParentID)
	}
}

// TestFinishHeld: only the node and attempt that hold a running execution
// write its result; another node, an earlier attempt, or anyone once the
// execution is queued again, write nothing. Taken names the attempts a
// node no longer holds.
func TestFinishHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := newExecution("default")
	e.Status = jobs.StatusQueued
	mustInsert(t, s, e)
	if ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 1, "node-a"); err != nil || !ok {
		t.Fatalf("MarkRunning: %v, %v", ok, err)
	}
	done := &jobs.Result{Status: jobs.StatusSucceeded, Stdout: "ok"}
	for _, h := range []postgres.Holder{{Node: "node-b", Attempt: 1}, {Node: "node-a", Attempt: 2}, {Attempt: 1}} {
		if ok, err := s.FinishHeld(ctx, nil, e.ID, h, done, nil); err != nil || ok {
			t.Errorf("FinishHeld by %+v = %v, %v; want false, nil", h, ok, err)
		}
	}
	if taken, err := s.Taken(ctx, "node-a", map[string]int{e.ID: 1}); err != nil || len(taken) != 0 {
		t.Errorf("Taken by its holder = %v, %v; want none", taken, err)
	}
	if taken, err := s.Taken(ctx, "node-b", map[string]int{e.ID: 1}); err != nil || len(taken) != 1 {
		t.Errorf("Taken by another node = %v, %v; want the execution", taken, err)
	}
	if ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 2, "node-b"); err != nil || !ok {
		t.Fatalf("MarkRunning, attempt 2: %v, %v", ok, err)
	}
	if taken, err := s.Taken(ctx, "node-a", map[string]int{e.ID: 1}); err != nil || len(taken) != 1 || taken[0] != e.ID {
		t.Errorf("Taken by the first attempt's node = %v, %v; want the execution", taken, err)
	}
	if ok, err := s.FinishHeld(ctx, nil, e.ID, postgres.Holder{Node: "node-a", Attempt: 1}, done, nil); err != nil || ok {
		t.Errorf("FinishHeld by the first attempt = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s.FinishHeld(ctx, nil, e.ID, postgres.Holder{Node: "node-b", Attempt: 2}, done, nil); err != nil || !ok {
		t.Errorf("FinishHeld by the holder = %v, %v; want true, nil", ok, err)
	}
	if got := mustGet(t, s, e.ID); got.Status != jobs.StatusSucceeded || got.Node != "node-b" || got.Attempt != 2 {
		t.Errorf("record %s by %s attempt %d, want succeeded by node-b attempt 2", got.Status, got.Node, got.Attempt)
	}
}
