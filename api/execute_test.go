package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
)

// quickstartPython is the body the quick start's Python example sends,
// without its "requirements" line.
const quickstartPython = `{"code": "import json\nwith open(\"/input/data.json\") as f:\n    data = json.load(f)\nresult = {\"sum\": data[\"x\"] + data[\"y\"], \"product\": data[\"x\"] * data[\"y\"]}\nwith open(\"/output/result.json\", \"w\") as f:\n    json.dump(result, f)\nprint(\"Done!\")\n", "input_data": {"x": 10, "y": 20}}`

func TestExecuteValidation(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxBodyBytes: 4096, MaxCodeBytes: 100, MaxInputBytes: 40, MaxTimeout: 45 * time.Second}
	s := newTestServer(t, nil, nil, lim)
	long := strings.Repeat("x", 101)
	reqs51 := `[` + strings.TrimSuffix(strings.Repeat(`"a",`, 51), ",") + `]`
	tests := []struct {
		name   string
		body   string
		status int
		detail string // a substring of the detail
	}{
		{"empty body", "", 400, "request body is empty"},
		{"blank body", "  \n ", 400, "request body is empty"},
		{"syntax error", `{"code": "x",}`, 400, "malformed JSON"},
		{"truncated", `{"code": "x"`, 400, "malformed JSON"},
		{"trailing data", `{"code": "x"} {}`, 400, "malformed JSON"},
		{"trailing garbage", `{"code": "x"} x`, 400, "malformed JSON"},
		{"not JSON", `code=print(1)`, 400, "malformed JSON"},
		{"broken array", `[1,`, 400, "malformed JSON"},
		{"invalid UTF-8", "{\"code\": \"print('\xff')\"}", 400, "not valid UTF-8"},
		{"syntax beats unknown field", `{"nope": 1, "code": }`, 400, "malformed JSON"},
		{"array body", `[1, 2]`, 422, "body: must be a JSON object"},
		{"string body", `"print(1)"`, 422, "body: must be a JSON object"},
		{"null body", `null`, 422, "body: must be a JSON object"},
		{"code missing", `{}`, 422, "code: field required"},
		{"code null", `{"code": null}`, 422, "code: field required"},
		{"code number", `{"code": 5}`, 422, "code: must be a string"},
		{"code blank", `{"code": "  \n\t"}`, 422, "code: must not be blank"},
		{"code too long", `{"code": "` + long + `"}`, 422, "code: must be at most 100 bytes"},
		{"unknown field", `{"code": "x", "nope": 1}`, 422, "nope: unknown field"},
		{"field names are case-sensitive", `{"Code": "x"}`, 422, "Code: unknown field"},
		{"odd unknown field quoted", `{"code": "x", "a b": 1}`, 422, `"a b": unknown field`},
		{"input_data array", `{"code": "x", "input_data": [1]}`, 422, "input_data: must be a JSON object"},
		{"input_data string", `{"code": "x", "input_data": "{}"}`, 422, "input_data: must be a JSON object"},
		{"input_data number", `{"code": "x", "input_data": 3}`, 422, "input_data: must be a JSON object"},
		{"input_data too big", `{"code": "x", "input_data": {"k": "` + strings.Repeat("v", 40) + `"}}`, 422, "input_data: must be at most 40 bytes"},
		{"job_type unknown", `{"code": "x", "job_type": "gpu"}`, 422, `job_type: unknown job_type "gpu"; known job types: data, default`},
		{"job_type empty", `{"code": "x", "job_type": ""}`, 422, "job_type: unknown job_type"},
		{"job_type number", `{"code": "x", "job_type": 1}`, 422, "job_type: must be a string"},
		{"job_type too long", `{"code": "x", "job_type": "` + strings.Repeat("j", 129) + `"}`, 422, "job_type: must be at most 128 characters"},
		{"timeout string", `{"code": "x", "timeout": "x"}`, 422, "timeout: must be an integer"},
		{"timeout numeric string", `{"code": "x", "timeout": "5"}`, 422, "timeout: must be an integer"},
		{"timeout fraction", `{"code": "x", "timeout": 1.5}`, 422, "timeout: must be an integer"},
		{"timeout bool", `{"code": "x", "timeout": true}`, 422, "timeout: must be an integer"},
		{"timeout zero", `{"code": "x", "timeout": 0}`, 422, "timeout: must be at least 1 seconds"},
		{"timeout negative", `{"code": "x", "timeout": -3}`, 422, "timeout: must be at least 1"},
		{"timeout over max", `{"code": "x", "timeout": 46, "job_type": "data"}`, 422, "timeout: must be at most 45 seconds (the server's max_timeout)"},
		{"timeout huge", `{"code": "x", "timeout": 1e400}`, 422, "timeout: must be at most 45 seconds"},
		{"timeout huge int", `{"code": "x", "timeout": 123456789012345678901234567890}`, 422, "timeout: must be at most 45"},
		{"timeout hugely negative", `{"code": "x", "timeout": -1e400}`, 422, "timeout: must be at least 1"},
		{"timeout over job type", `{"code": "x", "timeout": 31}`, 422, `timeout: must be at most 30 seconds, the limit of job type "default"`},
		{"startup_timeout low", `{"code": "x", "startup_timeout": 9}`, 422, "startup_timeout: must be at least 10 seconds"},
		{"startup_timeout high", `{"code": "x", "startup_timeout": 601}`, 422, "startup_timeout: must be at most 600 seconds"},
		{"startup_timeout string", `{"code": "x", "startup_timeout": "60"}`, 422, "startup_timeout: must be an integer"},
		{"requirements string", `{"code": "x", "requirements": "numpy"}`, 422, "requirements: must be a list of strings"},
		{"requirements numbers", `{"code": "x", "requirements": [1]}`, 422, "requirements: must be a list of strings"},
		{"requirements too many", `{"code": "x", "requirements": ` + reqs51 + `}`, 422, "requirements: must have at most 50 items"},
		{"requirements url", `{"code": "x", "requirements": ["numpy", "https://evil.example/x.whl"]}`, 422, `requirements[1]: "https://evil.example/x.whl"`},
		{"requirements option", `{"code": "x", "requirements": ["--index-url=http://x"]}`, 422, `requirements[0]: "--index-url=http://x"`},
		{"requirements shell", `{"code": "x", "requirements": ["numpy; rm -rf /"]}`, 422, `requirements[0]:`},
		{"requirements empty entry", `{"code": "x", "requirements": [""]}`, 422, `requirements[0]:`},
		{"requirements path", `{"code": "x", "requirements": ["./pkg"]}`, 422, `requirements[0]: "./pkg"`},
		{"idempotency_key short", `{"code": "x", "idempotency_key": "abc"}`, 422, "idempotency_key: must be 8 to 255 characters"},
		{"idempotency_key long", `{"code": "x", "idempotency_key": "` + strings.Repeat("k", 256) + `"}`, 422, "idempotency_key: must be 8 to 255"},
		{"idempotency_key chars", `{"code": "x", "idempotency_key": "abc def ghi"}`, 422, "idempotency_key: may contain only"},
		{"idempotency_key number", `{"code": "x", "idempotency_key": 12345678}`, 422, "idempotency_key: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "POST", "/execute", tt.body, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if d := checkErrorBody(t, r); !strings.Contains(d, tt.detail) {
				t.Errorf("detail %q does not contain %q", d, tt.detail)
			}
		})
	}
}

func TestExecuteAcceptedRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		body           string
		jobType        string
		input          string
		timeout        time.Duration
		startupTimeout time.Duration
	}{
		{"quickstart curl", `{"code": "print(1 + 1)"}`, "default", `{}`, 30 * time.Second, 0},
		{"quickstart python", quickstartPython, "default", `{"x":10,"y":20}`, 30 * time.Second, 0},
		{"nulls mean defaults", `{"code": "x", "input_data": null, "job_type": null, "timeout": null, "startup_timeout": null, "requirements": null, "idempotency_key": null}`, "default", `{}`, 30 * time.Second, 0},
		{"job type's timeout", `{"code": "x", "job_type": "data"}`, "data", `{}`, 60 * time.Second, 0},
		{"every field", `{"code": "x", "input_data": {"a": [1, 2.5e3, "é"]}, "job_type": "data", "timeout": 60, "startup_timeout": 120, "requirements": [], "idempotency_key": "key_12345-abc"}`, "data", `{"a":[1,2.5e3,"é"]}`, 60 * time.Second, 120 * time.Second},
		{"integral float timeout", `{"code": "x", "timeout": 5.0}`, "default", `{}`, 5 * time.Second, 0},
		{"duplicate key, last wins", `{"code": "a", "code": "b", "timeout": 2, "timeout": 3}`, "default", `{}`, 3 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &fakeService{result: quickstartResult()}
			s := newTestServer(t, fs, nil, Limits{})
			r := do(t, s, "POST", "/execute", tt.body, map[string]string{"X-Correlation-ID": "cid-accepted"})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			sub, calls := fs.last()
			if calls != 1 || fs.count("Execute") != 1 {
				t.Fatalf("service called %d times, Execute %d", calls, fs.count("Execute"))
			}
			if sub.JobType != tt.jobType || string(sub.InputJSON) != tt.input ||
				sub.Timeout != tt.timeout || sub.StartupTimeout != tt.startupTimeout {
				t.Errorf("service got job_type %q input %s timeout %v startup %v; want %q %s %v %v",
					sub.JobType, sub.InputJSON, sub.Timeout, sub.StartupTimeout,
					tt.jobType, tt.input, tt.timeout, tt.startupTimeout)
			}
			if sub.Mode != jobs.ModeSync || sub.CorrelationID != "cid-accepted" {
				t.Errorf("mode %q correlation id %q", sub.Mode, sub.CorrelationID)
			}
			m := r.object(t)
			if id, _ := m["execution_id"].(string); id == "" || m["job_id"] != id {
				t.Errorf("execution_id %v job_id %v", m["execution_id"], m["job_id"])
			}
		})
	}
}

