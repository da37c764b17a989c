package runner

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/runnertest"
)

var (
	imageOnce sync.Once
	imageRef  string
)

// executor returns the Docker client and the executor image, built once
// per test process.
func executor(t *testing.T) (*client.Client, string) {
	t.Helper()
	dc := runnertest.Docker(t)
	imageOnce.Do(func() { imageRef = runnertest.ExecutorImage(t, dc) })
	if imageRef == "" {
		t.Fatal("executor image unavailable")
	}
	return dc, imageRef
}

func testJobType() jobtypes.JobType {
	return jobtypes.JobType{
		Name:         "default",
		Network:      jobtypes.NetworkNone,
		SecurityMode: jobtypes.Permissive,
		Limits: jobtypes.Limits{
			CPUs: 1, FileSize: 100 << 20, Memory: 256 << 20, NoFile: 256,
			// A timeout with room for a loaded machine: a case that must be
			// stopped sets its own.
			Pids: 64, Timeout: 2 * time.Minute, Tmp: 16 << 20,
		},
	}
}

func testLimits() OutputLimits {
	return OutputLimits{
		MaxArtifactBytes: 1 << 20, MaxArtifacts: 10, MaxStderrBytes: 64 << 10,
		MaxStdoutBytes: 64 << 10, MaxTotalArtifactBytes: 4 << 20,
	}
}

// startRunner starts a runner without pools for the default job type in
// workDir.
func startRunner(t *testing.T, dc *client.Client, image, workDir string) *Runner {
	t.Helper()
	return startRunnerWith(t, dc, Options{Images: map[string]string{"default": image}, MaxConcurrent: 2, WorkDir: workDir})
}

// startRunnerWith starts a runner with opts and the test limits, and stops
// it at the end of the test, checking that it left no container or slot
// directory behind.
func startRunnerWith(t *testing.T, dc *client.Client, opts Options) *Runner {
	t.Helper()
	opts.AcquireTimeout, opts.Limits = 30*time.Second, testLimits()
	r := New(dc, opts, slog.New(slog.DiscardHandler))
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if n := containersOf(t, dc, r.InstanceID()); n != 0 {
			t.Errorf("%d containers of instance %s left after Stop", n, r.InstanceID())
		}
		if _, err := os.Stat(filepath.Join(opts.WorkDir, "slots", r.InstanceID())); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the instance's slot directory is left after Stop: %v", err)
		}
	})
	return r
}

func containersOf(t *testing.T, dc *client.Client, instanceID string) int {
	t.Helper()
	list, err := dc.ContainerList(context.Background(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+instanceID)),
	})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return len(list)
}

