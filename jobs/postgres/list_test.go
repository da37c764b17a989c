package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
)

func TestListPagesStablyUnderInserts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	var original []string // oldest first
	for range 25 {
		e := newExecution("default")
		mustInsert(t, s, e)
		original = append(original, e.ID)
	}

	var seen []string
	cursor, pages := int64(0), 0
	for {
		page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{Before: cursor, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range page.Items {
			seen = append(seen, e.ID)
		}
		// Newer work arrives between page reads.
		for range 3 {
			mustInsert(t, s, newExecution("default"))
		}
		if page.NextCursor == 0 {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	for i, id := range seen {
		if want := original[len(original)-1-i]; id != want {
			t.Fatalf("item %d = %s, want %s (newest first, no duplicates, no gaps)", i, id, want)
		}
	}
	if len(seen) != len(original) {
		t.Errorf("saw %d executions, want %d", len(seen), len(original))
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	ids := map[string][]string{} // "job_type/status" -> ids, oldest first
	add := func(jobType string, status jobs.Status, artifacts ...jobs.ArtifactContent) {
		e := newExecution(jobType)
		mustInsert(t, s, e)
		if status != jobs.StatusQueued {
			mustFinish(t, s, e.ID, status, artifacts...)
		}
		ids[jobType+"/"+string(status)] = append(ids[jobType+"/"+string(status)], e.ID)
	}
	art := jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "r.csv"}, Content: []byte("a,b\n")}
	add("a", jobs.StatusQueued)
	add("a", jobs.StatusSucceeded, art)
	add("b", jobs.StatusQueued)
	add("b", jobs.StatusFailed)
	add("a", jobs.StatusSucceeded)
	add("b", jobs.StatusSucceeded)

	tests := []struct {
		name   string
		filter jobs.ExecutionFilter
		want   int
		check  func(*jobs.Execution) bool
	}{
		{"all", jobs.ExecutionFilter{}, 6, func(*jobs.Execution) bool { return true }},
		{"status", jobs.ExecutionFilter{Status: jobs.StatusSucceeded}, 3, func(e *jobs.Execution) bool { return e.Status == jobs.StatusSucceeded }},
		{"job type", jobs.ExecutionFilter{JobType: "b"}, 3, func(e *jobs.Execution) bool { return e.JobType == "b" }},
		{"both", jobs.ExecutionFilter{JobType: "a", Status: jobs.StatusSucceeded}, 2, func(e *jobs.Execution) bool {
			return e.JobType == "a" && e.Status == jobs.StatusSucceeded
		}},
		{"queued", jobs.ExecutionFilter{Status: jobs.StatusQueued}, 2, func(e *jobs.Execution) bool {
			return e.Status == jobs.StatusQueued && e.Result == nil
		}},
		{"no match", jobs.ExecutionFilter{JobType: "nope"}, 0, nil},
		{"limit above max", jobs.ExecutionFilter{Limit: 5000}, 6, func(*jobs.Execution) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			page, err := s.List(ctx, jobs.System, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != tt.want || page.NextCursor != 0 {
				t.Fatalf("%d items, cursor %d; want %d, 0", len(page.Items), page.NextCursor, tt.want)
			}
			for _, e := range page.Items {
				if !tt.check(e) {
					t.Errorf("item %+v does not match the filter", e)
				}
				if e.Terminal() != (e.Result != nil) {
					t.Errorf("item %s %s: Result = %v", e.ID, e.Status, e.Result)
				}
			}
		})
	}

}

// TestListStart: the start filter keeps the executions that got a warm
// or a cold container, and leaves out those that never got one.
func TestListStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	ids := map[jobs.Start][]string{}
	for _, st := range []jobs.Start{jobs.StartWarm, jobs.StartCold, jobs.StartWarm, ""} {
		e := newExecution("default")
		mustInsert(t, s, e)
		if ok, err := s.Finish(ctx, nil, jobs.System, e.ID, &jobs.Result{Status: jobs.StatusSucceeded, Start: st}, nil); err != nil || !ok {
			t.Fatalf("Finish: %v, %v", ok, err)
		}
		ids[st] = append([]string{e.ID}, ids[st]...) // newest first
	}
	for _, st := range []jobs.Start{jobs.StartWarm, jobs.StartCold} {
		page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{Start: st})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range page.Items {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, ids[st]) {
			t.Errorf("start %s: got %v, want %v", st, got, ids[st])
		}
	}
}

