package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/runner/runnertest"
)

// TestServerImage: `tako image` builds the server image from a static
// binary without a registry; the image refuses a work directory mounted
// from another host path, and with the right mounts serves /health and
// runs a job from inside its container.
func TestServerImage(t *testing.T) {
	dc := runnertest.Docker(t)
	runnertest.ExecutorImage(t, dc) // the server in the container finds it
	t.Parallel()

	if got, err := os.ReadFile("../../deploy/server.yaml"); err != nil || string(got) != serverImageConfig {
		t.Errorf("deploy/server.yaml differs from the configuration tako image writes (%v)", err)
	}

	bin := filepath.Join(t.TempDir(), "tako-static")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tag := fmt.Sprintf("tako-server:test-%d", time.Now().UnixNano())
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tako", "image", "--binary", bin, "--tag", tag}, os.Environ(), &out, &out); err != nil {
		t.Fatalf("tako image: %v\n%s", err, out.String())
	}
	t.Cleanup(func() { dc.ImageRemove(context.Background(), tag, image.RemoveOptions{}) })
	if !strings.Contains(out.String(), "==> reading "+bin) || !strings.Contains(out.String(), "built "+tag) {
		t.Errorf("tako image's progress:\n%s", out.String())
	}
	// A dynamically linked binary is refused with the fix.
	if self, err := os.Executable(); err == nil {
		if err := run(context.Background(), []string{"tako", "image", "--binary", self, "--tag", tag + "-dyn"}, os.Environ(), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("a dynamic binary: %v, want a refusal naming CGO_ENABLED=0", err)
		}
	}

	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"TAKO_DATABASE_URL=" + dbURL, "TAKO_SERVER_HOST=127.0.0.1", fmt.Sprintf("TAKO_SERVER_PORT=%d", port),
		"TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_LOG_LEVEL=warn",
	}

	t.Run("a work directory from another host path is refused", func(t *testing.T) {
		elsewhere := t.TempDir()
		logs, code := runServerContainer(t, dc, tag, env, mount.Mount{Type: mount.TypeBind, Source: elsewhere, Target: "/var/lib/tako"}, 0)
		if code == 0 || !strings.Contains(logs, "runner.work_dir /var/lib/tako comes from "+elsewhere) {
			t.Errorf("exit code %d, logs:\n%s", code, logs)
		}
	})

	t.Run("with the work directory at its host path it serves", func(t *testing.T) {
		work, err := os.MkdirTemp("", "tako-image-work-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(work) })
		env := append(env, "TAKO_RUNNER_WORK_DIR="+work)
		runServerContainer(t, dc, tag, env, mount.Mount{Type: mount.TypeBind, Source: work, Target: work}, port)
	})
}

// runServerContainer runs the server image with env, the Docker socket
// and work, on the host's network. With port 0 it waits for the server to
// exit and returns its logs and exit code. Otherwise it waits for /health
// on port, runs one job and stops the server.
func runServerContainer(t *testing.T, dc *client.Client, tag string, env []string, work mount.Mount, port int) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := dc.ContainerCreate(ctx, &container.Config{
		Image: tag, Env: env, Labels: map[string]string{"tako.test": "server-image"},
	}, &container.HostConfig{
		NetworkMode: "host",
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
			work,
		},
	}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
	logs := func() string {
		r, err := dc.ContainerLogs(context.Background(), c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			return err.Error()
		}
		defer r.Close()
		var b bytes.Buffer
		stdcopy.StdCopy(&b, &b, r)
		return b.String()
	}
	wait, errs := dc.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := dc.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if port == 0 {
		select {
		case w := <-wait:
			return logs(), int(w.StatusCode)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case w := <-wait:
			t.Fatalf("the server exited with code %d:\n%s", w.StatusCode, logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /health within 5 minutes:\n%s", logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s := &testServer{url: url}
	if status, res := s.post(t, "/execute", `{"code": "print(1 + 1)"}`); status != 200 || res["stdout"] != "2\n" {
		t.Errorf("a job through the containerized server: %d %v\n%s", status, res, logs())
	}
	stop := 60
	if err := dc.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &stop}); err != nil {
		t.Errorf("stop: %v", err)
	}
	select { // the wait's goroutine ends when its answer is read
	case w := <-wait:
		return logs(), int(w.StatusCode)
	case err := <-errs:
		t.Errorf("wait: %v", err)
	}
	return logs(), 0
}
