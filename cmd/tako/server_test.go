package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/tako-run/tako/internal/leaktest"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/runnertest"
)

// testServer is one `tako server` started through run with the repository's
// own tako.yaml, shared by the tests of this package.
type testServer struct {
	dbURL   string        // its database, when the test made one for it
	logs    *lockedWriter // what the server wrote to stderr
	url     string
	workDir string
}

var (
	serverOnce sync.Once
	server     *testServer
	serverErr  error
	stopServer = func() {}
)

// TestMain stops the shared server after the tests, then fails them when
// a goroutine outlives it.
func TestMain(m *testing.M) { leaktest.MainAfter(m, func() { stopServer() }) }

// startServer starts the shared server the first time it is called.
func startServer(t *testing.T) *testServer {
	t.Helper()
	runnertest.Docker(t)
	serverOnce.Do(func() { server, serverErr = launch() })
	if serverErr != nil {
		t.Fatalf("start server: %v", serverErr)
	}
	return server
}

func launch() (*testServer, error) {
	dbURL, dropDB, err := createDatabase()
	if err != nil {
		return nil, err
	}
	// serial runs one job at a time, so a second one stays queued.
	s, stop, err := launchServer(dbURL, []string{
		"TAKO_JOB_TYPES_SERIAL_CONCURRENCY=1", "TAKO_JOB_TYPES_SERIAL_LIMITS_TIMEOUT=120s",
		"TAKO_JOB_TYPES_SERIAL_POOL_MIN=0", "TAKO_JOB_TYPES_SERIAL_POOL_MAX=0",
		// Webhooks with the default policy: TestCallbackSSRF.
		"TAKO_WEBHOOKS_SECRET=whsec_dGFrby1zaGFyZWQtdGVzdC1zZWNyZXQ=",
	})
	if err != nil {
		dropDB()
		return nil, err
	}
	stopServer = func() {
		stop()
		dropDB()
	}
	return s, nil
}

// launchServer runs `tako server` through run on a free port with its own
// work directory, the repository's tako.yaml, database dbURL and the extra
// environment env. stop shuts it down (SIGTERM-like) and removes its work
// directory.
func launchServer(dbURL string, env []string) (*testServer, func(), error) {
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp("", "tako-server-test-")
	if err != nil {
		return nil, nil, err
	}
	environ := append(os.Environ(),
		"TAKO_DATABASE_URL="+dbURL,
		"TAKO_SERVER_PORT="+fmt.Sprint(port),
		"TAKO_RUNNER_WORK_DIR="+work,
		"TAKO_RUNNER_ACQUIRE_TIMEOUT=120s",
		"TAKO_LOG_LEVEL=warn",
		// The tests send everything from one address, faster than a
		// client would; TestRateLimit turns the limiter back on.
		"TAKO_SERVER_RATE_LIMIT_REQUESTS_PER_SECOND=0",
	)
	environ = append(environ, env...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &lockedWriter{w: &bytes.Buffer{}}
	go func() {
		done <- run(ctx, []string{"tako", "server", "--config", "../../tako.yaml"}, environ, io.Discard, logs)
	}()
	stop := func() {
		cancel()
		<-done
		os.RemoveAll(work)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The first start builds the images (minutes); later ones find them.
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			os.RemoveAll(work)
			return nil, nil, fmt.Errorf("server exited: %v\n%s", err, logs.String())
		default:
		}
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			return &testServer{logs: logs, url: url, workDir: work}, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return nil, nil, fmt.Errorf("server did not answer within 15 minutes")
}

// startOwnServer starts a `tako server` of the test's own on a fresh
// database, with the extra environment env (see launchServer). When the
// test ends, the server stops, then its database is dropped.
func startOwnServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	s, stop, err := launchServer(dbURL, env)
	if err != nil {
		t.Fatal(err)
	}
	s.dbURL = dbURL
	t.Cleanup(stop)
	return s
}

// startNode starts another node on first's database (first from
// startOwnServer), stopped when the test ends, before the database goes.
func startNode(t *testing.T, first *testServer, env ...string) *testServer {
	t.Helper()
	s, stop, err := launchServer(first.dbURL, env)
	if err != nil {
		t.Fatal(err)
	}
	s.dbURL = first.dbURL
	t.Cleanup(stop)
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// post sends body to path and decodes the JSON answer.
func (s *testServer) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(s.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(t, resp.Body)
}

func (s *testServer) get(t *testing.T, path string) (int, any) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return resp.StatusCode, v
}

func decode(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return m
}

// quickstartCode is the program of the quick start's Python example, as
// written there.
const quickstartCode = `
import json

# Read input from /input/data.json
with open("/input/data.json") as f:
    data = json.load(f)

# Process
result = {
    "sum": data["x"] + data["y"],
    "product": data["x"] * data["y"]
}

# Write output to /output/result.json
with open("/output/result.json", "w") as f:
    json.dump(result, f)

print("Done!")
`

