package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/tako-run/tako/jobs"
)

// FuzzExecuteRequest sends arbitrary bytes as the body of POST /execute and
// of POST /execute/async. The properties: DecodeExecuteRequest never panics
// and what it accepts is complete; the server never answers 500; every
// answer is valid JSON; every error has a string detail; an accepted sync
// run is a success and an accepted async one a queued job. More seeds are
// in testdata/fuzz/FuzzExecuteRequest.
//
// The fuzzer minimizes every input that finds new code, trying a number of
// shorter bodies that grows with the square of its length, and reports
// those executions only when it is done: a body of a few hundred bytes
// holds a worker for the default -fuzzminimizetime of a minute, showing
// "0/sec". Run it with -fuzzminimizetime=5s.
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
		// Nested junk and wrong types. The nesting is deep but short: the
		// fuzzer's minimizer costs the square of an input's length.
		`{"code": "x", "input_data": ` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`,
		`{"code": "x", "input_data": ` + strings.Repeat(`{"a":`, 16) + `1` + strings.Repeat("}", 16) + `}`,
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

	// Built once: per input the target only decodes and serves. The fake
	// keeps nothing, so it does not grow while fuzzing, and answers at once.
	reg := testRegistry(f)
	fs := &fakeService{
		execute: func(_ context.Context, sub jobs.Submission) (*jobs.Execution, error) {
			res := quickstartResult()
			started, finished := fakeNow.Add(time.Millisecond), fakeNow.Add(351*time.Millisecond)
			return &jobs.Execution{
				ID: "0195c3a8-0000-7000-8000-00000000f021", Code: sub.Code, InputJSON: sub.InputJSON, JobType: sub.JobType,
				Mode: sub.Mode, Status: res.Status, Result: res, StartedAt: &started, FinishedAt: &finished, Timeout: sub.Timeout,
			}, nil
		},
		submit: func(_ context.Context, sub jobs.Submission) (*jobs.Execution, bool, error) {
			return &jobs.Execution{ID: "0195c3a8-0000-7000-8000-00000000f022", Status: jobs.StatusQueued, JobType: sub.JobType}, true, nil
		},
	}
	s := New(Options{Registry: reg, Runner: &fakeRunner{}, Service: fs, Limits: Limits{MaxBodyBytes: 1 << 20, MaxCodeBytes: 4096, MaxInputBytes: 4096}})
	stopOnCleanup(f, s)
	handler := s.App().Handler()

	f.Fuzz(func(t *testing.T, body []byte) {
		// The decoder alone: an error or a request, never a panic.
		req, err := DecodeExecuteRequest(body, reg, Limits{})
		if err == nil && (req.JobType == "" || req.Timeout <= 0 || !json.Valid(req.InputJSON)) {
			t.Fatalf("accepted request without a job type or a timeout, or with bad input: %+v", req)
		}

		// The whole app, both ways in.
		for _, path := range []string{"/execute", "/execute/async"} {
			status, m := fuzzPost(t, handler, path, body)
			switch {
			case status >= http.StatusBadRequest:
				if d, ok := m["detail"].(string); !ok || d == "" || len(m) != 2 {
					t.Fatalf("%s: status %d without the error shape: %v", path, status, m)
				}
			case path == "/execute" && (status != http.StatusOK || m["success"] != true):
				t.Fatalf("%s: status %d: %v", path, status, m)
			case path == "/execute/async" && (status != http.StatusOK || m["status"] != "queued" || m["job_id"] == nil || len(m) != 2):
				t.Fatalf("%s: status %d: %v", path, status, m)
			}
		}
	})
}

// fuzzPost serves a POST of body to path through the app's handler, in
// this goroutine, and checks what holds for every answer: not a 5xx, UTF-8,
// a JSON object. It returns the status and the object.
//
// It calls the handler directly rather than through App.Test, which dumps
// the request, serves it on a new goroutine over an in-memory connection
// and parses the answer back: four times the cost of the handler itself.
func fuzzPost(t *testing.T, handler fasthttp.RequestHandler, path string, body []byte) (int, map[string]any) {
	t.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(fiber.MethodPost)
	req.SetRequestURI(path)
	req.Header.SetContentType(fiber.MIMEApplicationJSON)
	req.SetBody(body)
	var rc fasthttp.RequestCtx
	rc.Init(&req, nil, nil) // as fiber's adaptor does: a connection-less context
	handler(&rc)
	status, got := rc.Response.StatusCode(), rc.Response.Body()
	if status >= http.StatusInternalServerError {
		t.Fatalf("%s: status %d for body %q: %s", path, status, body, got)
	}
	if !utf8.Valid(got) {
		t.Fatalf("%s: response is not UTF-8: %q", path, got)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("%s: response is not a JSON object (%v): %s", path, err, got)
	}
	return status, m
}
