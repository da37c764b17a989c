package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/runner/runnertest"
)

// Bodies as a tako server sends them.
const (
	healthyBody = `{"status": "healthy", "version": "1.2.3", "checked_at": "2026-01-01T00:00:00Z",
		"docker_available": true, "gvisor_available": false, "gvisor_reason": "runtime runsc is not installed",
		"database_available": true, "runner": {"running": 1, "max_concurrent": 4},
		"queue_stats": {"pending": 3, "running": 1, "max_workers": 4, "max_queue_size": 1000},
		"job_types": {"default": {"available": true}, "data": {"available": true}},
		"checks": {"database": {"status": "ok"}, "docker": {"status": "ok"}, "gvisor": {"status": "missing"}},
		"problems": []}`
	degradedBody = `{"status": "degraded", "version": "1.2.3", "docker_available": true, "gvisor_available": false,
		"gvisor_reason": "runtime runsc is not installed", "database_available": false,
		"queue_stats": {"pending": 0, "running": 0, "max_workers": 4, "max_queue_size": 1000},
		"job_types": {"default": {"available": true}, "strict": {"available": false, "unavailable_reason": "needs gVisor"}},
		"problems": ["database is not reachable", "job type strict is unavailable: needs gVisor"]}`
	poolBody = `{"pending": 3, "running": 1, "max_workers": 4, "max_queue_size": 1000,
		"job_types": {"default": {"warm": 2, "busy": 1, "target": 3}, "data": {"warm": 0, "busy": 0, "target": 0}}}`
	deadBody = `{"total": 3, "by_error_type": {"timeout": 1, "internal_error": 2}}`
)

// route is one canned answer of a fake tako.
type route struct {
	code int
	body string
}

