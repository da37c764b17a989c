package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExecuteRequest sends arbitrary bytes as the body of POST /execute. The
// properties: DecodeExecuteRequest never panics; the server never answers
// 500; every answer is valid JSON; every error has a string detail.
func FuzzExecuteRequest(f *testing.F) {
	seeds := []string{
		// The quick start's payloads.
		`{"code": "print(1 + 1)"}`,
		quickstartPython,
		strings.TrimSuffix(quickstartPython, "}") + `, "requirements": ["numpy"]}`,
		`{"code": "print('hello')"}`,
		`{"code": "import time; time.sleep(10); print('done')"}`,
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

	fr := &fakeRunner{result: quickstartResult()}
	s := New(Options{Registry: testRegistry(f), Runner: fr, Limits: Limits{MaxBodyBytes: 1 << 20, MaxCodeBytes: 4096, MaxInputBytes: 4096}})

	f.Fuzz(func(t *testing.T, body []byte) {
		// The decoder alone: an error or a request, never a panic.
		req, err := DecodeExecuteRequest(body, testRegistry(t), Limits{})
		if err == nil && (req.JobType.Name == "" || !json.Valid(req.InputJSON)) {
			t.Fatalf("accepted request without a job type or with bad input: %+v", req)
		}

		// The whole app.
		hr := httptest.NewRequest("POST", "/execute", bytes.NewReader(body))
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
			t.Fatalf("status %d for body %q: %s", resp.StatusCode, body, got)
		}
		if !utf8.Valid(got) {
			t.Fatalf("response is not UTF-8: %q", got)
		}
		var m map[string]any
		if err := json.Unmarshal(got, &m); err != nil {
			t.Fatalf("response is not a JSON object (%v): %s", err, got)
		}
		if resp.StatusCode >= http.StatusBadRequest {
			if d, ok := m["detail"].(string); !ok || d == "" || len(m) != 2 {
				t.Fatalf("status %d without the error shape: %s", resp.StatusCode, got)
			}
			return
		}
		if resp.StatusCode != http.StatusOK || m["success"] != true {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
	})
}
