package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// The original's response models, as the fields a client reads and their
// JSON types: "int" is a number without a fraction, "|null" allows null.
var (
	originalExecute = map[string]string{
		"success": "bool", "output": "object|null", "execution_time": "number", "stdout": "string",
		"stderr": "string", "exit_code": "int|null", "job_type": "string|null",
		// tako's error is {type, message}, DESIGN.md section 5; see docs/compatibility.md.
		"error": "object|null",
	}
	originalSubmit = map[string]string{"job_id": "string", "status": "string"}
	originalStatus = map[string]string{
		"job_id": "string", "status": "string", "created_at": "string|null", "duration_ms": "number|null", "queue_position": "int|null",
	}
	originalRecord = map[string]string{
		"execution_id": "string", "status": "string", "job_type": "string", "job_version": "string", "created_at": "string",
		"started_at": "string|null", "ended_at": "string|null", "duration_ms": "int|null", "exit_code": "int|null",
		"stdout": "string", "stderr": "string", "output": "object|null", "error": "object|null", "timing": "object|null",
	}
	originalFullRecord = merge(originalRecord, map[string]string{
		"job_ref": "string", "artifacts": "array", "input_artifacts": "array", "resource_usage": "object|null",
		"code_hash": "string|null", "input_hash": "string|null", "parent_execution_id": "string|null",
		"relationship": "string|null", "stdout_truncated": "bool", "stderr_truncated": "bool", "idempotency_key": "string|null",
	})
	originalTiming = map[string]string{
		"startup_ms": "number|null", "dep_install_ms": "number|null", "execution_ms": "number|null",
		"total_ms": "number|null", "phase_at_exit": "string|null",
	}
	originalPending   = map[string]string{"job_id": "string", "status": "string", "message": "string", "queue_position": "int|null"}
	originalCancel    = map[string]string{"status": "string", "job_id": "string"}
	originalPage      = map[string]string{"items": "array", "limit": "int", "offset": "int", "has_more": "bool", "count": "int"}
	originalQueue     = map[string]string{"pending": "int", "running": "int", "max_workers": "int", "max_queue_size": "int"}
	originalDLQStats  = map[string]string{"total": "int", "by_error_type": "object"}
	originalDLQRemove = map[string]string{"status": "string", "entry_id": "int"}
	originalJobType   = map[string]string{
		"name": "string", "requirements": "array", "python_version": "string|null", "memory_limit": "string",
		"cpu_limit": "number", "timeout": "int", "session_enabled": "bool", "gpu_enabled": "bool",
		"gpu_vendor": "string|null", "image_exists": "bool",
	}
	originalBuild  = map[string]string{"status": "string", "job_type": "string", "version": "string", "digest": "string", "image_ref": "string"}
	originalHealth = map[string]string{
		"status": "string", "docker_available": "bool", "gvisor_available": "bool", "version": "string",
		"production_mode": "bool", "queue_stats": "object",
		// No circuit breaker in tako: null, see docs/compatibility.md.
		"circuit_breaker": "object|null",
	}
	originalDLQEntry = map[string]string{
		"id": "int", "job_id": "string", "job_data": "object", "error_type": "string", "error_message": "string|null",
		"retry_count": "int", "created_at": "string", "client_ip": "string|null", "correlation_id": "string|null",
	}
)

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// checkFields asserts that obj has every field of model with its JSON type.
func checkFields(t *testing.T, what string, obj any, model map[string]string) {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Errorf("%s: not a JSON object: %v", what, obj)
		return
	}
	for field, types := range model {
		v, present := m[field]
		if !present {
			t.Errorf("%s: no field %q", what, field)
			continue
		}
		if !jsonTypeIs(v, types) {
			t.Errorf("%s: %q is %#v, want %s", what, field, v, types)
		}
	}
}