// fakeTako serves routes, and answers 401 when key is set and a request
// does not carry it in header (except /health, which is open, as in tako).
func fakeTako(t *testing.T, header, key string, routes map[string]route) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if key != "" && r.URL.Path != "/health" {
			switch r.Header.Get(header) {
			case "":
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, `{"detail": "an API key is required: send it in the %s header", "correlation_id": "c1"}`, header)
				return
			case key:
			default:
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"detail": "the API key is not valid", "correlation_id": "c2"}`)
				return
			}
		}
		rt, ok := routes[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"detail": "Not Found", "correlation_id": "c3"}`)
			return
		}
		w.WriteHeader(rt.code)
		fmt.Fprint(w, rt.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tako routes: a healthy server's, with overrides.
func takoRoutes(overrides map[string]route) map[string]route {
	routes := map[string]route{
		"/health":     {http.StatusOK, healthyBody},
		"/pool/stats": {http.StatusOK, poolBody},
		"/dlq/stats":  {http.StatusOK, deadBody},
	}
	for path, rt := range overrides {
		routes[path] = rt
	}
	return routes
}

// runCmd runs tako with args and returns its stdout, its stderr and its
// error.
func runCmd(ctx context.Context, environ []string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"tako"}, args...), environ, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestStatusReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		header  string // where the fake wants its key; "" for none
		key     string
		routes  map[string]route
		args    []string
		wantOut []string // lines or fragments of stdout
		wantErr []string // fragments of the error; none for success
	}{{
		name:   "healthy",
		routes: takoRoutes(nil),
		wantOut: []string{
			"status:         healthy\n",
			"version:        1.2.3\n",
			"docker:         available\n",
			"gvisor:         unavailable: runtime runsc is not installed\n",
			"database:       available\n",
			"queue:          3 pending, 1 running of 4 workers, at most 1000 queued\n",
			"  data                 pool 0 warm, 0 busy, target 0",
			"  default              pool 2 warm, 1 busy, target 3",
			"dead letters:   3 (internal_error 2, timeout 1)\n",
			"problems:       none\n",
		},
	}, {
		name:   "degraded, answered with 503",
		routes: takoRoutes(map[string]route{"/health": {http.StatusServiceUnavailable, degradedBody}}),
		wantOut: []string{
			"status:         degraded\n",
			"database:       unavailable\n",
			"  strict               pool unknown                             unavailable: needs gVisor\n",
			"problems:\n  - database is not reachable\n  - job type strict is unavailable: needs gVisor\n",
		},
		wantErr: []string{"is degraded: database is not reachable; job type strict is unavailable: needs gVisor"},
	}, {
		name:    "degraded, answered with 200",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusOK, degradedBody}}),
		wantOut: []string{"status:         degraded\n"},
		wantErr: []string{"is degraded: database is not reachable"},
	}, {
		name:    "a key is needed",
		header:  "X-API-Key",
		key:     "secret-key-of-16-chars",
		routes:  takoRoutes(nil),
		wantOut: []string{"status:         healthy\n", "(pools not shown: tako at", "dead letters:   not shown: tako at"},
		wantErr: []string{"needs an API key for GET /pool/stats: pass it with --api-key", "needs an API key for GET /dlq/stats"},
	}, {
		name:    "the key is sent",
		header:  "X-API-Key",
		key:     "secret-key-of-16-chars",
		routes:  takoRoutes(nil),
		args:    []string{"--api-key", "secret-key-of-16-chars"},
		wantOut: []string{"dead letters:   3 (internal_error 2, timeout 1)\n"},
	}, {
		name:    "the key is sent in another header",
		header:  "X-Tako-Key",
		key:     "secret-key-of-16-chars",
		routes:  takoRoutes(nil),
		args:    []string{"--api-key", "secret-key-of-16-chars", "--header", "X-Tako-Key"},
		wantOut: []string{"dead letters:   3 (internal_error 2, timeout 1)\n"},
	}, {
		name:    "the key is refused",
		header:  "X-API-Key",
		key:     "secret-key-of-16-chars",
		routes:  takoRoutes(nil),
		args:    []string{"--api-key", "wrong-key"},
		wantOut: []string{"status:         healthy\n"},
		wantErr: []string{"refused the API key given with --api-key for GET /pool/stats (HTTP 401): the API key is not valid"},
	}, {
		name:    "forbidden",
		routes:  takoRoutes(map[string]route{"/dlq/stats": {http.StatusForbidden, `{"detail": "admins only"}`}}),
		args:    []string{"--api-key", "user-key"},
		wantOut: []string{"  default              pool 2 warm"},
		wantErr: []string{"refused the API key given with --api-key for GET /dlq/stats (HTTP 403): admins only"},
	}, {
		name:    "garbage instead of health",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusOK, "<html>hello</html>"}}),
		wantErr: []string{"did not answer as tako does: GET /health", "<html>hello</html>"},
	}, {
		name:    "someone else's health",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusOK, `{"status": "UP"}`}}),
		wantErr: []string{`did not answer as tako does: GET /health has status "UP"`},
	}, {
		name:    "a proxy's 503",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusServiceUnavailable, "upstream down"}}),
		wantErr: []string{"/health: HTTP 503: upstream down"},
	}, {
		name:    "a server error",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusInternalServerError, `{"detail": "Internal server error"}`}}),
		wantErr: []string{"/health: HTTP 500: Internal server error"},
	}, {
		name:    "no pool route",
		routes:  map[string]route{"/health": {http.StatusOK, healthyBody}, "/dlq/stats": {http.StatusOK, deadBody}},
		wantOut: []string{"status:         healthy\n", "  default              pool unknown", "(pools not shown: GET ", "dead letters:   3"},
		wantErr: []string{"/pool/stats: HTTP 404"},
	}, {
		name:    "garbage dead letters",
		routes:  takoRoutes(map[string]route{"/dlq/stats": {http.StatusOK, "[1, 2"}}),
		wantOut: []string{"  default              pool 2 warm", "dead letters:   not shown: "},
		wantErr: []string{"did not answer as tako does: GET /dlq/stats"},
	}, {
		name:    "degraded and a route failing",
		routes:  takoRoutes(map[string]route{"/health": {http.StatusServiceUnavailable, degradedBody}, "/dlq/stats": {http.StatusServiceUnavailable, `{"detail": "the database is not reachable"}`}}),
		wantOut: []string{"status:         degraded\n", "dead letters:   not shown: "},
		wantErr: []string{"is degraded: database is not reachable", "; and GET ", "/dlq/stats: HTTP 503: the database is not reachable"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := fakeTako(t, tt.header, tt.key, tt.routes)
			out, _, err := runCmd(context.Background(), nil, append([]string{"status", "--url", srv.URL + "/"}, tt.args...)...)
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("status error = %v, want none\n%s", err, out)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("status error = %v, want one containing %q", err, want)
				}
			}
			if errors.Is(err, errUsage) {
				t.Errorf("status error %v is a usage error", err)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("status output lacks %q:\n%s", want, out)
				}
			}
			for i, arg := range tt.args {
				if arg == "--api-key" && strings.Contains(out+fmt.Sprint(err), tt.args[i+1]) {
					t.Errorf("status printed the API key:\n%s\n%v", out, err)
				}
			}
			if strings.HasPrefix(out, "server:") != (len(tt.wantOut) > 0) {
				t.Errorf("status output (want a report: %v):\n%s", len(tt.wantOut) > 0, out)
			}
		})
	}
}

