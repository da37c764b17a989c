// Package runnertest gives tests a real Docker engine and tako's real
// executor image. In CI (CI=true) a missing engine fails the test; elsewhere
// it skips it.
package runnertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/runner/images"
)

// Docker returns a client for the local engine. When the engine does not
// answer, the test fails in CI and is skipped elsewhere.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = dc.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker engine required in CI: %v", err)
		}
		t.Skipf("Docker engine not available: %v", err)
	}
	t.Cleanup(func() { dc.Close() })
	return dc
}

// ExecutorImage returns tako's executor image, building it the way `tako
// setup` does when it is missing. Test processes that need it at the same
// time take turns through a lock file, so it is built once.
func ExecutorImage(t testing.TB, dc *client.Client) string {
	t.Helper()
	defer testsync.LockImagesUntil(t)()
	b := images.NewBuilder(dc, images.Options{WorkDir: t.TempDir()}, slog.New(slog.DiscardHandler), testWriter{t})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ref, err := b.EnsureExecutor(ctx)
	if err != nil {
		t.Fatalf("executor image: %v", err)
	}
	return ref
}

// testWriter sends build progress to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(fmt.Sprintf("%s", p))
	return len(p), nil
}

// GVisorRuntime returns the name of the engine's gVisor runtime that tako's
// tests run strict jobs under: TAKO_TEST_GVISOR_RUNTIME, or "runsc", which
// `make test` registers. When the engine lacks it, the test fails in CI and
// is skipped elsewhere.
func GVisorRuntime(t testing.TB, dc *client.Client) string {
	t.Helper()
	name := os.Getenv("TAKO_TEST_GVISOR_RUNTIME")
	if name == "" {
		name = "runsc"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := dc.Info(ctx)
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	if _, ok := info.Runtimes[name]; !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("gVisor runtime %q required in CI (make gvisor registers it)", name)
		}
		t.Skipf("the engine has no gVisor runtime %q: run make gvisor", name)
	}
	return name
}
