package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/runner/runnertest"
)

// ciKey is the API key of the test servers that have one; its name, from
// TAKO_AUTH_API_KEYS_CI, is "CI".
const ciKey = "ci-test-key-0123456789abcdef"

// request sends one request with the given headers and decodes the JSON
// answer (nil when it is not JSON).
func (s *testServer) request(t *testing.T, method, path, body string, header map[string]string) (*http.Response, any) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var v any
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		v = buf.String()
	}
	return resp, v
}

// TestAPIKeysAndStrictMode runs a server with an API key and a strict job
// type: requests without the key get 401, executions record the key's
// name, and the strict job type, on a server that finds no gVisor, is
// unavailable everywhere a user would look and has no pool.
func TestAPIKeysAndStrictMode(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	s := startOwnServer(t,
		"TAKO_AUTH_API_KEYS_CI="+ciKey,
		"TAKO_JOB_TYPES_LOCKED_SECURITY_MODE=strict",
		"TAKO_JOB_TYPES_LOCKED_POOL_MIN=1", "TAKO_JOB_TYPES_LOCKED_POOL_MAX=2",
		"TAKO_RUNNER_GVISOR_RUNTIME=tako-test-no-such-runtime",
		// Slow refill, so the last subtest can run out.
		"TAKO_SERVER_RATE_LIMIT_REQUESTS_PER_SECOND=0.2", "TAKO_SERVER_RATE_LIMIT_BURST=40",
	)
	key := map[string]string{"X-API-Key": ciKey}

	t.Run("unauthenticated", func(t *testing.T) {
		for _, path := range []string{"/execute", "/execute/async"} {
			resp, body := s.request(t, "POST", path, `{"code": "print(1)"}`, nil)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("POST %s without a key: %d %v", path, resp.StatusCode, body)
			}
		}
		resp, _ := s.request(t, "POST", "/execute", `{"code": "print(1)"}`, map[string]string{"Authorization": "Bearer wrong-key-0123456789abcdef"})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong key: %d", resp.StatusCode)
		}
		if resp, _ := s.request(t, "GET", "/metrics", "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("/metrics without a key (metrics.require_auth defaults to true): %d", resp.StatusCode)
		}
		if resp, _ := s.request(t, "GET", "/health", "", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("/health is exempt: %d", resp.StatusCode)
		}
	})

	t.Run("authenticated", func(t *testing.T) {
		resp, body := s.request(t, "POST", "/execute", `{"code": "print(6 * 7)"}`, key)
		res, _ := body.(map[string]any)
		if resp.StatusCode != http.StatusOK || res["stdout"] != "42\n" {
			t.Fatalf("with the key: %d %v", resp.StatusCode, body)
		}
		id := res["execution_id"].(string)
		_, rec := s.request(t, "GET", "/executions/"+id, "", key)
		if got := rec.(map[string]any)["api_key"]; got != "CI" {
			t.Errorf("record api_key %v, want CI", got)
		}
		if got := rec.(map[string]any)["runtime"]; got != "runc" && got != "runsc" {
			t.Errorf("record runtime %v", got)
		}
		_, page := s.request(t, "GET", "/executions?api_key=CI", "", key)
		if items := page.(map[string]any)["items"].([]any); len(items) != 1 {
			t.Errorf("history for key CI: %d items", len(items))
		}
		_, page = s.request(t, "GET", "/executions?api_key=other", "", key)
		if items := page.(map[string]any)["items"].([]any); len(items) != 0 {
			t.Errorf("history for another key: %d items", len(items))
		}
	})

	t.Run("strict without gVisor", func(t *testing.T) {
		_, health := s.request(t, "GET", "/health", "", nil)
		locked := health.(map[string]any)["job_types"].(map[string]any)["locked"].(map[string]any)
		reason, _ := locked["unavailable_reason"].(string)
		if locked["available"] != false || !strings.Contains(reason, "gVisor") {
			t.Errorf("/health for locked: %v", locked)
		}
		_, jt := s.request(t, "GET", "/job-types/locked", "", key)
		if r, _ := jt.(map[string]any)["unavailable_reason"].(string); !strings.Contains(r, "gVisor") {
			t.Errorf("/job-types/locked: %v", jt)
		}
		resp, body := s.request(t, "POST", "/execute", `{"job_type": "locked", "code": "print(1)"}`, key)
		detail, _ := body.(map[string]any)["detail"].(string)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(detail, "gVisor") {
			t.Errorf("a request for locked: %d %v", resp.StatusCode, body)
		}
		if left := containersOf(t, s.workDir, "locked"); len(left) != 0 {
			t.Errorf("locked has containers: %v", left)
		}
	})

	t.Run("bench with a key", func(t *testing.T) {
		var out bytes.Buffer
		args := []string{"tako", "bench", "--url", s.url, "--api-key", ciKey, "--requests", "3", "--json"}
		if err := run(context.Background(), args, os.Environ(), &out, io.Discard); err != nil {
			t.Fatalf("bench: %v\n%s", err, out.String())
		}
		var rep struct {
			Tako struct {
				Requests, Errors int
			} `json:"tako"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Tako.Requests != 3 || rep.Tako.Errors != 0 {
			t.Errorf("bench report: %v\n%s", err, out.String())
		}
	})

	t.Run("rate limit", func(t *testing.T) { rateLimited(t, s, key) })
}

// rateLimited is the last subtest of TestAPIKeysAndStrictMode: guessing
// keys from one address runs into 429, while the holder of a valid key,
// metered on its own, goes on.
func rateLimited(t *testing.T, s *testServer, key map[string]string) {
	var limited *http.Response
	for i := range 60 {
		resp, _ := s.request(t, "GET", "/executions", "", map[string]string{"X-API-Key": fmt.Sprintf("guess-%020d", i)})
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp
			break
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
	}
	if limited == nil {
		t.Fatal("60 guesses in a row were never rate limited")
	}
	if limited.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if resp, _ := s.request(t, "GET", "/executions", "", key); resp.StatusCode != http.StatusOK {
		t.Errorf("the key holder after the guesses: %d", resp.StatusCode)
	}
}

// TestBindGuard: a server on a non-loopback address without API keys
// refuses to start, and starts with a loud warning when told to.
func TestBindGuard(t *testing.T) {
	runnertest.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	err := run(ctx, []string{"tako", "server", "--config", "../../tako.yaml", "--host", "0.0.0.0", "--port", "0"},
		append(os.Environ(), "TAKO_DATABASE_URL=postgres://nobody@127.0.0.1:1/none"), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "refusing to serve on 0.0.0.0 without API keys") {
		t.Fatalf("open network bind: %v", err)
	}

	s := startOwnServer(t,
		"TAKO_SERVER_HOST=0.0.0.0", "TAKO_SERVER_ALLOW_UNAUTHENTICATED_NETWORK_ACCESS=true",
	)
	if !strings.Contains(s.logs.String(), "WARNING: the API is open: serving on 0.0.0.0 without API keys") {
		t.Errorf("no start-up warning in:\n%s", s.logs.String())
	}
	_, health := s.get(t, "/health")
	h := health.(map[string]any)
	problems, _ := h["problems"].([]any)
	found := false
	for _, p := range problems {
		if strings.Contains(p.(string), "the API is open") {
			found = true
		}
	}
	if !found || h["status"] != "degraded" {
		t.Errorf("/health does not warn: %v", h)
	}
}

// TestDoctor runs `tako doctor` against a working set-up and a broken one.
func TestDoctor(t *testing.T) {
	startServer(t) // the images exist
	dbURL, dropDB, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	defer dropDB()
	doctor := func(env ...string) (string, error) {
		var out bytes.Buffer
		environ := append(os.Environ(), "TAKO_RUNNER_WORK_DIR="+t.TempDir())
		err := run(context.Background(), []string{"tako", "doctor", "--config", "../../tako.yaml"}, append(environ, env...), &out, io.Discard)
		return out.String(), err
	}

	gvisor := runnertest.GVisorRuntime(t, runnertest.Docker(t))
	out, err := doctor("TAKO_DATABASE_URL="+dbURL, "TAKO_RUNNER_GVISOR_RUNTIME="+gvisor)
	if err != nil {
		t.Fatalf("doctor on a working set-up: %v\n%s", err, out)
	}
	for _, want := range []string{"ok   config", "ok   docker", "ok   runtimes  gVisor runtime " + gvisor + " passed its probe", "ok   runtimes  job type default runs under runsc", "ok   images    job type default", "ok   images    job type data", "ok   database  PostgreSQL", "ok   work dir", "0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}

	// A gVisor runtime registered without --host-fifo=open (make gvisor
	// registers this one for the tests).
	out, err = doctor("TAKO_DATABASE_URL=postgres://tako:secret-password@127.0.0.1:1/none",
		"TAKO_JOB_TYPES_LOCKED_SECURITY_MODE=strict", "TAKO_RUNNER_GVISOR_RUNTIME=tako-test-runsc-nofifo")
	if err == nil {
		t.Fatalf("doctor on a broken set-up passed:\n%s", out)
	}
	wants := []string{
		"FAIL database",
		"FAIL runtimes  gVisor runtime tako-test-runsc-nofifo is registered but unusable: the Docker runtime \"tako-test-runsc-nofifo\" lacks the argument --host-fifo=open",
		`merge {"runtimes":{"tako-test-runsc-nofifo":{"path":"` + runsc(t) + `","runtimeArgs":["--host-fifo=open"]}}} into /etc/docker/daemon.json`,
		"FAIL runtimes  job type locked is strict and cannot run",
		"warn runtimes  job type default runs under runc",
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-password") {
		t.Errorf("doctor printed the database password:\n%s", out)
	}
}

// runsc returns the path of the runsc binary the engine's gVisor runtime
// runs, as the engine reports it.
func runsc(t *testing.T) string {
	t.Helper()
	dc := runnertest.Docker(t)
	info, err := dc.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Runtimes[runnertest.GVisorRuntime(t, dc)].Path
}