func TestStatusUnreachable(t *testing.T) {
	t.Parallel()
	port, err := freePort() // closed again: nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	out, _, err := runCmd(context.Background(), nil, "status", "--url", u)
	if err == nil || !strings.Contains(err.Error(), "cannot reach tako at "+u+": ") || out != "" {
		t.Errorf("status of nothing: error %v, output %q", err, out)
	}
}

func TestStatusTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; the client gives up
	}))
	t.Cleanup(srv.Close)
	_, _, err := runCmd(context.Background(), nil, "status", "--url", srv.URL, "--timeout", "200ms")
	if err == nil || !strings.Contains(err.Error(), "cannot reach tako at "+srv.URL) || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("status of a silent server: %v", err)
	}
}

func TestStatusFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--url", "127.0.0.1:8000"}, `--url must be an http:// or https:// URL, not "127.0.0.1:8000"`},
		{[]string{"--url", "ftp://example.com"}, "--url must be an http:// or https:// URL"},
		{[]string{"--url", "http://"}, "--url must be an http:// or https:// URL"},
		{[]string{"--url", "http://127.0.0.1:8000/?x=1"}, "--url must be the server's base URL"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive, not 0s"},
		{[]string{"--timeout", "-1s"}, "--timeout must be positive"},
		{[]string{"--timeout", "soon"}, "timeout"},
		{[]string{"--header", ""}, "--header must be an HTTP header name"},
		{[]string{"--header", "X API Key"}, "--header must be an HTTP header name"},
		{[]string{"--colour"}, "colour"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, _, err := runCmd(context.Background(), nil, append([]string{"status"}, tt.args...)...)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("status %v: error %v, want a usage error containing %q", tt.args, err, tt.want)
			}
		})
	}
	out, _, err := runCmd(context.Background(), nil, "status", "-h")
	if err != nil || out != "" {
		t.Errorf("status -h: %v %q", err, out)
	}
}

