package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
)

// FuzzExecuteRequest sends arbitrary bytes as the body of POST /execute and
// of POST /execute/async. The properties: DecodeExecuteRequest never panics
// and what it accepts is complete; the server never answers 500; every
// answer is valid JSON; every error has a string detail; an accepted sync
// run is a success and an accepted async one a queued job.
func FuzzExecuteRequest(f *testing.F) {
	seeds := []string{
		// The quick start's payloads.
		`{"code": "print(1 + 1)"}`,
		quickstartPython,
		strings.TrimSuffix(quickstartPython, "}") + `, "requirements": ["numpy"]}`,
		`{"code": "print('hello')"}`,
		`{"code": "import time; time.sleep(10); print('done')"}`,
		// Async submissions: an idempotency key, and every field.
		`{"code": "import time; time.sleep(10); print('done')", "idempotency_key": "quickstart-async-0001"}`,
		`{"code": "print(2)", "input_data": {"n": 2}, "job_type": "data", "timeout": 45, "startup_timeout": 60, "idempotency_key": "async_key_2"}`,
		// Every field.
		`{"code": "x", "input_data": {"a": [1, {"b": null}]}, "job_type": "data", "timeout": 60, "startup_timeout": 120, "requirements": [], "idempotency_key": "key_12345678"}`,
		// Malformed.
		``, ` `, `{`, `}`, `{"code"`, `{"code": }`, `{"code": "x",}`, `{"code": "x"} {}`, `{"code": "x"}]`,
		`[`, `[1,`, `nul`, `"`, `{"code": "\ud800"}`, `{"code": "x", "input_data": {"a": }}`, "\xff\xfe{}",
		// Huge numbers and odd numerics.
		`{"code": "x", "timeout": 1e400}`, `{"code": "x", "timeout": -1e400}`,
		`{"code": "x", "timeout": 99999999999999999999999999999}`, `{"code": "x", "timeout": 1.0000000000000002}`,
		`{"code": "x", "startup_timeout": 1e-400}`, `{"code": "x", "timeout": -0}`, `{"code": "x", "timeout": 30.0}`,
		// Nested junk and wrong types.
		`{"code": "x", "input_data": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
		`{"code": "x", "input_data": ` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat("}", 100) + `}`,
		`{"code": 5}`, `{"code": ["x"]}`, `{"code": {"x": 1}}`, `{"code": "x", "timeout": "x"}`,
		`{"code": "x", "timeout": 1.5}`, `{"code": "x", "job_type": 7}`, `{"code": "x", "requirements": [1, null]}`,
		`{"code": "x", "requirements": {"numpy": 1}}`, `{"code": "x", "idempotency_key": true}`, `[{"code": "x"}]`,
		`{"code": "x", "nope": 1}`, `{"Code": "x"}`, `{"": 1}`, `null`, `true`, `12`,
		// Unicode.
		`{"code": "print('héllo wörld 🐙')", "input_data": {"ключ": "值"}}`,
		`{"code": "\u0000print(1)"}`, `{"🐙": 1}`, "{\"code\": \"x\", \"job_type\": \"d\u00e9fault\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	// Submit keeps nothing, so the fake does not grow while fuzzing.
	fs := &fakeService{result: quickstartResult(), submit: func(_ context.Context, sub jobs.Submission) (*jobs.Execution, bool, error) {
		return &jobs.Execution{ID: "0195c3a8-0000-7000-8000-00000000f022", Status: jobs.StatusQueued, JobType: sub.JobType}, true, nil
	}}
	s := New(Options{Registry: testRegistry(f), Runner: &fakeRunner{}, Service: fs, Limits: Limits{MaxBodyBytes: 1 << 20, MaxCodeBytes: 4096, MaxInputBytes: 4096}})

	f.Fuzz(func(t *testing.T, body []byte) {
		// The decoder alone: an error or a request, never a panic.
		req, err := DecodeExecuteRequest(body, testRegistry(t), Limits{})
		if err == nil && (req.JobType == "" || req.Timeout <= 0 || !json.Valid(req.InputJSON)) {
			t.Fatalf("accepted request without a job type or a timeout, or with bad input: %+v", req)
		}

		// The whole app, both ways in.
		for _, path := range []string{"/execute", "/execute/async"} {
			status, m := fuzzPost(t, s, path, body)
			switch {
			case status >= http.StatusBadRequest:
				if d, ok := m["detail"].(string); !ok || d == "" || len(m) != 2 {
					t.Fatalf("%s: status %d without the error shape: %v", path, status, m)
				}
			case path == "/execute" && (status != http.StatusOK || m["success"] != true):
				t.Fatalf("%s: status %d: %v", path, status, m)
			case path == "/execute/async" && (status != http.StatusAccepted || m["status"] != "queued" || m["job_id"] == nil || len(m) != 2):
				t.Fatalf("%s: status %d: %v", path, status, m)
			}
		}
	})
}

// fuzzPost sends body to path and checks what holds for every answer: not
// a 5xx, UTF-8, a JSON object. It returns the status and the object.
func fuzzPost(t *testing.T, s *Server, path string, body []byte) (int, map[string]any) {
	t.Helper()
	hr := httptest.NewRequest("POST", path, bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	resp, err := s.App().Test(hr, -1)
	if err != nil {
		t.Fatalf("App.Test: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= http.StatusInternalServerError {
		t.Fatalf("%s: status %d for body %q: %s", path, resp.StatusCode, body, got)
	}
	if !utf8.Valid(got) {
		t.Fatalf("%s: response is not UTF-8: %q", path, got)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("%s: response is not a JSON object (%v): %s", path, err, got)
	}
	return resp.StatusCode, m
}
