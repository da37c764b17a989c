package postgres_test

import (
	"context"
	"math"
	"testing"

	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
)

// TestScopeByAPIKey: a caller sees and changes only the executions its key
// submitted, and another key's execution answers exactly as one that does
// not exist; an admin sees everything; the zero Caller sees nothing.
func TestScopeByAPIKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	insert := func(key string, status jobs.Status) *jobs.Execution {
		e := newExecution("default")
		e.APIKey = key
		mustInsert(t, s, e)
		if status != jobs.StatusQueued {
			mustFinish(t, s, e.ID, status, jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "out.txt"}, Content: []byte("x")})
		}
		return e
	}
	aDone, aQueued := insert("A", jobs.StatusSucceeded), insert("A", jobs.StatusQueued)
	bDone := insert("B", jobs.StatusSucceeded)
	open := insert("", jobs.StatusSucceeded) // from a server without keys
	if err := s.SetRiverJobID(ctx, nil, jobs.System, aQueued.ID, 77); err != nil {
		t.Fatal(err)
	}
	a, b := jobs.Caller{APIKey: "A"}, jobs.Caller{APIKey: "B"}
	admin := jobs.Caller{APIKey: "ops", Admin: true}
	missing := uuid.NewString()

	// Every by-id call of B on A's executions fails exactly as on an id
	// that does not exist.
	calls := map[string]func(id string) error{
		"Get":    func(id string) error { _, err := s.Get(ctx, b, id); return err },
		"Status": func(id string) error { _, err := s.Status(ctx, b, id); return err },
		"Artifact": func(id string) error {
			_, err := s.Artifact(ctx, b, id, "out.txt")
			return err
		},
		"RiverJobID":    func(id string) error { _, err := s.RiverJobID(ctx, b, id); return err },
		"SetRiverJobID": func(id string) error { return s.SetRiverJobID(ctx, nil, b, id, 99) },
		"MarkRunning": func(id string) error {
			_, err := s.MarkRunning(ctx, nil, b, id, 5, "node-b")
			return err
		},
		"Requeue": func(id string) error { return s.Requeue(ctx, b, id) },
		"Finish": func(id string) error {
			_, err := s.Finish(ctx, nil, b, id, &jobs.Result{Status: jobs.StatusCancelled}, nil)
			return err
		},
	}
	for name, call := range calls {
		want := call(missing)
		assertNotFound(t, want)
		for _, id := range []string{aDone.ID, aQueued.ID, open.ID} {
			got := call(id)
			assertNotFound(t, got)
			if got.Error() != want.Error() {
				t.Errorf("%s of another key's execution: %q; of a missing id: %q", name, got, want)
			}
		}
	}
	// Nothing B tried changed A's executions.
	if e := mustGet(t, s, aQueued.ID); e.Status != jobs.StatusQueued || e.Attempt != 0 || e.Node != "" {
		t.Errorf("A's queued execution after B's calls: %s attempt %d node %q", e.Status, e.Attempt, e.Node)
	}
	if id, err := s.RiverJobID(ctx, a, aQueued.ID); err != nil || id != 77 {
		t.Errorf("A's river job id after B's calls: %d %v", id, err)
	}

	// A reaches its own; the admin reaches everyone's.
	for _, c := range []jobs.Caller{a, admin, jobs.System} {
		if _, err := s.Get(ctx, c, aDone.ID); err != nil {
			t.Errorf("Get as %+v: %v", c, err)
		}
		if st, err := s.Status(ctx, c, aQueued.ID); err != nil || st != jobs.StatusQueued {
			t.Errorf("Status as %+v: %s %v", c, st, err)
		}
		if art, err := s.Artifact(ctx, c, aDone.ID, "out.txt"); err != nil || string(art.Content) != "x" {
			t.Errorf("Artifact as %+v: %v", c, err)
		}
	}
	if _, err := s.Get(ctx, admin, bDone.ID); err != nil {
		t.Errorf("admin Get of B's: %v", err)
	}

	list := func(c jobs.Caller, f jobs.ExecutionFilter) []string {
		t.Helper()
		page, err := s.List(ctx, c, f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range page.Items {
			ids = append(ids, e.ID)
		}
		return ids
	}
	tests := []struct {
		name   string
		caller jobs.Caller
		filter jobs.ExecutionFilter
		want   []string // newest first
	}{
		{"own", a, jobs.ExecutionFilter{}, []string{aQueued.ID, aDone.ID}},
		{"own by name", a, jobs.ExecutionFilter{APIKey: "A"}, []string{aQueued.ID, aDone.ID}},
		{"another key's name gives an empty page", b, jobs.ExecutionFilter{APIKey: "A"}, nil},
		{"other key", b, jobs.ExecutionFilter{}, []string{bDone.ID}},
		{"admin sees all", admin, jobs.ExecutionFilter{}, []string{open.ID, bDone.ID, aQueued.ID, aDone.ID}},
		{"admin filters by key", admin, jobs.ExecutionFilter{APIKey: "A"}, []string{aQueued.ID, aDone.ID}},
		{"zero caller sees nothing", jobs.Caller{}, jobs.ExecutionFilter{}, nil},
	}
	for _, tt := range tests {
		got := list(tt.caller, tt.filter)
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
				break
			}
		}
	}
	if _, err := s.Get(ctx, jobs.Caller{}, open.ID); err == nil {
		t.Error("the zero Caller read an execution")
	}
}