// TestStatusAndDevCommands drives the managed database and a server on it
// the way a developer does: tako dev up starts the database tako server
// then uses, tako status reports the server healthy, and once tako dev down
// has stopped the database, degraded. The container, its port and volume
// are this test's own.
func TestStatusAndDevCommands(t *testing.T) {
	dc := runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	ctx := context.Background()
	// Names of this run's own: another run on the machine keeps its own.
	name := fmt.Sprintf("tako-postgres-status-test-%d", os.Getpid())
	vol := name + "-data"
	cleanup := func() {
		dc.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true})
		dc.VolumeRemove(context.Background(), vol, true)
		dc.NetworkRemove(context.Background(), name)
	}
	cleanup()
	t.Cleanup(cleanup)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir() // dev up and the server share it: the password lives here
	db := []string{
		"TAKO_DATABASE_URL=",
		"TAKO_DATABASE_AUTO_START_CONTAINER=" + name,
		"TAKO_DATABASE_AUTO_START_VOLUME=" + vol,
		fmt.Sprintf("TAKO_DATABASE_AUTO_START_PORT=%d", port),
		"TAKO_RUNNER_WORK_DIR=" + work,
	}
	environ := append(append(os.Environ(), "TAKO_LOG_LEVEL=warn"), db...)
	dev := func(sub string) string {
		t.Helper()
		out, stderr, err := runCmd(ctx, environ, "dev", sub, "--config", "../../tako.yaml")
		if err != nil {
			t.Fatalf("tako dev %s: %v\n%s\n%s", sub, err, out, stderr)
		}
		return out
	}
	wantState := func(out, state string) {
		t.Helper()
		if !strings.Contains(out, "container:     "+name+"\n") || !strings.Contains(out, "state:         "+state) {
			t.Errorf("dev status: want container %s in state %q:\n%s", name, state, out)
		}
	}

	wantState(dev("status"), "not created")
	out := dev("up")
	password, err := os.ReadFile(filepath.Join(work, "database", name+".password"))
	if err != nil || len(strings.TrimSpace(string(password))) < 32 {
		t.Fatalf("password file after dev up: %v %q", err, password)
	}
	wantURL := fmt.Sprintf("database ready: postgres://postgres:***@127.0.0.1:%d/tako?sslmode=disable\n", port)
	if !strings.Contains(out, wantURL) || !strings.Contains(out, "password file:  "+filepath.Join(work, "database", name+".password")+"\n") {
		t.Errorf("dev up output lacks %q or the password file:\n%s", wantURL, out)
	}
	if strings.Contains(out, strings.TrimSpace(string(password))) {
		t.Errorf("dev up printed the password:\n%s", out)
	}
	wantState(dev("status"), "running (reachable)")

	// The server finds the container dev up started; no warm pools.
	s, stop, err := launchServer("", append(db, "TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_JOB_TYPES_DATA_POOL_MIN=0"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// Healthy once its first checks are in.
	var statusErr error
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		out, _, statusErr = runCmd(ctx, nil, "status", "--url", s.url)
		if statusErr == nil || time.Now().After(deadline) {
			break
		}
	}
	if statusErr != nil {
		t.Fatalf("status of a healthy server: %v\n%s\n%s", statusErr, out, s.logs.String())
	}
	for _, want := range []string{
		"server:         " + s.url + "\n", "status:         healthy\n", "version:        " + version + "\n",
		"docker:         available\n", "database:       available\n",
		"dead letters:   0\n", "problems:       none\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	for _, jt := range []string{"data", "default"} {
		if !strings.Contains(out, fmt.Sprintf("  %-20s pool 0 warm, ", jt)) {
			t.Errorf("status output lacks job type %s's pool:\n%s", jt, out)
		}
	}

	if out := dev("down"); !strings.Contains(out, "stopped the "+name+" container") {
		t.Errorf("dev down output:\n%s", out)
	}
	// /health answers from a snapshot: wait until it sees the database gone.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, health := s.get(t, "/health")
		h := health.(map[string]any)
		if h["database_available"] == false && h["status"] == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health with the database stopped: %v", h)
		}
	}
	out, _, err = runCmd(ctx, nil, "status", "--url", s.url)
	if err == nil || !strings.Contains(err.Error(), "is degraded") || !strings.Contains(err.Error(), "database is not reachable") {
		t.Errorf("status with the database stopped: error %v", err)
	}
	if !strings.Contains(out, "status:         degraded\n") || !strings.Contains(out, "database:       unavailable\n") || !strings.Contains(out, "  - database is not reachable\n") {
		t.Errorf("status output with the database stopped:\n%s", out)
	}
	wantState(dev("status"), "stopped")
	if out := dev("down"); !strings.Contains(out, "the "+name+" container is already stopped") {
		t.Errorf("second dev down output:\n%s", out)
	}
	// dev up starts the same container again, with the same password; the
	// server then stops with its database there.
	if out := dev("up"); !strings.Contains(out, wantURL) {
		t.Errorf("dev up of the stopped container:\n%s", out)
	}
	wantState(dev("status"), "running (reachable)")
}