// TestListParent: the parent filter keeps the executions made from one,
// and none of its siblings' or its own.
func TestListParent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	parent, other := newExecution("default"), newExecution("default")
	mustInsert(t, s, parent)
	mustInsert(t, s, other)
	var want []string
	for _, p := range []*jobs.Execution{parent, other, parent} {
		child := newExecution("default")
		child.ParentID, child.Relationship = p.ID, jobs.RelRerun
		mustInsert(t, s, child)
		if p == parent {
			want = append([]string{child.ID}, want...) // newest first
		}
	}
	page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{ParentID: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Items {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("children of %s: got %v, want %v", parent.ID, got, want)
	}
}

// TestListSummaries: the history leaves out what was submitted (code,
// input) and the artifacts, and keeps what the job printed and returned, as
// the original's listing does; Get has everything.
func TestListSummaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	e := newExecution("default")
	e.Code, e.InputJSON, e.Requirements, e.CorrelationID = "print('big')", []byte(`{"x": 1}`), []string{"numpy"}, "cid-1"
	mustInsert(t, s, e)
	res := &jobs.Result{
		Status: jobs.StatusFailed, ExitCode: 3, Stdout: "out", Stderr: "err", Output: []byte(`{"r": 1}`),
		StdoutTruncated: true, Runtime: "runc", Start: jobs.StartWarm, Image: "img:1",
		Error: &jobs.ExecError{Type: jobs.ErrName, Message: "NameError"}, Timing: jobs.Timing{Total: time.Second},
	}
	art := jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "r.csv"}, Content: []byte("a,b\n")}
	if ok, err := s.Finish(ctx, nil, jobs.System, e.ID, res, []jobs.ArtifactContent{art}); err != nil || !ok {
		t.Fatalf("Finish: %v %v", ok, err)
	}
	page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("List: %v, %d items", err, len(page.Items))
	}
	sum := page.Items[0]
	if sum.Code != "" || len(sum.InputJSON) != 0 || sum.Result.Artifacts != nil {
		t.Errorf("the summary carries the submission or artifacts: %+v %+v", sum, sum.Result)
	}
	if sum.Result.Stdout != "out" || sum.Result.Stderr != "err" || string(sum.Result.Output) != `{"r": 1}` {
		t.Errorf("the summary lost the job's output: %+v", sum.Result)
	}
	if sum.ID != e.ID || sum.Seq == 0 || sum.CorrelationID != "cid-1" || len(sum.Requirements) != 1 ||
		sum.Result.ExitCode != 3 || !sum.Result.StdoutTruncated || sum.Result.Runtime != "runc" ||
		sum.Result.Start != jobs.StartWarm || sum.Result.Image != "img:1" || sum.Result.Error == nil ||
		sum.Result.Timing.Total != time.Second || sum.FinishedAt == nil {
		t.Errorf("the summary lost a small field: %+v %+v", sum, sum.Result)
	}
	full := mustGet(t, s, e.ID)
	if full.Code != e.Code || full.Result.Stdout != "out" || len(full.Result.Artifacts) != 1 || full.Seq != sum.Seq {
		t.Errorf("Get: %+v %+v", full, full.Result)
	}
}

func TestListDefaultLimit(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for range 101 {
		mustInsert(t, s, newExecution("default"))
	}
	page, err := s.List(context.Background(), jobs.System, jobs.ExecutionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 100 || page.NextCursor == 0 {
		t.Fatalf("%d items, cursor %d; want 100 and a cursor", len(page.Items), page.NextCursor)
	}
	next, err := s.List(context.Background(), jobs.System, jobs.ExecutionFilter{Before: page.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Items) != 1 || next.NextCursor != 0 {
		t.Fatalf("second page: %d items, cursor %d; want 1, 0", len(next.Items), next.NextCursor)
	}
	// The original's paging: offset 100 reaches the same last execution.
	byOffset, err := s.List(context.Background(), jobs.System, jobs.ExecutionFilter{Offset: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(byOffset.Items) != 1 || byOffset.Items[0].ID != next.Items[0].ID || byOffset.NextCursor != 0 {
		t.Fatalf("offset 100: %d items, cursor %d; want the cursor page's one", len(byOffset.Items), byOffset.NextCursor)
	}
	if p, err := s.List(context.Background(), jobs.System, jobs.ExecutionFilter{Offset: 99, Limit: 1}); err != nil || len(p.Items) != 1 || p.NextCursor == 0 {
		t.Fatalf("offset 99 limit 1: %v, %+v; want one item and more after it", err, p)
	}
}
