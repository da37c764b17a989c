package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tako-run/tako/jobs"
)

func TestExecutions(t *testing.T) {
	t.Parallel()
	done := finishedExecution()
	done.ID = "0195c3a8-0000-7000-8000-000000000002"
	queued := &jobs.Execution{ID: "0195c3a8-0000-7000-8000-000000000003", JobType: "data", Status: jobs.StatusQueued, CreatedAt: fakeNow, Attempt: 1, QueuePosition: 1}
	tests := []struct {
		query  string
		filter jobs.ExecutionFilter
		page   jobs.ExecutionPage
		next   any
	}{
		{"", jobs.ExecutionFilter{Limit: 100}, jobs.ExecutionPage{}, nil},
		{"?status=succeeded&job_type=default&limit=1", jobs.ExecutionFilter{Status: jobs.StatusSucceeded, JobType: "default", Limit: 1},
			jobs.ExecutionPage{Items: []*jobs.Execution{done}, NextCursor: 41}, 41.0},
		{"?limit=1000&cursor=41", jobs.ExecutionFilter{Limit: 1000, Before: 41},
			jobs.ExecutionPage{Items: []*jobs.Execution{queued, done}}, nil},
		{"?job_type=retired-type", jobs.ExecutionFilter{Limit: 100, JobType: "retired-type"}, jobs.ExecutionPage{}, nil},
		{"?start=warm", jobs.ExecutionFilter{Limit: 100, Start: jobs.StartWarm}, jobs.ExecutionPage{}, nil},
		{"?start=cold&status=succeeded", jobs.ExecutionFilter{Limit: 100, Start: jobs.StartCold, Status: jobs.StatusSucceeded}, jobs.ExecutionPage{}, nil},
		{"?parent_id=01a22fb7-f628-7922-a263-4abf8f334b4f", jobs.ExecutionFilter{Limit: 100, ParentID: "01a22fb7-f628-7922-a263-4abf8f334b4f"}, jobs.ExecutionPage{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			fs := &fakeService{list: func(context.Context, jobs.ExecutionFilter) (jobs.ExecutionPage, error) { return tt.page, nil }}
			s := newTestServer(t, fs, nil, Limits{})
			r := do(t, s, "GET", "/executions"+tt.query, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if fs.lastList != tt.filter {
				t.Errorf("filter %+v, want %+v", fs.lastList, tt.filter)
			}
			m := r.object(t)
			checkKeys(t, m, []string{"count", "has_more", "items", "limit", "next_cursor", "offset"})
			if m["limit"] != float64(tt.filter.Limit) || m["next_cursor"] != tt.next {
				t.Errorf("limit %v next_cursor %v", m["limit"], m["next_cursor"])
			}
			items, ok := m["items"].([]any)
			if !ok || len(items) != len(tt.page.Items) {
				t.Fatalf("items %v", m["items"])
			}
			for i, it := range items {
				im := it.(map[string]any)
				checkKeys(t, im, summaryKeys)
				if im["job_id"] != tt.page.Items[i].ID || im["status"] != string(tt.page.Items[i].Status) {
					t.Errorf("item %d: %v", i, im)
				}
			}
		})
	}
}

func TestExecutionsQueryErrors(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	s := newTestServer(t, fs, nil, Limits{})
	tests := []struct {
		query, detail string
	}{
		{"status=done", `status: must be one of queued, running, succeeded, failed, timeout, oom, cancelled, not "done"`},
		{"status=", "status: must be one of"},
		{"status=SUCCEEDED", "status: must be one of"},
		{"job_type=", "job_type: must be 1 to 128 characters"},
		{"start=hot", `start: must be warm or cold, not "hot"`},
		{"start=", "start: must be warm or cold"},
		{"parent_id=nope", `parent_id: must be an execution id, not "nope"`},
		{"parent_id=", "parent_id: must be an execution id"},
		{"limit=0", `limit: must be an integer from 1 to 1000, not "0"`},
		{"limit=1001", "limit: must be an integer from 1 to 1000"},
		{"limit=-5", "limit: must be an integer from 1 to 1000"},
		{"limit=ten", "limit: must be an integer from 1 to 1000"},
		{"limit=1.5", "limit: must be an integer from 1 to 1000"},
		{"limit=+5", "limit: must be an integer from 1 to 1000"},
		{"limit=", "limit: must be an integer from 1 to 1000"},
		{"cursor=0", `cursor: must be a positive integer from next_cursor, not "0"`},
		{"cursor=-1", "cursor: must be a positive integer"},
		{"cursor=abc", "cursor: must be a positive integer"},
		{"cursor=99999999999999999999", "cursor: must be a positive integer"},
		{"cursor=", "cursor: must be a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			checkErrorContains(t, do(t, s, "GET", "/executions?"+tt.query, "", nil), http.StatusUnprocessableEntity, tt.detail)
		})
	}
	if n := fs.count("List"); n != 0 {
		t.Errorf("bad queries reached the service %d times", n)
	}
}

