package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
)

// The exact keys of each response shape.
var (
	submitKeys  = []string{"job_id", "status"}
	statusKeys  = []string{"attempt", "created_at", "duration_ms", "finished_at", "job_id", "job_type", "queue_position", "started_at", "status"}
	pendingKeys = []string{"job_id", "message", "queue_position", "status"}
	cancelKeys  = []string{"job_id", "status"}
	replayKeys  = []string{"job_id", "parent_id", "relationship", "status"}
	recordKeys  = []string{
		"api_key", "artifacts", "artifacts_truncated", "attempt", "code_hash", "correlation_id", "created_at", "duration_ms", "ended_at",
		"error", "execution_id", "execution_time", "exit_code", "finished_at", "idempotency_key", "image", "input_artifacts", "input_hash",
		"job_id", "job_ref", "job_type", "job_version", "node", "output", "parent_execution_id", "parent_id", "relationship", "requirements",
		"resource_usage", "runtime", "start", "started_at", "status", "stderr", "stderr_truncated", "stdout", "stdout_truncated", "success", "timing",
	}
	// summaryKeys are an item of GET /executions: the record without the
	// artifacts and the hashes of what was submitted, as the original's
	// slim record.
	summaryKeys = slices.DeleteFunc(slices.Clone(recordKeys), func(k string) bool {
		return k == "artifacts" || k == "input_artifacts" || k == "code_hash" || k == "input_hash" || k == "job_ref" || k == "resource_usage"
	})
	// executionKeys are GET /executions/{id}: the record and what was
	// submitted.
	executionKeys = slices.Sorted(slices.Values(append(slices.Clone(recordKeys), "code", "input_data")))
	// timingKeys are tako's phases and the original's names for them.
	timingKeys = []string{"collect_ms", "dep_install_ms", "execution_ms", "phase_at_exit", "queue_ms", "run_ms", "start_ms", "startup_ms", "total_ms"}
)

// checkKeys asserts that m has exactly the keys want.
func checkKeys(t *testing.T, m map[string]any, want []string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("keys\n got %v\nwant %v", got, w)
	}
}

// checkError asserts an error answer's status and exact detail.
func checkError(t *testing.T, r response, status int, detail string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if d := checkErrorBody(t, r); d != detail {
		t.Errorf("detail %q, want %q", d, detail)
	}
}

// checkErrorContains asserts an error answer's status and a substring of
// its detail.
func checkErrorContains(t *testing.T, r response, status int, detail string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if d := checkErrorBody(t, r); !strings.Contains(d, detail) {
		t.Errorf("detail %q does not contain %q", d, detail)
	}
}

