package images

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/runnertest/pkgindex"
)

// The real client is what production passes in.
var _ DockerAPI = (*client.Client)(nil)

// dockerClient connects to the engine the way tako does. Without an engine
// the test is skipped, except in CI (CI=true), where it fails.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker engine not available in CI: %v", err)
		}
		t.Skipf("Docker engine not available: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testLogger sends the builder's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestBuilder returns a builder configured like a default tako: the
// registry base image (unpullable here, so debootstrap takes over) and the
// shared executor repository, so that test runs and real runs reuse one
// executor image.
func newTestBuilder(t *testing.T, cli *client.Client, pip jobtypes.PipIndex, progress io.Writer) *Builder {
	return NewBuilder(cli, Options{
		BaseImage:    "debian:bookworm-slim",
		BuildTimeout: 15 * time.Minute,
		DebianSuite:  "bookworm",
		Executor:     "tako-executor",
		Pip:          pip,
		WorkDir:      t.TempDir(),
	}, testLogger(t), progress)
}

// uniqueName returns a job type name no other test run uses.
func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// removeImageAtEnd removes a job type image when the test ends.
func removeImageAtEnd(t *testing.T, cli *client.Client, ref string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove image %s: %v", ref, err)
		}
	})
}

// runPython runs code in a hardened container from ref as uid 1000 and
// returns its combined output and exit code.
func runPython(t *testing.T, cli *client.Client, ref, code string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:  ref,
		Cmd:    []string{"python3", "-c", code},
		User:   "1000:1000",
		Labels: map[string]string{labelManaged: "true", "tako.test": "images"},
	}, &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
	}, nil, nil, "")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	attach, err := cli.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	defer attach.Close()
	waitCh, errCh := cli.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, attach.Reader); err != nil {
		t.Fatalf("read output: %v", err)
	}
	select {
	case res := <-waitCh:
		return out.String(), res.StatusCode
	case err := <-errCh:
		t.Fatalf("wait: %v", err)
	}
	return "", -1
}