func TestExecuteResponseFields(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	r := do(t, s, "POST", "/execute", quickstartPython, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	got := r.object(t)
	id := "0195c3a8-0000-7000-8000-000000000001" // the fake's first id
	want := map[string]any{
		"success":             true,
		"output":              map[string]any{"sum": 30.0, "product": 200.0},
		"stdout":              "Done!\n",
		"stderr":              "",
		"exit_code":           0.0,
		"execution_time":      0.35,
		"job_type":            "default",
		"execution_id":        id,
		"job_id":              id,
		"status":              "succeeded",
		"error":               nil,
		"runtime":             "runc",
		"start":               "warm",
		"stdout_truncated":    false,
		"stderr_truncated":    false,
		"artifacts_truncated": false,
		"artifacts":           []any{},
		"timing": map[string]any{
			"queue_ms": 0.25, "start_ms": 1.0, "run_ms": 11.5, "collect_ms": 0.5, "total_ms": 350.0,
			"startup_ms": 1.0, "execution_ms": 11.5, "dep_install_ms": nil, "phase_at_exit": nil,
		},
	}
	for k, w := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("field %q missing", k)
			continue
		}
		if !reflect.DeepEqual(v, w) {
			t.Errorf("%s = %#v, want %#v", k, v, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("response has %d fields, want %d: %s", len(got), len(want), r.body)
	}
}

func TestExecuteFailedProgram(t *testing.T) {
	t.Parallel()
	invalid := "ok \xff\xfe bytes\n"
	tests := []struct {
		name   string
		result *jobs.Result
		check  func(t *testing.T, m map[string]any)
	}{
		{
			name: "python error is a 200 with success false",
			result: &jobs.Result{
				Status: jobs.StatusFailed, ExitCode: 1, Start: jobs.StartCold, Runtime: "runc",
				Stderr: "ZeroDivisionError: division by zero\n",
				Error:  &jobs.ExecError{Type: "division_error", Message: "ZeroDivisionError: division by zero"},
			},
			check: func(t *testing.T, m map[string]any) {
				if m["success"] != false || m["status"] != "failed" || m["exit_code"] != 1.0 || m["output"] != nil {
					t.Errorf("got %v", m)
				}
				e, _ := m["error"].(map[string]any)
				if e["type"] != "division_error" || e["message"] != "ZeroDivisionError: division by zero" {
					t.Errorf("error = %v", m["error"])
				}
			},
		},
		{
			name:   "invalid UTF-8 output is replaced, not fatal",
			result: &jobs.Result{Status: jobs.StatusSucceeded, Stdout: invalid, Stderr: invalid, StdoutTruncated: true},
			check: func(t *testing.T, m map[string]any) {
				if s, _ := m["stdout"].(string); !strings.Contains(s, "\uFFFD") || !strings.HasPrefix(s, "ok ") {
					t.Errorf("stdout %q", m["stdout"])
				}
				if m["stdout_truncated"] != true {
					t.Errorf("stdout_truncated %v", m["stdout_truncated"])
				}
			},
		},
		{
			name:   "invalid output JSON becomes null",
			result: &jobs.Result{Status: jobs.StatusSucceeded, Output: json.RawMessage(`{"a":`)},
			check: func(t *testing.T, m map[string]any) {
				if v, ok := m["output"]; !ok || v != nil {
					t.Errorf("output %v", v)
				}
			},
		},
		{
			name: "artifacts are listed",
			result: &jobs.Result{Status: jobs.StatusSucceeded, Artifacts: []jobs.Artifact{
				{Name: "report.txt", SizeBytes: 12, SHA256: strings.Repeat("ab", 32)},
			}},
			check: func(t *testing.T, m map[string]any) {
				want := []any{map[string]any{"name": "report.txt", "size_bytes": 12.0, "sha256": strings.Repeat("ab", 32), "content_type": "text/plain; charset=utf-8"}}
				if !reflect.DeepEqual(m["artifacts"], want) {
					t.Errorf("artifacts %#v", m["artifacts"])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, &fakeService{result: tt.result}, nil, Limits{})
			r := do(t, s, "POST", "/execute", `{"code": "1/0"}`, nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			tt.check(t, r.object(t))
		})
	}
}

func TestExecuteServiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		panics     bool
		status     int
		detail     string
		retryAfter string
	}{
		{"unavailable with retry", &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "all 4 execution slots are busy", RetryAfter: 5}, false, 503, "all 4 execution slots are busy", "5"},
		{"unavailable default retry", fmt.Errorf("acquire: %w", jobs.Errorf(jobs.EUNAVAILABLE, "job type default is unavailable")), false, 503, "job type default is unavailable", "1"},
		{"internal hides text", jobs.Errorf(jobs.EINTERNAL, "create container: /var/lib/secret path"), false, 500, internalDetail, ""},
		{"plain error hides text", errors.New("dial unix /var/run/docker.sock: refused"), false, 500, internalDetail, ""},
		{"unknown code hides text", &jobs.Error{Code: "weird", Message: "secret"}, false, 500, internalDetail, ""},
		{"not allowed", jobs.Errorf(jobs.ENOTALLOWED, "network job types are disabled"), false, 403, "network job types are disabled", ""},
		{"invalid from service", jobs.FieldErrorf("timeout", "too long for a warm container"), false, 422, "timeout: too long for a warm container", ""},
		{"database down", &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "database is unavailable; retry later", RetryAfter: 2}, false, 503, "database is unavailable; retry later", "2"},
		{"panic is a 500", nil, true, 500, internalDetail, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &fakeService{err: tt.err}
			if tt.panics {
				fs.execute = func(context.Context, jobs.Submission) (*jobs.Execution, error) { panic("boom /secret") }
			}
			s := newTestServer(t, fs, nil, Limits{})
			r := do(t, s, "POST", "/execute", `{"code": "print(1)"}`, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if d := checkErrorBody(t, r); d != tt.detail {
				t.Errorf("detail %q, want %q", d, tt.detail)
			}
			if got := r.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if bytes.Contains(r.body, []byte("secret")) || bytes.Contains(r.body, []byte("docker.sock")) {
				t.Errorf("internal text leaked: %s", r.body)
			}
		})
	}
}