// finishedExecution is a succeeded execution of the quick start with every
// history field set.
func finishedExecution() *jobs.Execution {
	started, finished := fakeNow.Add(2*time.Second), fakeNow.Add(2*time.Second+350*time.Millisecond)
	return &jobs.Execution{
		Attempt: 2, Node: "node-a", CorrelationID: "cid-finished", Code: "print('Done!')", CreatedAt: fakeNow,
		StartedAt: &started, FinishedAt: &finished, JobType: "default", Mode: jobs.ModeAsync,
		Status: jobs.StatusSucceeded, Result: quickstartResult(), Timeout: 30 * time.Second,
		ParentID: "0195c3a8-0000-7000-8000-0000000000aa", Relationship: jobs.RelRerun,
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	s := newTestServer(t, fs, nil, Limits{})

	body := `{"code": "print(1)", "idempotency_key": "key-00000001"}`
	r := do(t, s, "POST", "/execute/async", body, map[string]string{"X-Correlation-ID": "cid-submit"})
	if r.status != http.StatusOK {
		t.Fatalf("new job: status %d, want 200: %s", r.status, r.body)
	}
	m := r.object(t)
	checkKeys(t, m, submitKeys)
	id, _ := m["job_id"].(string)
	if id == "" || m["status"] != "queued" {
		t.Errorf("got %v", m)
	}
	sub, _ := fs.last()
	if sub.Mode != jobs.ModeAsync || sub.IdempotencyKey != "key-00000001" || sub.CorrelationID != "cid-submit" ||
		sub.JobType != "default" || sub.Timeout != 30*time.Second || string(sub.InputJSON) != "{}" {
		t.Errorf("service got %+v", sub)
	}

	// The same key and payload: the existing job, with its current status.
	r = do(t, s, "POST", "/execute/async", body, nil)
	if r.status != http.StatusOK {
		t.Fatalf("idempotent hit: status %d, want 200: %s", r.status, r.body)
	}
	if m := r.object(t); m["job_id"] != id || m["status"] != "queued" {
		t.Errorf("idempotent hit got %v", m)
	}
	do(t, s, "POST", "/jobs/"+id+"/cancel", "", nil)
	r = do(t, s, "POST", "/execute/async", body, nil)
	if m := r.object(t); r.status != http.StatusOK || m["job_id"] != id || m["status"] != "cancelled" {
		t.Errorf("idempotent hit after cancel: %d %v", r.status, m)
	}

	// The same key and another payload.
	r = do(t, s, "POST", "/execute/async", `{"code": "print(2)", "idempotency_key": "key-00000001"}`, nil)
	checkError(t, r, http.StatusConflict, "Idempotency key reused with different payload")
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		err        error
		status     int
		detail     string
		retryAfter string
	}{
		{"empty body", "", nil, 400, "request body is empty", ""},
		{"malformed", `{"code": `, nil, 400, "malformed JSON", ""},
		{"unknown field", `{"code": "x", "callback": "http://x"}`, nil, 422, "callback: unknown field", ""},
		{"code missing", `{"timeout": 5}`, nil, 422, "code: field required", ""},
		{"unknown job type", `{"code": "x", "job_type": "gpu"}`, nil, 422, `job_type: unknown job_type "gpu"; known job types: data, default`, ""},
		{"timeout over job type", `{"code": "x", "timeout": 31}`, nil, 422, `timeout: must be at most 30 seconds, the limit of job type "default"`, ""},
		{"bad idempotency key", `{"code": "x", "idempotency_key": "k"}`, nil, 422, "idempotency_key: must be 8 to 255 characters", ""},
		{"database down", `{"code": "x"}`, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "database is unavailable; retry later"}, 503, "database is unavailable; retry later", "1"},
		{"queue full", `{"code": "x"}`, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "queue is full (1000 pending)", RetryAfter: 5}, 503, "queue is full (1000 pending)", "5"},
		{"internal", `{"code": "x"}`, errors.New("insert: pq: secret"), 500, internalDetail, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &fakeService{err: tt.err}
			s := newTestServer(t, fs, nil, Limits{})
			r := do(t, s, "POST", "/execute/async", tt.body, nil)
			checkErrorContains(t, r, tt.status, tt.detail)
			if got := r.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.err == nil && fs.count("Submit") != 0 {
				t.Errorf("an invalid request reached the service")
			}
		})
	}
}