// jsonTypeIs reports whether v, decoded from JSON, is one of types
// ("string|null" and so on).
func jsonTypeIs(v any, types string) bool {
	for _, typ := range strings.Split(types, "|") {
		switch x := v.(type) {
		case nil:
			if typ == "null" {
				return true
			}
		case string:
			if typ == "string" {
				return true
			}
		case bool:
			if typ == "bool" {
				return true
			}
		case float64:
			if typ == "number" || typ == "int" && x == math.Trunc(x) {
				return true
			}
		case map[string]any:
			if typ == "object" {
				return true
			}
		case []any:
			if typ == "array" {
				return true
			}
		}
	}
	return false
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestOriginalRoutes drives every route of the original Tako VM server
// (tako_vm/server/app.py) against a real tako, through each outcome the
// original has, and checks the status code, the detail a client may match
// on and the original's fields with their JSON types.
func TestOriginalRoutes(t *testing.T) {
	s := startServer(t)

	// A finished job with an artifact, a running one and a queued one
	// behind it on the serial job type (one at a time).
	code, rec := s.post(t, "/execute", `{"code": "open('/output/report.txt', 'w').write('hello'); print('done')", "input_data": {"x": 1}}`)
	if code != http.StatusOK || rec["success"] != true {
		t.Fatalf("execute: %d %v", code, rec)
	}
	done := rec["execution_id"].(string)
	running := s.submit(t, `{"code": "import time; time.sleep(90)", "job_type": "serial", "timeout": 100}`)
	s.waitStatus(t, running, "running", 2*time.Minute)
	queued := s.submit(t, `{"code": "print('behind')", "job_type": "serial"}`)
	t.Cleanup(func() {
		s.post(t, "/jobs/"+queued+"/cancel", "")
		s.post(t, "/jobs/"+running+"/cancel", "")
	})
	const unknown = "0195c3a8-0000-7000-8000-0000000fffff"

	cases := []struct {
		name, method, path, body string
		status                   int
		detail                   string            // the original's detail, for errors
		model                    map[string]string // the original's fields, for successes
		check                    func(t *testing.T, v any, h http.Header)
	}{
		{name: "root redirects to the docs", method: "GET", path: "/", status: http.StatusTemporaryRedirect,
			check: func(t *testing.T, _ any, h http.Header) {
				if h.Get("Location") != "/docs" {
					t.Errorf("Location %q", h.Get("Location"))
				}
			}},
		{name: "docs", method: "GET", path: "/docs", status: http.StatusOK,
			check: func(t *testing.T, v any, h http.Header) {
				if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(fmt.Sprint(v), "/openapi.json") {
					t.Errorf("docs page %q: %.200v", h.Get("Content-Type"), v)
				}
			}},
		{name: "health", method: "GET", path: "/health", status: http.StatusOK, model: originalHealth,
			check: func(t *testing.T, v any, _ http.Header) {
				checkFields(t, "queue_stats", v.(map[string]any)["queue_stats"], originalQueue)
			}},
		{name: "execute", method: "POST", path: "/execute", body: `{"code": "print(1)", "input_data": {}, "timeout": 10}`, status: http.StatusOK, model: originalExecute},
		{name: "execute of a failing program is still 200", method: "POST", path: "/execute", body: `{"code": "1/0"}`, status: http.StatusOK, model: originalExecute,
			check: func(t *testing.T, v any, _ http.Header) {
				if v.(map[string]any)["success"] != false {
					t.Errorf("success %v", v)
				}
			}},
		{name: "async submit is 200", method: "POST", path: "/execute/async", body: `{"code": "print(2)"}`, status: http.StatusOK, model: originalSubmit},
		{name: "status of a finished job", method: "GET", path: "/jobs/" + done, status: http.StatusOK, model: originalStatus},
		{name: "status of a queued job", method: "GET", path: "/jobs/" + queued, status: http.StatusOK, model: originalStatus,
			check: func(t *testing.T, v any, _ http.Header) {
				if m := v.(map[string]any); m["status"] != "queued" || m["queue_position"] != 1.0 {
					t.Errorf("queued job %v", m)
				}
			}},
		{name: "status of an unknown job", method: "GET", path: "/jobs/" + unknown, status: http.StatusNotFound, detail: "Job not found"},
		{name: "result", method: "GET", path: "/jobs/" + done + "/result", status: http.StatusOK, model: originalRecord,
			check: func(t *testing.T, v any, _ http.Header) {
				checkFields(t, "timing", v.(map[string]any)["timing"], originalTiming)
			}},
		{name: "result, full view", method: "GET", path: "/jobs/" + done + "/result?view=full", status: http.StatusOK, model: originalFullRecord,
			check: func(t *testing.T, v any, _ http.Header) {
				arts := v.(map[string]any)["artifacts"].([]any)
				if len(arts) != 1 {
					t.Fatalf("artifacts %v", arts)
				}
				checkFields(t, "artifact", arts[0], map[string]string{"name": "string", "size_bytes": "int", "sha256": "string", "content_type": "string|null"})
			}},
		{name: "result of an unfinished job", method: "GET", path: "/jobs/" + queued + "/result", status: http.StatusOK, model: originalPending,
			check: func(t *testing.T, v any, _ http.Header) {
				if v.(map[string]any)["message"] != "Job still in progress" {
					t.Errorf("%v", v)
				}
			}},
		{name: "result wait runs out", method: "GET", path: "/jobs/" + running + "/result?wait=true&timeout=1", status: http.StatusRequestTimeout, detail: "Timeout waiting for job"},
		{name: "result of an unknown job", method: "GET", path: "/jobs/" + unknown + "/result", status: http.StatusNotFound, detail: "Job not found"},
		{name: "cancel of a finished job", method: "POST", path: "/jobs/" + done + "/cancel", status: http.StatusNotFound, detail: "Job not found or already completed"},
		{name: "cancel of an unknown job", method: "POST", path: "/jobs/" + unknown + "/cancel", status: http.StatusNotFound, detail: "Job not found or already completed"},
		{name: "rerun is 200", method: "POST", path: "/jobs/" + done + "/rerun", body: `{}`, status: http.StatusOK, model: originalSubmit},
		{name: "rerun of an unfinished job", method: "POST", path: "/jobs/" + running + "/rerun", body: `{}`, status: http.StatusBadRequest, detail: "Cannot rerun job that hasn't completed"},
		{name: "rerun of an unknown job", method: "POST", path: "/jobs/" + unknown + "/rerun", body: `{}`, status: http.StatusNotFound, detail: "Job not found"},
		{name: "fork is 200", method: "POST", path: "/jobs/" + done + "/fork", body: `{"code": "print(3)"}`, status: http.StatusOK, model: originalSubmit},
		{name: "fork of an unknown job", method: "POST", path: "/jobs/" + unknown + "/fork", body: `{"code": "print(3)"}`, status: http.StatusNotFound, detail: "Job not found"},
		{name: "artifact", method: "GET", path: "/jobs/" + done + "/artifacts/report.txt", status: http.StatusOK,
			check: func(t *testing.T, v any, h http.Header) {
				if v != "hello" || h.Get("ETag") == "" {
					t.Errorf("artifact %v, ETag %q", v, h.Get("ETag"))
				}
			}},
		{name: "artifact metadata", method: "HEAD", path: "/jobs/" + done + "/artifacts/report.txt", status: http.StatusOK,
			check: func(t *testing.T, _ any, h http.Header) {
				if h.Get("Content-Length") != "5" || h.Get("ETag") == "" {
					t.Errorf("HEAD headers %v", h)
				}
			}},
		{name: "missing artifact", method: "GET", path: "/jobs/" + done + "/artifacts/nope.txt", status: http.StatusNotFound, detail: "Artifact not found"},
		{name: "artifact of an unknown job", method: "GET", path: "/jobs/" + unknown + "/artifacts/report.txt", status: http.StatusNotFound, detail: "Job not found"},
		{name: "executions", method: "GET", path: "/executions?limit=2", status: http.StatusOK, model: originalPage,
			check: func(t *testing.T, v any, _ http.Header) {
				m := v.(map[string]any)
				if m["limit"] != 2.0 || m["offset"] != 0.0 || m["count"] != 2.0 || m["has_more"] != true {
					t.Errorf("page %v", m)
				}
				for _, item := range m["items"].([]any) {
					checkFields(t, "execution", item, originalRecord)
				}
			}},
		{name: "executions by offset", method: "GET", path: "/executions?limit=1&offset=1&status=succeeded&job_type=default", status: http.StatusOK, model: originalPage,
			check: func(t *testing.T, v any, _ http.Header) {
				if m := v.(map[string]any); m["offset"] != 1.0 || m["count"] != 1.0 {
					t.Errorf("page %v", m)
				}
			}},
		{name: "execution", method: "GET", path: "/executions/" + done, status: http.StatusOK, model: originalRecord},
		{name: "execution, full view", method: "GET", path: "/executions/" + done + "?view=full", status: http.StatusOK, model: originalFullRecord},
		{name: "unknown execution", method: "GET", path: "/executions/" + unknown, status: http.StatusNotFound, detail: "Execution not found"},
		{name: "job types", method: "GET", path: "/job-types", status: http.StatusOK,
			check: func(t *testing.T, v any, _ http.Header) {
				for _, jt := range v.([]any) {
					checkFields(t, "job type", jt, originalJobType)
				}
			}},
		{name: "job type", method: "GET", path: "/job-types/default", status: http.StatusOK, model: originalJobType,
			check: func(t *testing.T, v any, _ http.Header) {
				// tako's executor image declares its Python.
				if p, _ := v.(map[string]any)["python_version"].(string); !strings.HasPrefix(p, "3.") {
					t.Errorf("python_version %v", v.(map[string]any)["python_version"])
				}
			}},
		{name: "unknown job type", method: "GET", path: "/job-types/nope", status: http.StatusNotFound, detail: "Job type 'nope' not found"},
		{name: "build", method: "POST", path: "/job-types/default/build", status: http.StatusOK, model: originalBuild},
		{name: "build of an unknown job type", method: "POST", path: "/job-types/nope/build", status: http.StatusNotFound, detail: "Job type 'nope' not found"},
		{name: "pool stats", method: "GET", path: "/pool/stats", status: http.StatusOK, model: originalQueue},
		{name: "dead-letter stats", method: "GET", path: "/dlq/stats", status: http.StatusOK, model: originalDLQStats},
		{name: "dead letters", method: "GET", path: "/dlq?limit=5&offset=0", status: http.StatusOK, model: originalPage},
		{name: "remove an unknown dead letter", method: "DELETE", path: "/dlq/999999", status: http.StatusNotFound, detail: "DLQ entry not found"},
		{name: "cancel of a queued job", method: "POST", path: "/jobs/" + queued + "/cancel", status: http.StatusOK, model: originalCancel},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, v, h := s.call(t, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%s %s: %d, want %d: %v", tc.method, tc.path, status, tc.status, v)
			}
			if tc.detail != "" {
				if d, _ := v.(map[string]any)["detail"].(string); d != tc.detail {
					t.Errorf("detail %q, want %q", d, tc.detail)
				}
			}
			if tc.model != nil {
				checkFields(t, tc.method+" "+tc.path, v, tc.model)
			}
			if tc.check != nil {
				tc.check(t, v, h)
			}
		})
	}
}