func TestIntegration(t *testing.T) {
	cli := dockerClient(t)
	// Job type images live until the whole test ends: the last subtest
	// checks that a second run finds them.
	top := t

	t.Run("executor image runs python as uid 1000", func(t *testing.T) {
		ctx := context.Background()
		var progress testsync.Buffer
		b := newTestBuilder(t, cli, jobtypes.PipIndex{}, &progress)
		start := time.Now()
		ref, err := b.EnsureExecutor(ctx)
		if err != nil {
			t.Fatalf("EnsureExecutor: %v\nprogress:\n%s", err, progress.String())
		}
		t.Logf("EnsureExecutor took %s:\n%s", time.Since(start), progress.String())
		if ref != b.ExecutorRef() {
			t.Errorf("ref = %q, want %q", ref, b.ExecutorRef())
		}
		out, code := runPython(t, cli, ref, "print(1+1)")
		if code != 0 || strings.TrimSpace(out) != "2" {
			t.Fatalf("print(1+1) as uid 1000: exit %d, output %q", code, out)
		}
		info, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Labels[labelManaged] != "true" || info.Config.Labels[labelKind] != kindExecutor {
			t.Errorf("labels = %v", info.Config.Labels)
		}
		if info.Config.WorkingDir != "/app" {
			t.Errorf("WORKDIR = %q, want /app", info.Config.WorkingDir)
		}
		out, code = runPython(t, cli, ref, "import os, pwd; print(pwd.getpwuid(1000).pw_dir, os.stat('/output').st_uid, os.environ['LANG'])")
		if code != 0 || strings.TrimSpace(out) != "/home/sandbox 1000 C.UTF-8" {
			t.Errorf("sandbox user, /output owner, LANG: exit %d, output %q", code, out)
		}
	})

	t.Run("second run has nothing to do", func(t *testing.T) {
		var progress testsync.Buffer
		b := newTestBuilder(t, cli, jobtypes.PipIndex{}, &progress)
		start := time.Now()
		refs, err := b.EnsureAll(context.Background(), []jobtypes.JobType{{Name: "default"}})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("EnsureAll: %v", err)
		}
		if refs["default"] != b.ExecutorRef() {
			t.Errorf("refs = %v", refs)
		}
		if got := progress.String(); got != "nothing to do: 1 image is up to date\n" {
			t.Errorf("progress = %q", got)
		}
		t.Logf("a no-op run took %s", elapsed)
	})

	index := pkgindex.Start(t, cli, newTestBuilder(t, cli, jobtypes.PipIndex{}, nil).ExecutorRef())
	pip := jobtypes.PipIndex{IndexURL: "http://" + index + ":8080/simple", TrustedHosts: []string{index}}
	var (
		mu    sync.Mutex
		built []jobtypes.JobType // job types that built, for the no-op check
	)
	keep := func(jt jobtypes.JobType) {
		mu.Lock()
		defer mu.Unlock()
		built = append(built, jt)
	}

	t.Run("job types", func(t *testing.T) {
		t.Run("debian package numpy", func(t *testing.T) {
			t.Parallel()
			var progress testsync.Buffer
			b := newTestBuilder(t, cli, pip, &progress)
			jt := jobtypes.JobType{Name: uniqueName("test-numpy"), SystemPackages: []string{"python3-numpy"}, Preload: []string{"numpy"}}
			start := time.Now()
			ref, err := b.EnsureJobType(context.Background(), jt)
			if ref != "" {
				removeImageAtEnd(top, cli, ref)
			}
			if err != nil {
				t.Fatalf("EnsureJobType: %v\nprogress:\n%s", err, progress.String())
			}
			t.Logf("numpy job type built in %s", time.Since(start))
			for _, want := range []string{"==> building job type image " + ref, "==> verifying " + ref, "==> ok " + ref} {
				if !strings.Contains(progress.String(), want) {
					t.Errorf("progress lacks %q:\n%s", want, progress.String())
				}
			}
			out, code := runPython(t, cli, ref, "import numpy; print(numpy.arange(4).sum())")
			if code != 0 || strings.TrimSpace(out) != "6" {
				t.Errorf("numpy in job type image: exit %d, output %q", code, out)
			}
			keep(jt)
		})

		t.Run("requirements from a local index, concurrent callers share one build", func(t *testing.T) {
			t.Parallel()
			var progress testsync.Buffer
			b := newTestBuilder(t, cli, pip, &progress)
			jt := jobtypes.JobType{Name: uniqueName("test-tiny"), Requirements: []string{"takotiny"}, Preload: []string{"takotiny"}}
			refs := make([]string, 3)
			errs := make([]error, 3)
			var wg sync.WaitGroup
			for i := range refs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					refs[i], errs[i] = b.EnsureJobType(context.Background(), jt)
				}()
			}
			wg.Wait()
			if refs[0] != "" {
				removeImageAtEnd(top, cli, refs[0])
			}
			for i := range refs {
				if errs[i] != nil || refs[i] != refs[0] {
					t.Fatalf("caller %d: %q, %v (caller 0: %q)\nprogress:\n%s", i, refs[i], errs[i], refs[0], progress.String())
				}
			}
			if n := strings.Count(progress.String(), "==> building job type image"); n != 1 {
				t.Errorf("%d builds for 3 concurrent callers, want 1:\n%s", n, progress.String())
			}
			out, code := runPython(t, cli, refs[0], "import takotiny; print(takotiny.VALUE)")
			if code != 0 || strings.TrimSpace(out) != "42" {
				t.Errorf("takotiny in job type image: exit %d, output %q", code, out)
			}
			keep(jt)
		})

		t.Run("missing preload module fails verification", func(t *testing.T) {
			t.Parallel()
			b := newTestBuilder(t, cli, pip, nil)
			jt := jobtypes.JobType{Name: uniqueName("test-nomod"), Requirements: []string{"takotiny"}, Preload: []string{"takotiny", "tako_no_such_module"}}
			ref, err := b.EnsureJobType(context.Background(), jt)
			if err == nil {
				removeImageAtEnd(top, cli, ref)
				t.Fatal("EnsureJobType succeeded, want a verification failure")
			}
			if !strings.Contains(err.Error(), "No module named 'tako_no_such_module'") || !strings.Contains(err.Error(), jt.Name) {
				t.Errorf("error = %v; want the job type and the missing module named", err)
			}
			// Nothing is left tagged, finally or temporarily.
			lookedUp, exists, lerr := b.Lookup(context.Background(), jt)
			if lerr != nil || exists {
				t.Errorf("Lookup after failed verification = %q, %v, %v; want not existing", lookedUp, exists, lerr)
			}
			if _, err := cli.ImageInspect(context.Background(), lookedUp+"-unverified"); !cerrdefs.IsNotFound(err) {
				t.Errorf("unverified image left behind: %v", err)
			}
		})

		t.Run("unknown pip package names pip's error", func(t *testing.T) {
			t.Parallel()
			b := newTestBuilder(t, cli, pip, nil)
			jt := jobtypes.JobType{Name: uniqueName("test-nopkg"), Requirements: []string{"nosuchpkg"}}
			ref, err := b.EnsureJobType(context.Background(), jt)
			if err == nil {
				removeImageAtEnd(top, cli, ref)
				t.Fatal("EnsureJobType succeeded, want a pip failure")
			}
			want := fmt.Sprintf("build job type %q: packages step exited with code 1: ", jt.Name)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "ERROR: No matching distribution found for nosuchpkg") {
				t.Errorf("error = %q\nwant    %q... with pip's message", err, want)
			}
		})

		t.Run("executor FROM a local base image", func(t *testing.T) {
			t.Parallel()
			// The debootstrapped root filesystem stands in for
			// debian:bookworm-slim, which cannot be pulled here.
			shared := newTestBuilder(t, cli, pip, nil)
			base := shared.opts.Executor + "-rootfs:" + executorHash(shared.opts)
			if _, err := cli.ImageInspect(context.Background(), base); err != nil {
				t.Skipf("no local Debian base image to build from: %v", err)
			}
			var progress testsync.Buffer
			b := NewBuilder(cli, Options{
				BaseImage:    base,
				BuildTimeout: 15 * time.Minute,
				Executor:     uniqueName("tako-test-executor"),
				WorkDir:      t.TempDir(),
			}, testLogger(t), &progress)
			ref, err := b.EnsureExecutor(context.Background())
			if ref != "" {
				removeImageAtEnd(top, cli, ref)
			}
			if err != nil {
				t.Fatalf("EnsureExecutor: %v\nprogress:\n%s", err, progress.String())
			}
			if want := "==> building executor image " + ref + " (FROM " + base + ")"; !strings.Contains(progress.String(), want) {
				t.Errorf("progress lacks %q:\n%s", want, progress.String())
			}
			if strings.Contains(progress.String(), "debootstrap") {
				t.Errorf("debootstrap ran although the base image exists:\n%s", progress.String())
			}
			out, code := runPython(t, cli, ref, "print(1+1)")
			if code != 0 || strings.TrimSpace(out) != "2" {
				t.Errorf("print(1+1): exit %d, output %q", code, out)
			}
		})

		t.Run("missing custom image", func(t *testing.T) {
			t.Parallel()
			b := newTestBuilder(t, cli, pip, nil)
			jt := jobtypes.JobType{Name: uniqueName("test-custom"), Image: "tako-test-no-such-image:1"}
			_, err := b.EnsureJobType(context.Background(), jt)
			if err == nil || !strings.Contains(err.Error(), "image tako-test-no-such-image:1 is not available locally and cannot be pulled: ") {
				t.Errorf("error = %v", err)
			}
		})
	})

	t.Run("second run over built job types has nothing to do", func(t *testing.T) {
		if len(built) != 2 {
			t.Skipf("%d job types built", len(built))
		}
		var progress testsync.Buffer
		b := newTestBuilder(t, cli, pip, &progress)
		all := append([]jobtypes.JobType{{Name: "default"}}, built...)
		refs, err := b.EnsureAll(context.Background(), all)
		if err != nil {
			t.Fatalf("EnsureAll: %v", err)
		}
		for _, jt := range built {
			if ref := refs[jt.Name]; ref != "" {
				removeImageAtEnd(top, cli, ref) // in case it had to be rebuilt
			}
		}
		if len(refs) != 3 {
			t.Errorf("refs = %v", refs)
		}
		if got := progress.String(); got != "nothing to do: 3 images are up to date\n" {
			t.Errorf("progress = %q", got)
		}
		for _, jt := range built {
			ref, exists, err := b.Lookup(context.Background(), jt)
			if err != nil || !exists || ref != refs[jt.Name] {
				t.Errorf("Lookup(%s) = %q, %v, %v; want %q", jt.Name, ref, exists, err, refs[jt.Name])
			}
		}
	})
}

func TestUnreachableEngine(t *testing.T) {
	t.Parallel()
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	b := NewBuilder(cli, Options{}, nil, nil)
	_, err = b.EnsureExecutor(context.Background())
	if !IsUnreachable(err) {
		t.Fatalf("EnsureExecutor = %v, want an unreachable error", err)
	}
	if !strings.HasPrefix(err.Error(), "cannot reach the Docker engine (") || !strings.HasSuffix(err.Error(), "); start Docker or set DOCKER_HOST") {
		t.Errorf("error = %q", err)
	}
	if _, err := b.EnsureAll(context.Background(), []jobtypes.JobType{{Name: "a"}, {Name: "b"}}); !IsUnreachable(err) {
		t.Errorf("EnsureAll = %v", err)
	}
	if _, _, err := b.Lookup(context.Background(), jobtypes.JobType{Name: "a"}); !IsUnreachable(err) {
		t.Errorf("Lookup = %v", err)
	}
}