// TestQuickstartAsync is the quick start's async example as written: submit,
// poll the status, then wait for the result.
func TestQuickstartAsync(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	// The job runs while the client waits.
	fs.wait = func(ctx context.Context, id string, timeout time.Duration) (*jobs.Execution, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Errorf("wait context has no deadline")
		}
		started, finished := fakeNow.Add(time.Second), fakeNow.Add(11*time.Second)
		return fs.record(&jobs.Execution{
			ID: id, Attempt: 1, CreatedAt: fakeNow, StartedAt: &started, FinishedAt: &finished, JobType: "default",
			Status: jobs.StatusSucceeded, Result: &jobs.Result{Status: jobs.StatusSucceeded, Stdout: "done\n", Runtime: "runc", Start: jobs.StartWarm},
		}), nil
	}
	s := newTestServer(t, fs, nil, Limits{})

	r := do(t, s, "POST", "/execute/async", `{"code": "import time; time.sleep(10); print('done')"}`, nil)
	if r.status != http.StatusOK {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	id := r.object(t)["job_id"].(string)

	r = do(t, s, "GET", "/jobs/"+id, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status: %d %s", r.status, r.body)
	}
	if st := r.object(t)["status"]; st != "queued" && st != "running" && st != "succeeded" {
		t.Errorf("status %v", st)
	}

	r = do(t, s, "GET", "/jobs/"+id+"/result?wait=true&timeout=30", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("result: %d %s", r.status, r.body)
	}
	m := r.object(t)
	if m["stdout"] != "done\n" || m["success"] != true || m["job_id"] != id {
		t.Errorf("result %v", m)
	}
	if fs.lastWait != 30*time.Second {
		t.Errorf("Service.Wait got timeout %v, want 30s", fs.lastWait)
	}
}

func TestJobStatus(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	queued := fs.record(&jobs.Execution{JobType: "data", Status: jobs.StatusQueued, QueuePosition: 3})
	done := fs.record(finishedExecution())
	cancelledEarly := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusCancelled, FinishedAt: ptr(fakeNow.Add(time.Second))})
	s := newTestServer(t, fs, nil, Limits{})

	tests := []struct {
		name string
		id   string
		want map[string]any
	}{
		{"queued", queued.ID, map[string]any{
			"job_id": queued.ID, "status": "queued", "job_type": "data", "created_at": "2026-03-14T15:09:26.535897Z",
			"started_at": nil, "finished_at": nil, "duration_ms": nil, "queue_position": 3.0, "attempt": 1.0,
		}},
		{"finished", done.ID, map[string]any{
			"job_id": done.ID, "status": "succeeded", "job_type": "default", "created_at": "2026-03-14T15:09:26.535897Z",
			"started_at": "2026-03-14T15:09:28.535897Z", "finished_at": "2026-03-14T15:09:28.885897Z",
			"duration_ms": 350.0, "queue_position": nil, "attempt": 2.0,
		}},
		{"cancelled before it ran", cancelledEarly.ID, map[string]any{
			"job_id": cancelledEarly.ID, "status": "cancelled", "job_type": "default", "created_at": "2026-03-14T15:09:26.535897Z",
			"started_at": nil, "finished_at": "2026-03-14T15:09:27.535897Z", "duration_ms": 0.0, "queue_position": nil, "attempt": 1.0,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "GET", "/jobs/"+tt.id, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.object(t)
			checkKeys(t, m, statusKeys)
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("\n got %v\nwant %v", m, tt.want)
			}
		})
	}
	for _, id := range []string{"0195c3a8-0000-7000-8000-0000000fffff", "not%20an%20id", strings.Repeat("a", 129)} {
		checkError(t, do(t, s, "GET", "/jobs/"+id, "", nil), http.StatusNotFound, "Job not found")
	}
}

func ptr[T any](v T) *T { return &v }

