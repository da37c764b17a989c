package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
)

// fakeRunner is a Runner whose answers the test sets.
type fakeRunner struct {
	avail    map[string]runner.Availability // by job type name; absent means available
	health   runner.Health
	buildErr error
}

func (f *fakeRunner) Availability(jt jobtypes.JobType) runner.Availability {
	if av, ok := f.avail[jt.Name]; ok {
		return av
	}
	return runner.Availability{Available: true, Image: "tako-executor:" + jt.Name, ImageExists: true, Runtime: "runc", Pool: runner.PoolStats{Warm: 2, Busy: 1, Target: 3}, PythonVersion: "3.11"}
}

func (f *fakeRunner) Health(context.Context) runner.Health {
	return f.health
}

func (f *fakeRunner) Build(_ context.Context, jt jobtypes.JobType) (string, error) {
	if f.buildErr != nil {
		return "", f.buildErr
	}
	return "tako-jt-" + jt.Name + ":built", nil
}

// testRegistry has the seed's two job types: default (30 s) and data (60 s,
// numpy from Debian).
func testRegistry(t testing.TB) *jobtypes.Registry {
	t.Helper()
	reg, err := jobtypes.NewRegistry([]jobtypes.JobType{
		{
			Name:         "default",
			Network:      jobtypes.NetworkNone,
			SecurityMode: jobtypes.Permissive,
			Limits:       jobtypes.Limits{CPUs: 1, Memory: 512 << 20, Pids: 128, Timeout: 30 * time.Second, Tmp: 64 << 20},
			Pool:         jobtypes.Pool{Min: 2, Max: 8, IdleTTL: 5 * time.Minute},
		},
		{
			Name:           "data",
			Network:        jobtypes.NetworkNone,
			SecurityMode:   jobtypes.Permissive,
			SystemPackages: []string{"python3-numpy"},
			Preload:        []string{"numpy"},
			Limits:         jobtypes.Limits{CPUs: 2, Memory: 1 << 30, Pids: 128, Timeout: 60 * time.Second, Tmp: 64 << 20},
			Pool:           jobtypes.Pool{Min: 1, Max: 4, IdleTTL: time.Minute},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// quickstartResult is what a run returns for the quick start's Python
// example.
func quickstartResult() *jobs.Result {
	return &jobs.Result{
		ExitCode: 0,
		Output:   json.RawMessage(`{"sum": 30, "product": 200}`),
		Runtime:  "runc",
		Start:    jobs.StartWarm,
		Status:   jobs.StatusSucceeded,
		Stdout:   "Done!\n",
		Timing: jobs.Timing{
			Queue:   250 * time.Microsecond,
			Start:   time.Millisecond,
			Run:     11500 * time.Microsecond,
			Collect: 500 * time.Microsecond,
			Total:   350 * time.Millisecond,
		},
	}
}

// newTestServer builds a server on fs and fr; a nil fs is a fake service
// that runs the quick start, a nil fr a healthy runner.
func newTestServer(t testing.TB, fs *fakeService, fr *fakeRunner, lim Limits) *Server {
	t.Helper()
	if fs == nil {
		fs = &fakeService{result: quickstartResult()}
	}
	if fr == nil {
		fr = &fakeRunner{}
	}
	s := New(Options{Registry: testRegistry(t), Runner: fr, Service: fs, Limits: lim, Version: "test"})
	stopOnCleanup(t, s)
	return s
}

// response is what a test sees of an answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// object decodes the body as a JSON object.
func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func do(t testing.TB, s *Server, method, path, body string, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k) // e.g. no Content-Type at all
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := s.App().Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// doRaw serves one request on an in-memory connection straight through
// fasthttp, for requests that fasthttp rejects while reading them (App.Test
// returns the read error instead of the response). It does not route, so
// use it only for such requests.
func doRaw(t testing.TB, s *Server, method, path, body string, header map[string]string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	dump, err := httputil.DumpRequest(req, true)
	if err != nil {
		t.Fatal(err)
	}
	conn := &bufConn{}
	conn.r.Write(dump)
	_ = s.App().Server().ServeConn(conn) // the read error is the point
	resp, err := http.ReadResponse(bufio.NewReader(&conn.w), req)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// bufConn is a net.Conn over two buffers.
type bufConn struct {
	r, w bytes.Buffer
}

func (c *bufConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *bufConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *bufConn) Close() error                     { return nil }
func (c *bufConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *bufConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c *bufConn) SetDeadline(time.Time) error      { return nil }
func (c *bufConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bufConn) SetWriteDeadline(time.Time) error { return nil }

// checkErrorBody asserts the exact error shape and returns the detail.
func checkErrorBody(t testing.TB, r response) string {
	t.Helper()
	m := r.object(t)
	if len(m) != 2 {
		t.Errorf("error body has %d keys, want exactly detail and correlation_id: %s", len(m), r.body)
	}
	detail, ok := m["detail"].(string)
	if !ok {
		t.Errorf("detail is not a string: %s", r.body)
	}
	cid, ok := m["correlation_id"].(string)
	if !ok || cid == "" {
		t.Errorf("correlation_id missing: %s", r.body)
	}
	if got := r.header.Get("X-Correlation-ID"); got != cid {
		t.Errorf("X-Correlation-ID header %q, body %q", got, cid)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	return detail
}

func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	tests := []struct {
		method, path string
		status       int
		detail       string
	}{
		{"GET", "/nope", 404, "Not Found"},
		{"GET", "/jobs", 404, "Not Found"},
		{"GET", "/jobs/123/nope", 404, "Not Found"},
		{"DELETE", "/jobs/123", 405, "Method Not Allowed"},
		{"GET", "/jobs/123/cancel", 405, "Method Not Allowed"},
		{"GET", "/execute", 405, "Method Not Allowed"},
		{"DELETE", "/health", 405, "Method Not Allowed"},
		{"PUT", "/job-types", 405, "Method Not Allowed"},
		{"GET", "/EXECUTE", 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, tt.method, tt.path, "", nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if d := checkErrorBody(t, r); d != tt.detail {
				t.Errorf("detail %q, want %q", d, tt.detail)
			}
		})
	}
}

func TestSecurityAndCorrelationHeaders(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	long := strings.Repeat("a", 129)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		sent   string
		echoed bool
	}{
		{"echo on success", "POST", "/execute", `{"code":"print(1)"}`, "req-123.abc_DEF", true},
		{"echo on error", "POST", "/execute", `{}`, "my-id", true},
		{"echo 128 chars", "GET", "/health", "", strings.Repeat("b", 128), true},
		{"generate when absent", "GET", "/job-types", "", "", false},
		{"generate when too long", "GET", "/health", "", long, false},
		{"generate when bad chars", "GET", "/nope", "", "a b<script>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{}
			if tt.sent != "" {
				h["X-Correlation-ID"] = tt.sent
			}
			r := do(t, s, tt.method, tt.path, tt.body, h)
			got := r.header.Get("X-Correlation-ID")
			switch {
			case tt.echoed && got != tt.sent:
				t.Errorf("X-Correlation-ID %q, want echo %q", got, tt.sent)
			case !tt.echoed && (got == "" || got == tt.sent || !validToken(got)):
				t.Errorf("X-Correlation-ID %q, want a fresh id", got)
			}
			if r.status >= 400 {
				if cid := r.object(t)["correlation_id"]; cid != got {
					t.Errorf("body correlation_id %v, header %q", cid, got)
				}
			}
			if v := r.header.Get("X-Content-Type-Options"); v != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", v)
			}
			if v := r.header.Get("X-Frame-Options"); v != "DENY" {
				t.Errorf("X-Frame-Options %q", v)
			}
		})
	}
}

func TestServeAndShutdownCancelsExecutions(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	fs := &fakeService{execute: func(ctx context.Context, sub jobs.Submission) (*jobs.Execution, error) {
		close(started)
		<-ctx.Done() // only Shutdown can end this: fiber never cancels
		return nil, ctx.Err()
	}}
	s := newTestServer(t, fs, nil, Limits{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	type result struct {
		status int
		body   []byte
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/execute", "application/json", strings.NewReader(`{"code":"import time; time.sleep(99)"}`))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: b, err: err}
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("request: %v", r.err)
	}
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 after shutdown cancelled the execution: %s", r.status, r.body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func containsBytes(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestRequestLogging(t *testing.T) {
	t.Parallel()
	var buf testsync.Buffer
	fs := &fakeService{err: errors.New("create container: /var/lib/tako/slot-3: permission denied")}
	s := New(Options{Registry: testRegistry(t), Runner: &fakeRunner{}, Service: fs, Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	stopOnCleanup(t, s)

	do(t, s, "GET", "/job-types/default", "", map[string]string{"X-Correlation-ID": "log-1"})
	do(t, s, "POST", "/execute", `{"code": "print(1)"}`, map[string]string{"X-Correlation-ID": "log-2"})
	do(t, s, "GET", "/no/such/path", "", map[string]string{"X-Correlation-ID": "log-3"})

	type line struct {
		Level, Msg, Method, Route, Error, Component string
		Status                                      int
		CorrelationID                               string `json:"correlation_id"`
	}
	var lines []line
	for _, raw := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		lines = append(lines, l)
	}
	want := []line{
		{Level: "INFO", Msg: "http request", Method: "GET", Route: "/job-types/:name", Status: 200, CorrelationID: "log-1", Component: "api"},
		{Level: "ERROR", Msg: "request failed", Method: "POST", Error: "create container: /var/lib/tako/slot-3: permission denied", CorrelationID: "log-2", Component: "api"},
		{Level: "INFO", Msg: "http request", Method: "POST", Route: "/execute", Status: 500, CorrelationID: "log-2", Component: "api"},
		{Level: "INFO", Msg: "http request", Method: "GET", Route: "unmatched", Status: 404, CorrelationID: "log-3", Component: "api"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d\n got %+v\nwant %+v", i, lines[i], want[i])
		}
	}
}