func TestQuickstart(t *testing.T) {
	s := startServer(t)
	pythonExample, _ := json.Marshal(map[string]any{"code": quickstartCode, "input_data": map[string]any{"x": 10, "y": 20}})

	tests := []struct {
		name       string
		body       string
		wantStdout string
		wantOutput string
	}{
		{"curl", `{"code": "print(1 + 1)"}`, "2\n", "null"},
		{"python example", string(pythonExample), "Done!\n", `{"product":200,"sum":30}`},
		{"sync example", `{"code": "print('hello')"}`, "hello\n", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, res := s.post(t, "/execute", tt.body)
			if code != http.StatusOK {
				t.Fatalf("status %d: %v", code, res)
			}
			output, _ := json.Marshal(res["output"])
			if res["success"] != true || res["stdout"] != tt.wantStdout || res["stderr"] != "" ||
				res["exit_code"] != 0.0 || res["job_type"] != "default" || string(output) != tt.wantOutput ||
				res["status"] != "succeeded" || res["error"] != nil {
				t.Errorf("response %v", res)
			}
			if et, ok := res["execution_time"].(float64); !ok || et <= 0 {
				t.Errorf("execution_time %v", res["execution_time"])
			}
			if id, _ := res["execution_id"].(string); id == "" {
				t.Errorf("no execution_id")
			}
		})
	}
}

func TestDataJobType(t *testing.T) {
	s := startServer(t)
	code, res := s.post(t, "/execute", `{"code": "import numpy\nprint(numpy.arange(5).sum())", "job_type": "data"}`)
	if code != http.StatusOK || res["stdout"] != "10\n" || res["job_type"] != "data" {
		t.Fatalf("status %d: %v", code, res)
	}
	_, list := s.get(t, "/job-types")
	names := []string{}
	for _, jt := range list.([]any) {
		names = append(names, jt.(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != "data,default,serial" {
		t.Errorf("job types %v", names)
	}
	code, built := s.post(t, "/job-types/data/build", "")
	_, jt := s.get(t, "/job-types/data")
	if code != http.StatusOK || built["status"] != "built" || built["image"] != jt.(map[string]any)["image"] {
		t.Errorf("build: %d %v, job type %v", code, built, jt)
	}
}

func want(t *testing.T, res map[string]any, status string, success bool) {
	t.Helper()
	if res["status"] != status || res["success"] != success {
		t.Errorf("status %v success %v, want %s %v (error %v, stderr %.300q)", res["status"], res["success"], status, success, res["error"], res["stderr"])
	}
}

func timing(res map[string]any, key string) float64 {
	m, _ := res["timing"].(map[string]any)
	v, _ := m[key].(float64)
	return v
}

// waitNoContainers waits until the server s has no container left but the
// warm ones of its pools: every container that ran a job is removed (off
// the request path, so it may take a moment).
func waitNoContainers(t *testing.T, s *testServer) {
	t.Helper()
	var have, warm int
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		warm = 0
		_, list := s.get(t, "/job-types")
		for _, jt := range list.([]any) {
			pool := jt.(map[string]any)["pool"].(map[string]any)
			warm += int(pool["warm"].(float64))
		}
		have = len(containersOf(t, s.workDir, ""))
		// Equal twice in a row: a pool may be between starting and ready.
		if have == warm && len(containersOf(t, s.workDir, "")) == warm {
			return
		}
	}
	t.Errorf("%d containers left, but only %d warm ones in the pools", have, warm)
}

// waitContainers waits until the server in workDir has exactly n
// containers of jobType ("" for any).
func waitContainers(t *testing.T, workDir, jobType string, n int) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if left = containersOf(t, workDir, jobType); len(left) == n {
			return
		}
	}
	t.Errorf("containers of job type %q: %v, want %d", jobType, left, n)
}

// serverContainers lists the containers of the server in workDir: those
// whose instance lock lives there.
func serverContainers(t *testing.T, workDir string) []container.Summary {
	t.Helper()
	list, err := runnertest.Docker(t).ContainerList(context.Background(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", runner.LabelManaged+"=true")),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []container.Summary
	for _, c := range list {
		if strings.HasPrefix(c.Labels[runner.LabelLock], filepath.Join(workDir, "instances")) {
			out = append(out, c)
		}
	}
	return out
}

// containersOf lists the containers of the server in workDir that run
// jobType ("" for any).
func containersOf(t *testing.T, workDir, jobType string) []string {
	t.Helper()
	var out []string
	for _, c := range serverContainers(t, workDir) {
		if jobType == "" || c.Labels[runner.LabelJobType] == jobType {
			out = append(out, c.ID[:12]+" "+c.State)
		}
	}
	return out
}

// TestBusyServerStoresNothing: a sync request that the node cannot take
// (every slot busy for runner.acquire_timeout) gets 503 and leaves no
// record behind: admission comes before storage.
func TestBusyServerStoresNothing(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	s := startOwnServer(t, "TAKO_RUNNER_MAX_CONCURRENT=1", "TAKO_RUNNER_ACQUIRE_TIMEOUT=1s")
	busy := make(chan int, 1)
	go func() {
		code, _ := s.post(t, "/execute", `{"code": "import time; time.sleep(20)"}`)
		busy <- code
	}()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, page := s.get(t, "/executions?status=running")
		if len(page.(map[string]any)["items"].([]any)) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first job never ran")
		}
	}
	code, res := s.post(t, "/execute", `{"code": "print('turned away')"}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("second request on a busy node: %d %v", code, res)
	}
	_, page := s.get(t, "/executions")
	if items := page.(map[string]any)["items"].([]any); len(items) != 1 {
		t.Errorf("%d records after a 503, want only the running one: %v", len(items), items)
	}
	if code := <-busy; code != http.StatusOK {
		t.Errorf("first request: %d", code)
	}
}