func TestResult(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	queued := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusQueued, QueuePosition: 2})
	running := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusRunning, StartedAt: ptr(fakeNow)})
	done := fs.record(finishedExecution())
	cancelled := fs.record(&jobs.Execution{JobType: "data", Status: jobs.StatusCancelled, FinishedAt: ptr(fakeNow.Add(time.Second)), CorrelationID: "cid-c"})
	s := newTestServer(t, fs, nil, Limits{})

	t.Run("finished job is the full record", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/jobs/" + done.ID + "/result", "/jobs/" + done.ID + "/result?wait=false", "/jobs/" + done.ID + "/result?wait=true", "/executions/" + done.ID} {
			r := do(t, s, "GET", path, "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", path, r.status, r.body)
			}
			m := r.object(t)
			if strings.HasPrefix(path, "/executions/") {
				checkKeys(t, m, executionKeys)
				if m["code"] != done.Code || m["input_data"] != nil {
					t.Errorf("%s: code %q, input_data %v; want the submitted code and null", path, m["code"], m["input_data"])
				}
				delete(m, "code")
				delete(m, "input_data")
			} else {
				checkKeys(t, m, recordKeys)
			}
			want := map[string]any{
				"success": true, "output": map[string]any{"sum": 30.0, "product": 200.0}, "stdout": "Done!\n", "stderr": "",
				"exit_code": 0.0, "execution_time": 0.35, "job_type": "default", "execution_id": done.ID, "job_id": done.ID,
				"status": "succeeded", "error": nil, "runtime": "runc", "start": "warm", "stdout_truncated": false,
				"stderr_truncated": false, "artifacts": []any{}, "artifacts_truncated": false,
				"timing": map[string]any{"queue_ms": 0.25, "start_ms": 1.0, "run_ms": 11.5, "collect_ms": 0.5, "total_ms": 350.0,
					"startup_ms": 1.0, "execution_ms": 11.5, "dep_install_ms": nil, "phase_at_exit": nil},
				"created_at": "2026-03-14T15:09:26.535897Z", "started_at": "2026-03-14T15:09:28.535897Z",
				"finished_at": "2026-03-14T15:09:28.885897Z", "attempt": 2.0, "node": "node-a", "image": "", "requirements": []any{}, "parent_id": "0195c3a8-0000-7000-8000-0000000000aa",
				"relationship": "rerun", "correlation_id": "cid-finished", "api_key": nil,
				// The original's names and its full view's fields.
				"ended_at": "2026-03-14T15:09:28.885897Z", "duration_ms": 350.0, "job_version": "default", "job_ref": "default",
				"parent_execution_id": "0195c3a8-0000-7000-8000-0000000000aa", "idempotency_key": nil,
				"code_hash": "9aef37e97ed2c37be23a0cee0063893255a3f70d3ab1e68338222a530f6bdbf2", "input_hash": nil,
				"input_artifacts": []any{}, "resource_usage": nil,
			}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("%s\n got %v\nwant %v", path, m, want)
			}
		}
	})
	t.Run("unfinished job without wait is the stub", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			exec *jobs.Execution
			want map[string]any
		}{
			{queued, map[string]any{"job_id": queued.ID, "status": "queued", "message": "Job still in progress", "queue_position": 2.0}},
			{running, map[string]any{"job_id": running.ID, "status": "running", "message": "Job still in progress", "queue_position": nil}},
		} {
			r := do(t, s, "GET", "/jobs/"+tc.exec.ID+"/result", "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.object(t)
			checkKeys(t, m, pendingKeys)
			if !reflect.DeepEqual(m, tc.want) {
				t.Errorf("\n got %v\nwant %v", m, tc.want)
			}
		}
	})
	t.Run("cancelled before it ran has no result", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, "GET", "/jobs/"+cancelled.ID+"/result", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		m := r.object(t)
		checkKeys(t, m, recordKeys)
		e, _ := m["error"].(map[string]any)
		if m["success"] != false || m["status"] != "cancelled" || e["type"] != "cancelled" || e["message"] == "" ||
			m["exit_code"] != nil || m["output"] != nil || m["started_at"] != nil || m["parent_id"] != nil ||
			m["relationship"] != nil || m["job_type"] != "data" || m["correlation_id"] != "cid-c" {
			t.Errorf("got %v", m)
		}
	})
	t.Run("wait that runs out is 408", func(t *testing.T) {
		t.Parallel()
		r := do(t, s, "GET", "/jobs/"+running.ID+"/result?wait=true&timeout=1", "", nil)
		checkError(t, r, http.StatusRequestTimeout, "Timeout waiting for job")
	})
	t.Run("unknown job", func(t *testing.T) {
		t.Parallel()
		for _, q := range []string{"", "?wait=true"} {
			checkError(t, do(t, s, "GET", "/jobs/0195c3a8-0000-7000-8000-0000000fffff/result"+q, "", nil), 404, "Job not found")
		}
	})
}

func TestResultWaitContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  time.Duration
	}{
		{"?wait=true", 30 * time.Second},
		{"?wait=1&timeout=2.5", 2500 * time.Millisecond},
		{"?wait=TRUE&timeout=300", 300 * time.Second},
		{"?wait=true&timeout=1", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			fs := &fakeService{}
			// A Service whose own timer lost the race: the context's
			// deadline is what ends the wait, and that is a 408 too.
			fs.wait = func(ctx context.Context, id string, timeout time.Duration) (*jobs.Execution, error) {
				dl, ok := ctx.Deadline()
				if left := time.Until(dl); !ok || left > tt.want || left < tt.want-5*time.Second {
					t.Errorf("context deadline in %v (set %v), want about %v", left, ok, tt.want)
				}
				return nil, context.DeadlineExceeded
			}
			s := newTestServer(t, fs, nil, Limits{})
			r := do(t, s, "GET", "/jobs/some-job/result"+tt.query, "", nil)
			checkError(t, r, http.StatusRequestTimeout, "Timeout waiting for job")
			if fs.lastWait != tt.want {
				t.Errorf("Service.Wait got %v, want %v", fs.lastWait, tt.want)
			}
		})
	}
}

func TestResultQueryErrors(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	done := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{})
	tests := []struct {
		query, detail string
	}{
		{"wait=maybe", `wait: must be true or false, not "maybe"`},
		{"wait=", `wait: must be true or false, not ""`},
		{"wait=yes please", `wait: must be true or false`},
		{"timeout=0", "timeout: must be from 1 to 300 seconds"},
		{"timeout=0.5", "timeout: must be from 1 to 300 seconds"},
		{"timeout=-1", `timeout: must be a number of seconds, not "-1"`},
		{"timeout=301", "timeout: must be from 1 to 300 seconds"},
		{"timeout=300.5", "timeout: must be from 1 to 300 seconds"},
		{"timeout=abc", `timeout: must be a number of seconds, not "abc"`},
		{"timeout=", `timeout: must be a number of seconds, not ""`},
		{"timeout=1e2", "timeout: must be a number of seconds"},
		{"timeout=inf", "timeout: must be a number of seconds"},
		{"timeout=NaN", "timeout: must be a number of seconds"},
		{"timeout=0x10", "timeout: must be a number of seconds"},
		{"wait=true&timeout=99999", "timeout: must be from 1 to 300 seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "GET", "/jobs/"+done.ID+"/result?"+strings.ReplaceAll(tt.query, " ", "%20"), "", nil)
			checkErrorContains(t, r, http.StatusUnprocessableEntity, tt.detail)
		})
	}
	if n := fs.count("Wait") + fs.count("Get"); n != 0 {
		t.Errorf("bad queries reached the service %d times", n)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	queued := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusQueued, QueuePosition: 1})
	s := newTestServer(t, fs, nil, Limits{})

	r := do(t, s, "POST", "/jobs/"+queued.ID+"/cancel", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.object(t)
	checkKeys(t, m, cancelKeys)
	if m["status"] != "cancelled" || m["job_id"] != queued.ID {
		t.Errorf("got %v", m)
	}
	checkError(t, do(t, s, "POST", "/jobs/"+queued.ID+"/cancel", "", nil), http.StatusNotFound, "Job not found or already completed")
	checkError(t, do(t, s, "POST", "/jobs/0195c3a8-0000-7000-8000-0000000fffff/cancel", "", nil), http.StatusNotFound, "Job not found or already completed")
}