// TestCountActive: the counts behind the quotas, per key and status.
func TestCountActive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var running *jobs.Execution
	for i, st := range []jobs.Status{jobs.StatusQueued, jobs.StatusQueued, jobs.StatusQueued, jobs.StatusRunning, jobs.StatusRunning, jobs.StatusSucceeded} {
		e := newExecution("default")
		e.APIKey = "A"
		mustInsert(t, s, e)
		switch st {
		case jobs.StatusRunning:
			if ok, err := s.MarkRunning(ctx, nil, jobs.System, e.ID, 1, "n"); err != nil || !ok {
				t.Fatal(i, ok, err)
			}
			running = e
		case jobs.StatusSucceeded:
			mustFinish(t, s, e.ID, st)
		}
	}
	other := newExecution("default")
	other.APIKey = "B"
	mustInsert(t, s, other)

	tests := []struct {
		key    string
		status jobs.Status
		except string
		upTo   int
		want   int
	}{
		{"A", jobs.StatusQueued, "", 10, 3},
		{"A", jobs.StatusQueued, "", 2, 2},
		{"A", jobs.StatusRunning, "", 10, 2},
		{"A", jobs.StatusRunning, running.ID, 10, 1},
		{"B", jobs.StatusQueued, "", 10, 1},
		{"C", jobs.StatusRunning, "", 10, 0},
	}
	for _, tt := range tests {
		got, err := s.CountActive(ctx, nil, tt.key, tt.status, tt.except, tt.upTo)
		if err != nil || got != tt.want {
			t.Errorf("CountActive(%s, %s, except %q, %d) = %d, %v; want %d", tt.key, tt.status, tt.except, tt.upTo, got, err, tt.want)
		}
	}
	if _, err := s.CountActive(ctx, nil, "A", jobs.StatusSucceeded, "", 10); err == nil {
		t.Error("CountActive of a terminal status did not fail")
	}
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := s.LockAPIKey(ctx, tx, "A"); err != nil {
		t.Fatal(err)
	}
}

// TestExitCodeClamped: an exit code beyond the column's 32 bits is stored
// at the nearest bound instead of failing the result write.
func TestExitCodeClamped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, tt := range []struct{ code, want int }{
		{1 << 40, math.MaxInt32},
		{-1 << 40, math.MinInt32},
		{math.MaxInt32, math.MaxInt32},
		{137, 137},
	} {
		e := newExecution("default")
		mustInsert(t, s, e)
		ok, err := s.Finish(ctx, nil, jobs.System, e.ID, &jobs.Result{Status: jobs.StatusFailed, ExitCode: tt.code}, nil)
		if err != nil || !ok {
			t.Fatalf("Finish with exit code %d: %v %v", tt.code, ok, err)
		}
		if got := mustGet(t, s, e.ID).Result.ExitCode; got != tt.want {
			t.Errorf("exit code %d stored as %d, want %d", tt.code, got, tt.want)
		}
	}
}