func TestExecutionByID(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	exec := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{})
	r := do(t, s, "GET", "/executions/"+exec.ID, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.object(t)
	checkKeys(t, m, executionKeys)
	if m["execution_id"] != exec.ID || m["job_id"] != exec.ID || m["correlation_id"] != "cid-finished" {
		t.Errorf("got %v", m)
	}
	checkError(t, do(t, s, "GET", "/executions/0195c3a8-0000-7000-8000-0000000fffff", "", nil), http.StatusNotFound, "Execution not found")
	checkError(t, do(t, s, "GET", "/executions/bad%20id", "", nil), http.StatusNotFound, "Execution not found")
	if !reflect.DeepEqual(m["artifacts"], []any{}) {
		t.Errorf("artifacts %v", m["artifacts"])
	}
}

func TestExecutionsServiceError(t *testing.T) {
	t.Parallel()
	fs := &fakeService{list: func(context.Context, jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
		return jobs.ExecutionPage{}, errors.New("select: conn to 10.0.0.5 refused")
	}}
	s := newTestServer(t, fs, nil, Limits{})
	r := do(t, s, "GET", "/executions", "", nil)
	checkError(t, r, http.StatusInternalServerError, internalDetail)
	fs.list = func(context.Context, jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
		return jobs.ExecutionPage{}, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "database is unavailable; retry later"}
	}
	r = do(t, s, "GET", "/executions", "", nil)
	checkError(t, r, http.StatusServiceUnavailable, "database is unavailable; retry later")
}

// TestExecutionsSizeCap: a page whose items would take the body past
// 1 MiB ends early, and next_cursor continues right after its last item.
func TestExecutionsSizeCap(t *testing.T) {
	t.Parallel()
	var items []*jobs.Execution
	for i := range 1000 {
		e := finishedExecution()
		e.ID = fmt.Sprintf("0195c3a8-0000-7000-8000-%012d", i)
		e.Seq = int64(5000 - i) // newest first
		e.Result.Error = &jobs.ExecError{Type: jobs.ErrName, Message: strings.Repeat("x", 4000)}
		items = append(items, e)
	}
	fs := &fakeService{list: func(context.Context, jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
		return jobs.ExecutionPage{Items: items, NextCursor: 4001}, nil
	}}
	s := newTestServer(t, fs, nil, Limits{})
	r := do(t, s, "GET", "/executions?limit=1000", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if len(r.body) > maxListBytes {
		t.Errorf("body of %d bytes, over the cap of %d", len(r.body), maxListBytes)
	}
	m := r.object(t)
	got := m["items"].([]any)
	if len(got) == 0 || len(got) >= len(items) {
		t.Fatalf("%d items, want a page cut short", len(got))
	}
	last := items[len(got)-1]
	if got[len(got)-1].(map[string]any)["execution_id"] != last.ID || m["next_cursor"] != float64(last.Seq) {
		t.Errorf("page ends at %v with next_cursor %v; want %s and %d", got[len(got)-1].(map[string]any)["execution_id"], m["next_cursor"], last.ID, last.Seq)
	}
	if m["limit"] != 1000.0 {
		t.Errorf("limit %v", m["limit"])
	}

	// A page that fits keeps the store's cursor.
	fs.list = func(context.Context, jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
		return jobs.ExecutionPage{Items: items[:3], NextCursor: 4997}, nil
	}
	if m := do(t, s, "GET", "/executions?limit=3", "", nil).object(t); len(m["items"].([]any)) != 3 || m["next_cursor"] != 4997.0 {
		t.Errorf("a small page: %d items, next_cursor %v", len(m["items"].([]any)), m["next_cursor"])
	}
}