// call sends one request without following redirects and returns the
// status, the body (decoded JSON, else the text) and the headers.
func (s *testServer) call(t *testing.T, method, path, body string) (int, any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		v = string(raw)
	}
	return resp.StatusCode, v, resp.Header
}

// TestOriginalSDK runs a replica of what Tako VM's Python SDK sends (send
// with a dataclass function, send_raw, health, list_job_types and
// get_job_type) against a real tako.
func TestOriginalSDK(t *testing.T) {
	s := startServer(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("the SDK replica needs python3 (make testdeps installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, filepath.Join("testdata", "takovm_sdk_replica.py"), s.url).CombinedOutput()
	t.Logf("SDK replica:\n%s", out)
	if err != nil {
		t.Fatalf("the SDK replica failed: %v", err)
	}
	if n := bytes.Count(out, []byte("ok   ")); n < 10 || !bytes.Contains(out, []byte(": 0 failed")) {
		t.Errorf("%d checks passed; want every one of at least 10", n)
	}
}

// TestDeadLetterQueue makes a job exhaust its attempts on a real failure
// of tako's own: its job type's image is removed from the engine after the
// server started. The job shows in /dlq and /dlq/stats; once the image is
// back, retrying runs it again, and deleting another entry removes it,
// through the API and through the console's job types page.
func TestDeadLetterQueue(t *testing.T) {
	shared := startServer(t)
	t.Parallel()
	_, jt := shared.get(t, "/job-types/default")
	executor := jt.(map[string]any)["image"].(string)
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: the untag cleanup below runs before it.
	t.Cleanup(func() { dc.Close() })
	ctx := context.Background()
	doomed := fmt.Sprintf("tako-test-dlq-%d:1", os.Getpid())
	tag := func() {
		if err := dc.ImageTag(ctx, executor, doomed); err != nil {
			t.Fatal(err)
		}
	}
	untag := func() {
		if _, err := dc.ImageRemove(ctx, doomed, image.RemoveOptions{}); err != nil && !client.IsErrNotFound(err) {
			t.Fatal(err)
		}
	}
	tag()
	t.Cleanup(untag)

	s := startOwnServer(t,
		"TAKO_QUEUE_MAX_ATTEMPTS=2",
		"TAKO_JOB_TYPES_DOOMED_IMAGE="+doomed, "TAKO_JOB_TYPES_DOOMED_POOL_MIN=0", "TAKO_JOB_TYPES_DOOMED_POOL_MAX=0",
		"TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_JOB_TYPES_DATA_POOL_MIN=0",
	)
	// The server found the image at start; from now on the engine has none.
	untag()

	retried := s.submit(t, `{"code": "print('second time lucky')", "job_type": "doomed"}`)
	removed := s.submit(t, `{"code": "print('never')", "job_type": "doomed"}`)
	uiRetried := s.submit(t, `{"code": "print('lucky in the console')", "job_type": "doomed"}`)
	uiRemoved := s.submit(t, `{"code": "print('never')", "job_type": "doomed"}`)
	for _, id := range []string{retried, removed, uiRetried, uiRemoved} {
		if r := s.result(t, id); r["status"] != "failed" || r["attempt"] != 2.0 || r["error"].(map[string]any)["type"] != "internal_error" {
			t.Fatalf("job %s after its attempts: %v", id, r)
		}
	}
	entries := map[string]float64{} // job id -> entry id
	for deadline := time.Now().Add(time.Minute); len(entries) < 4; time.Sleep(100 * time.Millisecond) {
		code, page := s.get(t, "/dlq")
		if code != http.StatusOK {
			t.Fatalf("GET /dlq: %d %v", code, page)
		}
		checkFields(t, "GET /dlq", page, originalPage)
		for _, item := range page.(map[string]any)["items"].([]any) {
			checkFields(t, "dead letter", item, originalDLQEntry)
			e := item.(map[string]any)
			entries[e["job_id"].(string)] = e["id"].(float64)
			if e["error_type"] != "internal_error" || e["retry_count"] != 1.0 || e["job_data"].(map[string]any)["code"] == "" {
				t.Errorf("entry %v", e)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the jobs never reached the dead-letter queue: %v", entries)
		}
	}
	if _, st := s.get(t, "/dlq/stats"); fmt.Sprint(st) != "map[by_error_type:map[internal_error:4] total:4]" {
		t.Errorf("stats %v", st)
	}

	tag() // the image is back
	code, res := s.post(t, fmt.Sprintf("/dlq/%.0f/retry", entries[retried]), "")
	if code != http.StatusOK || res["job_id"] != retried || res["status"] != "queued" {
		t.Fatalf("retry: %d %v", code, res)
	}
	if r := s.result(t, retried); r["status"] != "succeeded" || r["stdout"] != "second time lucky\n" {
		t.Errorf("the retried job: %v", r)
	}
	code, res = s.call3(t, "DELETE", fmt.Sprintf("/dlq/%.0f", entries[removed]))
	if code != http.StatusOK || res["status"] != "removed" || res["entry_id"] != entries[removed] {
		t.Fatalf("delete: %d %v", code, res)
	}
	if _, st := s.get(t, "/dlq/stats"); fmt.Sprint(st) != "map[by_error_type:map[internal_error:2] total:2]" {
		t.Errorf("stats after retry and delete %v", st)
	}
	// The removed entry's job keeps its record.
	if code, r := s.get(t, "/executions/"+removed); code != http.StatusOK || r.(map[string]any)["status"] != "failed" {
		t.Errorf("record of the removed entry's job: %d %v", code, r)
	}
	code, res = s.call3(t, "DELETE", fmt.Sprintf("/dlq/%.0f", entries[removed]))
	if code != http.StatusNotFound || res["detail"] != "DLQ entry not found" {
		t.Errorf("second delete: %d %v", code, res)
	}

	// The same from the console: the entries are listed with their job
	// type, and its buttons retry one and delete the other.
	c := newChrome(t, s.url)
	c.open(t, "/ui/job-types", "#dlq")
	c.waitText(t, "#dlq", uiRemoved[:8])
	c.waitText(t, "#dlq tbody", "doomed")
	c.run(t, "retry from the console", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Retry entry %.0f"]`, entries[uiRetried]))))
	c.waitText(t, "#message", "Queued again as "+uiRetried)
	if r := s.result(t, uiRetried); r["status"] != "succeeded" || r["stdout"] != "lucky in the console\n" {
		t.Errorf("the job retried from the console: %v", r)
	}
	c.run(t, "delete from the console", chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Delete entry %.0f"]`, entries[uiRemoved]))))
	c.waitText(t, "#message", fmt.Sprintf("Entry %.0f deleted.", entries[uiRemoved]))
	c.waitText(t, "#dlq-note", "No dead letters")
	if _, st := s.get(t, "/dlq/stats"); fmt.Sprint(st) != "map[by_error_type:map[] total:0]" {
		t.Errorf("stats after the console's retry and delete %v", st)
	}
}

// call3 is call for routes that answer a JSON object.
func (s *testServer) call3(t *testing.T, method, path string) (int, map[string]any) {
	t.Helper()
	code, v, _ := s.call(t, method, path, "")
	m, _ := v.(map[string]any)
	return code, m
}