func TestExecute(t *testing.T) {
	dc, image := executor(t)
	r := startRunner(t, dc, image, t.TempDir())

	tests := []struct {
		name    string
		code    string
		input   string
		timeout time.Duration
		check   func(t *testing.T, res *jobs.Result, took time.Duration)
	}{
		{
			name: "hello",
			code: "print(1 + 1)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if res.Stdout != "2\n" || res.Stderr != "" {
					t.Errorf("stdout %q stderr %q", res.Stdout, res.Stderr)
				}
				if res.Runtime != runtimeRunc && res.Runtime != runtimeGVisor {
					t.Errorf("runtime %q", res.Runtime)
				}
			},
		},
		{
			name:  "input and result.json",
			code:  "import json\nd = json.load(open('/input/data.json'))\njson.dump({'sum': d['x'] + d['y']}, open('/output/result.json', 'w'))\nprint('Done!')",
			input: `{"x": 10, "y": 20}`,
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if string(res.Output) != `{"sum":30}` || res.Stdout != "Done!\n" {
					t.Errorf("output %s stdout %q", res.Output, res.Stdout)
				}
			},
		},
		{
			name: "sys.exit(3)",
			code: "import sys\nprint('bye')\nsys.exit(3)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusFailed, 3, jobs.ErrRuntimeError)
				if res.Stdout != "bye\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "exception",
			code: "def f():\n    return undefined\nf()",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusFailed, 1, jobs.ErrName)
				if !strings.HasPrefix(res.Stderr, "Traceback (most recent call last):\n  File \"/code/main.py\", line 3") ||
					!strings.HasSuffix(res.Stderr, "NameError: name 'undefined' is not defined\n") {
					t.Errorf("stderr %q", res.Stderr)
				}
			},
		},
		{
			name: "syntax error",
			code: "def broken(:\n",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusFailed, 1, jobs.ErrSyntax)
			},
		},
		{
			name:    "infinite loop is killed at the timeout, partial output kept",
			code:    "print('started', flush=True)\nwhile True:\n    pass",
			timeout: 2 * time.Second,
			check: func(t *testing.T, res *jobs.Result, took time.Duration) {
				expect(t, res, jobs.StatusTimeout, 124, jobs.ErrTimeout)
				if res.Stdout != "started\n" {
					t.Errorf("stdout %q, want the output written before the kill", res.Stdout)
				}
				// The program loops forever: any answer shows the kill; the
				// bound only turns a hang into a clear failure.
				if took > 30*time.Second+res.Timing.Start {
					t.Errorf("took %s for a 2s timeout", took)
				}
			},
		},
		{
			name: "memory hog is oom",
			code: "x = []\nwhile True:\n    x.append(' ' * 10**6)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusOOM, 137, jobs.ErrOOM)
			},
		},
		{
			name:    "fork bomb is contained",
			code:    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
			timeout: 3 * time.Second,
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				if res.Status != jobs.StatusTimeout && res.Status != jobs.StatusFailed {
					t.Errorf("status %s, want timeout or failed", res.Status)
				}
			},
		},
		{
			name: "100 MB print loop is truncated",
			code: "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)\nsys.stderr.write('e' * (200 * 1024))",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if !res.StdoutTruncated || len(res.Stdout) != 64<<10 {
					t.Errorf("stdout %d bytes, truncated %v; want %d, true", len(res.Stdout), res.StdoutTruncated, 64<<10)
				}
				if !res.StderrTruncated || len(res.Stderr) != 64<<10 {
					t.Errorf("stderr %d bytes, truncated %v", len(res.Stderr), res.StderrTruncated)
				}
			},
		},
		{
			name: "writing to /code, /input and / fails inside",
			code: "import sys\nfor p in ['/code/x.py', '/input/x', '/x']:\n    try:\n        open(p, 'w')\n        print('wrote', p)\n    except OSError as e:\n        print('denied', p, e.errno)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if res.Stdout != "denied /code/x.py 30\ndenied /input/x 30\ndenied /x 30\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "TCP connection fails",
			code: "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=2)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				if res.Status != jobs.StatusFailed || !strings.Contains(res.Stderr, "OSError: [Errno 101] Network is unreachable") {
					t.Errorf("status %s stderr %q", res.Status, res.Stderr)
				}
			},
		},
		{
			name: "symlinks, directories and hidden files are not artifacts",
			code: "import os\nos.symlink('/etc/passwd', '/output/passwd')\nos.mkdir('/output/dir')\nopen('/output/.hidden', 'w').write('h')\nopen('/output/report.txt', 'w').write('hello')",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if len(res.Artifacts) != 1 || res.Artifacts[0].Name != "report.txt" || res.Artifacts[0].SizeBytes != 5 ||
					res.Artifacts[0].SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
					t.Errorf("artifacts %+v", res.Artifacts)
				}
			},
		},
		{
			name: "invalid result.json",
			code: "open('/output/result.json', 'w').write('{not json')",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusFailed, 0, jobs.ErrOutputError)
				if res.Output != nil || !strings.Contains(res.Error.Message, "not valid JSON") {
					t.Errorf("output %s error %+v", res.Output, res.Error)
				}
			},
		},
		{
			name: "stdin is empty, argv and __main__ as with python3 main.py",
			code: "import sys, os\nprint(repr(sys.stdin.read()), sys.argv, __name__, os.getcwd(), 200000 <= os.getuid() == os.getgid() <= 265535)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusSucceeded, 0, "")
				if res.Stdout != "'' ['/code/main.py'] __main__ /app True\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
		{
			name: "os._exit without markers",
			code: "import os\nprint('x', flush=True)\nos._exit(7)",
			check: func(t *testing.T, res *jobs.Result, _ time.Duration) {
				expect(t, res, jobs.StatusFailed, 7, jobs.ErrRuntimeError)
				if res.Stdout != "x\n" {
					t.Errorf("stdout %q", res.Stdout)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			res, err := r.Execute(context.Background(), Request{
				Code: tt.code, InputJSON: []byte(tt.input), JobType: testJobType(), Timeout: tt.timeout,
			})
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			tt.check(t, res, time.Since(began))
		})
	}
}

