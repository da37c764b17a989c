package runner

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/runnertest"
)

// TestForgedEndMarker: a program that hunts for the nonce in its own
// memory and its supervisor's, writes end markers with every candidate it
// finds, and then exits 7 is reported as exiting 7, with the output it
// wrote after its forgeries.
func TestForgedEndMarker(t *testing.T) {
	t.Parallel()
	dc, image := executor(t)
	r := startRunner(t, dc, image, t.TempDir())
	// gc.unfreeze: the bootstrap froze what existed before the fork, which
	// hides it from gc.get_objects; a program can undo that.
	code := `import ctypes, gc, json, os, re, sys
hexes = set()
gc.unfreeze()
for o in gc.get_objects():
    if isinstance(o, dict):
        for v in list(o.values()):
            if isinstance(v, str) and re.fullmatch('[0-9a-f]{32}', v):
                hexes.add(v)
f = sys._getframe()
while f:
    for v in f.f_locals.values():
        if isinstance(v, str) and re.fullmatch('[0-9a-f]{32}', v):
            hexes.add(v)
    f = f.f_back
ppid = os.getppid()
tries = {}
for path in ('/proc/%d/mem' % ppid, '/proc/%d/environ' % ppid, '/proc/%d/cmdline' % ppid, '/tako/trigger'):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        hexes.update(m.decode() for m in re.findall(rb'[0-9a-f]{32}', data))
        tries[path] = 'read'
    except Exception as e:
        tries[path] = type(e).__name__
libc = ctypes.CDLL(None, use_errno=True)
tries['ptrace'] = libc.ptrace(16, ppid, 0, 0)  # PTRACE_ATTACH
print(json.dumps(tries, sort_keys=True), flush=True)
for n in hexes | {'0' * 32}:
    marker = '\x1eTAKO-END %s {"exit": 0, "signal": 0, "exc": "", "msg": ""}\x1e\n' % n
    sys.stdout.write(marker)
    sys.stderr.write(marker)
sys.stdout.flush()
sys.stderr.flush()
print('after the forgeries', flush=True)
sys.exit(7)`
	res, err := r.Execute(context.Background(), Request{Code: code, JobType: testJobType()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != jobs.StatusFailed || res.ExitCode != 7 {
		t.Errorf("status %s, exit code %d; want failed with 7: the forged markers decided the end (stderr %q)", res.Status, res.ExitCode, res.Stderr)
	}
	if !strings.HasSuffix(res.Stdout, "after the forgeries\n") {
		t.Errorf("stdout %q: the output after the forgeries is lost", res.Stdout)
	}
	first, _, _ := strings.Cut(res.Stdout, "\n")
	for _, blocked := range []string{`"/proc/`, `"ptrace": -1`} {
		if !strings.Contains(first, blocked) {
			t.Errorf("probe %s: %s", blocked, first)
		}
	}
	if strings.Contains(first, `/mem": "read"`) || strings.Contains(first, `/environ": "read"`) {
		t.Errorf("the program read its supervisor: %s", first)
	}
}

// gatedDocker holds container removals until open is closed, so that a
// test can look at a container and its slot after the job has answered.
type gatedDocker struct {
	dockerAPI
	open chan struct{}
}

func (g *gatedDocker) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	<-g.open
	return g.dockerAPI.ContainerRemove(ctx, id, opts)
}

// TestLeftoversStopBeforeCollection: a child the program detaches keeps
// appending to a file in /output; it is stopped before /output is
// collected, so the file on disk is the artifact that was returned.
//
// The bootstrap kills leftovers only when the program left a process
// behind (it is their subreaper): under runc and under gVisor alike.
func TestLeftoversStopBeforeCollection(t *testing.T) {
	t.Parallel()
	dc, image := executor(t)
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "runc", true: "gvisor"}[strict], func(t *testing.T) {
			t.Parallel()
			jt := testJobType()
			opts := Options{Images: map[string]string{"default": image}}
			if strict {
				jt.SecurityMode = jobtypes.Strict
				opts.GVisor = GVisorOptions{Runtime: runnertest.GVisorRuntime(t, dc), ProbeImage: image}
			} else {
				jt.Runtime = jobtypes.RuntimeRunc
			}
			leftoversStop(t, dc, opts, jt)
		})
	}
}