func TestExecuteBodyLimits(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{MaxBodyBytes: 64})
	// sized returns a valid request body of exactly n bytes.
	sized := func(n int) string {
		const head, tail = `{"code": "print(1)", "input_data": {"k": "`, `"}}`
		return head + strings.Repeat("v", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name   string
		body   string
		header map[string]string
		status int
		detail string
	}{
		{"at the limit", sized(64), nil, 200, ""},
		{"over the limit", sized(65), map[string]string{"X-Correlation-ID": "big-1"}, 413, "Payload too large. Maximum allowed size is 64 bytes (server.max_body_bytes)."},
		{"far over the limit", `{"code": "` + strings.Repeat("x", 1<<20) + `"}`, nil, 413, "Payload too large"},
		{"compressed bodies are refused", `{"code": "print(1)"}`, map[string]string{"Content-Encoding": "gzip"}, 400, `Content-Encoding "gzip" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r response
			if tt.status == http.StatusRequestEntityTooLarge {
				r = doRaw(t, s, "POST", "/execute", tt.body, tt.header)
			} else {
				r = do(t, s, "POST", "/execute", tt.body, tt.header)
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %d bytes): %s", r.status, tt.status, len(tt.body), r.body)
			}
			if tt.status == 200 {
				return
			}
			if d := checkErrorBody(t, r); !strings.Contains(d, tt.detail) {
				t.Errorf("detail %q does not contain %q", d, tt.detail)
			}
			if cid := tt.header["X-Correlation-ID"]; cid != "" && r.header.Get("X-Correlation-ID") != cid {
				t.Errorf("correlation id not echoed on 413: %q", r.header.Get("X-Correlation-ID"))
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing on %d", r.status)
			}
		})
	}
}

func TestDecodeExecuteRequestDefaults(t *testing.T) {
	t.Parallel()
	req, err := DecodeExecuteRequest([]byte(` {"code":"print(1 + 1)"} `), testRegistry(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if req.Code != "print(1 + 1)" || string(req.InputJSON) != "{}" || req.JobType != "default" ||
		req.Timeout != 30*time.Second || req.StartupTimeout != 0 || req.IdempotencyKey != "" || req.Mode != "" {
		t.Errorf("got %+v", req)
	}
	_, err = DecodeExecuteRequest([]byte(`{"code": 1}`), testRegistry(t), Limits{})
	var derr *jobs.Error
	if !errors.As(err, &derr) || derr.Code != jobs.EINVALID || derr.Field != "code" {
		t.Errorf("got %#v, want EINVALID on code", err)
	}
}

func TestExecuteRequirements(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	sub, err := DecodeExecuteRequest([]byte(`{"code": "x", "requirements": ["takotiny", "pandas[excel]>=2,<3; python_version >= '3.9'"]}`), reg, DefaultLimits())
	if err != nil || len(sub.Requirements) != 2 || sub.Requirements[0] != "takotiny" {
		t.Fatalf("valid requirements: %v %v", sub.Requirements, err)
	}
	s := newTestServer(t, &fakeService{}, nil, Limits{AdHocDisabled: true})
	r := do(t, s, "POST", "/execute", `{"code": "x", "requirements": ["numpy"]}`, nil)
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "requirements: ad-hoc requirements are disabled") {
		t.Errorf("disabled: %d %s", r.status, r.body)
	}
}

// TestExecuteNetwork: "network" takes {"allow": [strings]} and nothing
// else, and every other shape is a 422 naming the field; whether the
// entries fit the job type is the dispatcher's check.
func TestExecuteNetwork(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	sub, err := DecodeExecuteRequest([]byte(`{"code": "x", "network": {"allow": ["api.example.com", "*.s3.example.com:443"]}}`), reg, DefaultLimits())
	if err != nil || len(sub.NetworkAllow) != 2 || sub.NetworkAllow[1] != "*.s3.example.com:443" {
		t.Fatalf("a valid network: %v %v", sub.NetworkAllow, err)
	}
	if sub, err := DecodeExecuteRequest([]byte(`{"code": "x", "network": null}`), reg, DefaultLimits()); err != nil || sub.NetworkAllow != nil {
		t.Errorf("network null: %v %v, want the job type's list", sub.NetworkAllow, err)
	}
	for _, tt := range []struct{ body, field string }{
		{`{"code": "x", "network": "bridge"}`, "network"},
		{`{"code": "x", "network": ["a.example"]}`, "network"},
		{`{"code": "x", "network": {}}`, "network.allow"},
		{`{"code": "x", "network": {"allow": "a.example"}}`, "network.allow"},
		{`{"code": "x", "network": {"allow": [1]}}`, "network.allow"},
		{`{"code": "x", "network": {"allow": [], "deny": ["b.example"]}}`, "network.deny"},
		{`{"code": "x", "network": {"allow": ["` + strings.Repeat("a", 301) + `"]}}`, "network.allow[0]"},
	} {
		_, err := DecodeExecuteRequest([]byte(tt.body), reg, DefaultLimits())
		var derr *jobs.Error
		if !errors.As(err, &derr) || derr.Code != jobs.EINVALID || derr.Field != tt.field {
			t.Errorf("%.80s: %v, want EINVALID naming %s", tt.body, err, tt.field)
		}
	}
}