func expect(t *testing.T, res *jobs.Result, status jobs.Status, exit int, errType string) {
	t.Helper()
	if res.Status != status || res.ExitCode != exit {
		t.Errorf("status %s exit %d, want %s %d (stdout %q stderr %q error %+v)", res.Status, res.ExitCode, status, exit, res.Stdout, res.Stderr, res.Error)
	}
	gotType := ""
	if res.Error != nil {
		gotType = res.Error.Type
	}
	if gotType != errType {
		t.Errorf("error type %q, want %q (%+v)", gotType, errType, res.Error)
	}
}

// noGVisor names a runtime no engine has: a runner looking for it finds no
// gVisor, on any host.
var noGVisor = GVisorOptions{Runtime: "tako-test-no-such-runtime"}

func TestStrictWithoutGVisorIsUnavailable(t *testing.T) {
	dc, image := executor(t)
	r := startRunnerWith(t, dc, Options{Images: map[string]string{"default": image}, GVisor: noGVisor, MaxConcurrent: 2, WorkDir: t.TempDir()})
	jt := testJobType()
	jt.SecurityMode = jobtypes.Strict
	if a := r.Availability(jt); a.Available || !strings.Contains(a.Reason, "tako-test-no-such-runtime") || !strings.Contains(a.Reason, "strict") {
		t.Errorf("Availability = %+v, want unavailable naming strict and the runtime", a)
	}
	if a := r.Availability(testJobType()); !a.Available || a.Runtime != "runc" {
		t.Errorf("permissive Availability = %+v, want available under runc", a)
	}
	_, err := r.Execute(context.Background(), Request{Code: "print(1)", JobType: jt})
	if jobs.ErrorCodeOf(err) != jobs.EUNAVAILABLE {
		t.Errorf("Execute error = %v, want EUNAVAILABLE", err)
	}
}

func TestStrictWithoutGVisorHasNoPool(t *testing.T) {
	dc, image := executor(t)
	jt := pooledJobType(2, 2, time.Minute)
	jt.SecurityMode = jobtypes.Strict
	r := startRunnerWith(t, dc, Options{
		GVisor:        noGVisor,
		Images:        map[string]string{jt.Name: image},
		JobTypes:      []jobtypes.JobType{jt},
		MaxConcurrent: 4,
		WorkDir:       t.TempDir(),
	})
	if st, ok := r.PoolStats(jt.Name); ok {
		t.Errorf("a job type that cannot run has a pool: %+v", st)
	}
	if n := containersOf(t, dc, r.InstanceID()); n != 0 {
		t.Errorf("%d containers started for a job type that cannot run", n)
	}
}

func TestBusyNodeAnswersUnavailable(t *testing.T) {
	dc, image := executor(t)
	r := New(dc, Options{
		AcquireTimeout: 200 * time.Millisecond,
		Images:         map[string]string{"default": image},
		Limits:         testLimits(),
		MaxConcurrent:  1,
		WorkDir:        t.TempDir(),
	}, slog.New(slog.DiscardHandler))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	// The first job holds the only slot until it is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Execute(ctx, Request{Code: "import time; time.sleep(600)", JobType: testJobType()})
	}()
	for deadline := time.Now().Add(2 * time.Minute); len(r.slots) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first job never took the slot")
		}
	}
	_, err := r.Execute(context.Background(), Request{Code: "print(1)", JobType: testJobType()})
	var e *jobs.Error
	if jobs.ErrorCodeOf(err) != jobs.EUNAVAILABLE || !errors.As(err, &e) || e.RetryAfter < 1 {
		t.Errorf("second Execute error = %v, want EUNAVAILABLE with RetryAfter", err)
	}
	cancel()
	<-done
}