func TestRerunAndFork(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	dataParent := fs.record(&jobs.Execution{JobType: "data", Status: jobs.StatusFailed, Timeout: time.Minute, FinishedAt: ptr(fakeNow)})
	running := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusRunning})
	parent := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{MaxTimeout: 120 * time.Second})

	tests := []struct {
		name     string
		path     string
		body     string
		over     jobs.Overrides
		code     string
		parentID string
		rel      string
	}{
		{"rerun without a body", "/jobs/" + parent.ID + "/rerun", "", jobs.Overrides{}, "", parent.ID, "rerun"},
		{"rerun with {}", "/jobs/" + parent.ID + "/rerun", `{}`, jobs.Overrides{}, "", parent.ID, "rerun"},
		{"rerun with nulls", "/jobs/" + parent.ID + "/rerun", `{"job_type": null, "timeout": null}`, jobs.Overrides{}, "", parent.ID, "rerun"},
		{"rerun on another job type", "/jobs/" + parent.ID + "/rerun", `{"job_type": "data", "timeout": 60}`, jobs.Overrides{JobType: "data", Timeout: time.Minute}, "", parent.ID, "rerun"},
		{"rerun within the parent's job type", "/jobs/" + dataParent.ID + "/rerun", `{"timeout": 45}`, jobs.Overrides{Timeout: 45 * time.Second}, "", dataParent.ID, "rerun"},
		{"fork", "/jobs/" + parent.ID + "/fork", `{"code": "print(3)"}`, jobs.Overrides{}, "print(3)", parent.ID, "fork"},
		{"fork of a running job", "/jobs/" + running.ID + "/fork", `{"code": "print(4)", "job_type": "default", "timeout": 10}`, jobs.Overrides{JobType: "default", Timeout: 10 * time.Second}, "print(4)", running.ID, "fork"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case reads the fake's last call.
			r := do(t, s, "POST", tt.path, tt.body, map[string]string{"X-Correlation-ID": "replay-cid"})
			if r.status != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", r.status, r.body)
			}
			m := r.object(t)
			checkKeys(t, m, replayKeys)
			id, _ := m["job_id"].(string)
			if id == "" || id == tt.parentID || m["status"] != "queued" || m["parent_id"] != tt.parentID || m["relationship"] != tt.rel {
				t.Errorf("got %v", m)
			}
			fs.mu.Lock()
			over, code := fs.lastOver, fs.lastCode
			fs.mu.Unlock()
			// The new execution carries the replay request's correlation id.
			tt.over.CorrelationID = "replay-cid"
			if over != tt.over || (tt.rel == "fork" && code != tt.code) {
				t.Errorf("service got overrides %+v code %q, want %+v %q", over, code, tt.over, tt.code)
			}
			// The new job is there to poll.
			if r := do(t, s, "GET", "/jobs/"+id, "", nil); r.status != http.StatusOK || r.object(t)["status"] != "queued" {
				t.Errorf("new job: %d %s", r.status, r.body)
			}
		})
	}
}