func leftoversStop(t *testing.T, dc dockerAPI, opts Options, jt jobtypes.JobType) {
	gate := &gatedDocker{dockerAPI: dc, open: make(chan struct{})}
	work := t.TempDir()
	opts.MaxConcurrent, opts.WorkDir, opts.Limits, opts.AcquireTimeout = 1, work, testLimits(), time.Minute
	r := New(gate, opts, discardLogger())
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	defer close(gate.open)
	res, err := r.Execute(context.Background(), Request{JobType: jt, Code: `import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open('/output/late.txt', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        n = 0
        while True:
            os.write(fd, b'%d\n' % n)
            n += 1
    os._exit(0)
# Until the writer has begun, however slowly a loaded machine starts it.
while not os.path.exists('/output/late.txt'):
    time.sleep(0.01)
time.sleep(0.05)
print('parent done')`})
	if err != nil || res.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute: %v %+v", err, res)
	}
	if len(res.Artifacts) != 1 || res.Artifacts[0].Name != "late.txt" {
		t.Fatalf("artifacts %+v", res.Artifacts)
	}
	files, _ := filepath.Glob(filepath.Join(work, "slots", "*", "*", "output", "late.txt"))
	if len(files) != 1 {
		t.Fatalf("slot files %v", files)
	}
	time.Sleep(300 * time.Millisecond) // a writer left alive would write ~300 more lines
	onDisk, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(onDisk)) != res.Artifacts[0].SizeBytes {
		t.Errorf("late.txt grew after collection: %d bytes returned, %d on disk: the detached writer was still running", res.Artifacts[0].SizeBytes, len(onDisk))
	}
}

// TestJobsRunUnderUIDsOfTheirOwn: concurrent jobs run as different uids
// from runner.uid_range, own /output as that uid, and read their slot's
// code and input; the range's uids are no account of the host.
func TestJobsRunUnderUIDsOfTheirOwn(t *testing.T) {
	t.Parallel()
	dc, image := executor(t)
	r := startRunnerWith(t, dc, Options{Images: map[string]string{"default": image}, MaxConcurrent: 4, WorkDir: t.TempDir(),
		UIDs: UIDRange{First: 230000, Count: 1000}})
	var wg sync.WaitGroup
	uids := make([]string, 4)
	for i := range uids {
		wg.Go(func() {
			res, err := r.Execute(context.Background(), Request{JobType: testJobType(), Code: `import os, time
st = os.stat('/output')
print(os.getuid(), os.getgid(), st.st_uid, open('/code/main.py').read()[:6])
time.sleep(1)`})
			if err != nil || res.Status != jobs.StatusSucceeded {
				t.Errorf("job %d: %v %+v", i, err, res)
				return
			}
			uids[i] = res.Stdout
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, out := range uids {
		f := strings.Fields(out)
		if len(f) != 4 || f[0] != f[1] || f[0] != f[2] || f[3] != "import" {
			t.Errorf("job %d: %q; want uid = gid = /output's owner", i, out)
			continue
		}
		uid, _ := strconv.Atoi(f[0])
		if uid < 230000 || uid >= 231000 {
			t.Errorf("job %d ran as %d, outside runner.uid_range", i, uid)
		}
		if seen[f[0]] {
			t.Errorf("two jobs ran as uid %s", f[0])
		}
		seen[f[0]] = true
	}
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if f := strings.Split(line, ":"); len(f) > 2 && seen[f[2]] {
				t.Errorf("a job ran as the host account %q", line)
			}
		}
	}
}

// TestSeccompProfile: every syscall in DeniedSyscalls fails with EPERM
// inside a job under runc, and core dumps are off. ptrace is the telling
// one: Docker's own profile allows it on this kernel.
func TestSeccompProfile(t *testing.T) {
	t.Parallel()
	dc, image := executor(t)
	r := startRunner(t, dc, image, t.TempDir())
	// x86_64 numbers.
	numbers := map[string]int{
		"add_key": 248, "bpf": 321, "io_uring_enter": 426, "io_uring_register": 427, "io_uring_setup": 425,
		"keyctl": 250, "perf_event_open": 298, "ptrace": 101, "request_key": 249, "userfaultfd": 323,
	}
	if len(numbers) != len(DeniedSyscalls) {
		t.Fatalf("the test knows %d syscalls, the profile denies %d", len(numbers), len(DeniedSyscalls))
	}
	var b strings.Builder
	b.WriteString("import ctypes, resource\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n")
	b.WriteString("print('core', resource.getrlimit(resource.RLIMIT_CORE))\n")
	for _, name := range DeniedSyscalls {
		b.WriteString("ret = libc.syscall(" + strconv.Itoa(numbers[name]) + ", 0, 0, 0, 0, 0)\n")
		b.WriteString("print('" + name + "', ret, ctypes.get_errno())\n")
	}
	res, err := r.Execute(context.Background(), Request{JobType: testJobType(), Code: b.String()})
	if err != nil || res.Status != jobs.StatusSucceeded {
		t.Fatalf("Execute: %v %+v", err, res)
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if lines[0] != "core (0, 0)" {
		t.Errorf("core limit: %q", lines[0])
	}
	for i, name := range DeniedSyscalls {
		if want := name + " -1 1"; i+1 >= len(lines) || lines[i+1] != want {
			t.Errorf("%s: got %q, want %q (refused with EPERM)", name, lines[min(i+1, len(lines)-1)], want)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
