// Package takotest starts a real tako server for tests of what talks to it
// over HTTP, such as the Go and Python clients: tako built from this
// module, on a fresh PostgreSQL database and a free port, with real Docker.
// Only tests import it.
package takotest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
	"github.com/tako-run/tako/runner/runnertest"
)

// Server is a running tako that Start started.
type Server struct {
	// URL is the server's base URL, such as "http://127.0.0.1:41234".
	URL string
	// APIKey is the one API key the server accepts (its name is "a").
	APIKey string
	// Root is the module's root directory, where tako.yaml is.
	Root string
}

// Option changes how Start runs the server.
type Option func(*options)

type options struct {
	env []string
}

// WithEnv adds environment variables ("KEY=value") to the server's, after
// Start's own, so they override them: TAKO_* variables override any
// setting of tako.yaml.
func WithEnv(kv ...string) Option {
	return func(o *options) { o.env = append(o.env, kv...) }
}

// Start builds ./cmd/tako, runs `tako server` with the module's tako.yaml
// on a fresh database (pgtest.URL) and a free port with one API key, and
// waits until it answers /health. It fails the test when Docker, the
// executor image, the database or the server is missing (Docker is skipped
// outside CI, as runnertest.Docker does). The server stops with SIGTERM,
// and the database is dropped, when the test ends; its log is printed when
// the test failed.
func Start(t testing.TB, opts ...Option) Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	runnertest.ExecutorImage(t, runnertest.Docker(t))
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tako")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tako")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tako: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	key := randomKey()

	cmd := exec.Command(bin, "server", "--config", filepath.Join(root, "tako.yaml"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TAKO_DATABASE_URL="+dbURL,
		fmt.Sprintf("TAKO_SERVER_PORT=%d", port),
		"TAKO_RUNNER_WORK_DIR="+filepath.Join(dir, "work"),
		"TAKO_RUNNER_ACQUIRE_TIMEOUT=120s", // a loaded machine
		"TAKO_SERVER_RATE_LIMIT_REQUESTS_PER_SECOND=0",
		"TAKO_LOG_LEVEL=warn",
		"TAKO_AUTH_API_KEYS_A="+key,
	)
	cmd.Env = append(cmd.Env, o.env...)
	logs := &testsync.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tako: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	baseURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(3 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(baseURL + "/health")
		if err == nil {
			resp.Body.Close()
			return Server{URL: baseURL, APIKey: key, Root: root}
		}
		select {
		case <-exited:
			t.Fatalf("tako exited before it answered:\n%s", logs.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tako did not answer /health in 3 minutes:\n%s", logs.String())
		}
	}
}

// ModuleRoot returns the directory of this module's go.mod, found from the
// working directory up, which go test sets to the package's directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// randomKey returns a fresh API key of 32 hex digits.
func randomKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