func TestRerunAndForkErrors(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	parent := fs.record(finishedExecution())
	running := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusRunning})
	s := newTestServer(t, fs, nil, Limits{MaxTimeout: 120 * time.Second})
	rerun, fork := "/jobs/"+parent.ID+"/rerun", "/jobs/"+parent.ID+"/fork"
	tests := []struct {
		name, path, body string
		status           int
		detail           string
	}{
		{"rerun malformed", rerun, `{"timeout": }`, 400, "malformed JSON"},
		{"rerun not an object", rerun, `[]`, 422, "body: must be a JSON object"},
		{"rerun unknown field", rerun, `{"code": "print(1)"}`, 422, "code: unknown field; allowed fields are job_type, timeout"},
		{"rerun unknown job type", rerun, `{"job_type": "gpu"}`, 422, `job_type: unknown job_type "gpu"; known job types: data, default`},
		{"rerun job type not a string", rerun, `{"job_type": 1}`, 422, "job_type: must be a string"},
		{"rerun timeout over max", rerun, `{"timeout": 121, "job_type": "data"}`, 422, "timeout: must be at most 120 seconds (the server's max_timeout)"},
		{"rerun timeout over the new job type", rerun, `{"timeout": 61, "job_type": "data"}`, 422, `timeout: must be at most 60 seconds, the limit of job type "data"`},
		{"rerun timeout over the parent's job type", rerun, `{"timeout": 31}`, 422, `timeout: must be at most 30 seconds, the limit of job type "default"`},
		{"rerun timeout zero", rerun, `{"timeout": 0}`, 422, "timeout: must be at least 1 seconds"},
		{"rerun timeout string", rerun, `{"timeout": "5"}`, 422, "timeout: must be an integer"},
		{"rerun unfinished", "/jobs/" + running.ID + "/rerun", `{}`, 400, "Cannot rerun job that hasn't completed"},
		{"rerun unknown job", "/jobs/0195c3a8-0000-7000-8000-0000000fffff/rerun", `{}`, 404, "Job not found"},
		{"rerun unknown job with a timeout", "/jobs/0195c3a8-0000-7000-8000-0000000fffff/rerun", `{"timeout": 5}`, 404, "Job not found"},
		{"fork empty body", fork, ``, 400, "request body is empty"},
		{"fork malformed", fork, `{"code": "x"`, 400, "malformed JSON"},
		{"fork without code", fork, `{}`, 422, "code: field required"},
		{"fork blank code", fork, `{"code": "   "}`, 422, "code: must not be blank"},
		{"fork unknown field", fork, `{"code": "x", "input_data": {}}`, 422, "input_data: unknown field; allowed fields are code, job_type, timeout"},
		{"fork unknown job type", fork, `{"code": "x", "job_type": "nope"}`, 422, `job_type: unknown job_type "nope"`},
		{"fork timeout over job type", fork, `{"code": "x", "job_type": "default", "timeout": 31}`, 422, `timeout: must be at most 30 seconds`},
		{"fork unknown job", "/jobs/0195c3a8-0000-7000-8000-0000000fffff/fork", `{"code": "x"}`, 404, "Job not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkErrorContains(t, do(t, s, "POST", tt.path, tt.body, nil), tt.status, tt.detail)
		})
	}
}

func TestStatusFor(t *testing.T) {
	t.Parallel()
	tests := map[jobs.ErrorCode]int{
		jobs.EINVALID: 422, jobs.EMALFORMED: 400, jobs.ENOTFOUND: 404, jobs.ETOOLARGE: 413, jobs.EUNAVAILABLE: 503,
		jobs.ENOTALLOWED: 403, jobs.ECONFLICT: 409, jobs.ETIMEOUT: 408, jobs.EINTERNAL: 500, "weird": 500,
		jobs.EUNAUTHORIZED: 401, jobs.ERATELIMITED: 429, jobs.EOVERQUOTA: 429, jobs.EUNSUPPORTED: 415, jobs.EMISDIRECTED: 421,
	}
	for code, want := range tests {
		if got := statusFor(code); got != want {
			t.Errorf("statusFor(%q) = %d, want %d", code, got, want)
		}
	}
}

// TestNilResultRenders covers every status without a Result: the renderer
// must not panic and must say what it can.
func TestNilResultRenders(t *testing.T) {
	t.Parallel()
	for _, st := range allStatuses {
		r := newExecutionResponse(&jobs.Execution{ID: "x", Status: st, JobType: "default"})
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		// Succeeded without a result is a Service bug; it still renders as
		// what the status says.
		ok := st == jobs.StatusSucceeded
		if r.Success != ok || r.ExitCode != nil || string(r.Output) != "null" || r.Artifacts == nil {
			t.Errorf("%s: %s", st, b)
		}
		if (st.Terminal() && !ok) != (r.Error != nil) {
			t.Errorf("%s: error %v", st, r.Error)
		}
	}
}
