package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/runnertest"
)

// hostileCanary is in the environment of the hostile suite's server: a
// secret of tako's that no program may read.
const hostileCanary = "hostile-canary-7f3a9c1e5b"

// hostileCase is one program that attacks its container, and what a user
// must get back.
type hostileCase struct {
	name    string
	code    string
	input   map[string]any // input_data; nil for none
	timeout int            // seconds; 0 means hostileTimeout
	status  string         // the execution's status
	errType string         // its error.type; "" means error is null
	check   func(t *testing.T, r hostileRun)
	// gvisor is what a user gets instead under gVisor, where the case ends
	// differently; nil means the same as under runc. SECURITY.md lists
	// these differences.
	gvisor *hostileCase
}

// readOnlyUnderGVisor is how a write to a read-only mount ends under
// gVisor: EACCES where Linux says EROFS.
var readOnlyUnderGVisor = &hostileCase{status: "failed", errType: "permission", check: stderrHas("Permission denied")}

// hostileModes are the job types of the hostile suite's server: runc warm
// and cold, and strict (gVisor) warm and cold.
var hostileModes = []hostileMode{
	{jobType: "warm", start: "warm", runtime: "runc"},
	{jobType: "cold", start: "cold", runtime: "runc"},
	{jobType: "gwarm", start: "warm", runtime: "runsc"},
	{jobType: "gcold", start: "cold", runtime: "runsc"},
}

// hostileMode is one job type the hostile cases run on.
type hostileMode struct {
	jobType string // its name on the hostile server
	start   string // warm or cold
	runtime string // runc or runsc
}

// under returns the case as it must end under m's runtime.
func (tc hostileCase) under(m hostileMode) hostileCase {
	if m.runtime != "runsc" || tc.gvisor == nil {
		return tc
	}
	g := *tc.gvisor
	g.name, g.code, g.input = tc.name, tc.code, tc.input
	if g.timeout == 0 {
		g.timeout = tc.timeout
	}
	if g.check == nil {
		g.check = tc.check
	}
	return g
}

// hostileRun is the answer to one hostile program.
type hostileRun struct {
	body []byte         // the response, as sent
	res  map[string]any // the response, decoded
	took time.Duration  // request to response
}

func (r hostileRun) str(key string) string { s, _ := r.res[key].(string); return s }

func (r hostileRun) errMessage() string {
	e, _ := r.res["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func (r hostileRun) artifacts() (names []string, total int64) {
	arts, _ := r.res["artifacts"].([]any)
	for _, a := range arts {
		m := a.(map[string]any)
		names = append(names, m["name"].(string))
		total += int64(m["size_bytes"].(float64))
	}
	return names, total
}

// hostileTimeout bounds the cases that must end by themselves, so that a
// hang shows up as a "timeout" status rather than a stuck suite. It is
// well above promptly, the bound of answeredWithin.
const hostileTimeout = 60

// promptly is how long a case that must end by itself, or be stopped by
// tako, may take past its container's start-up. It is generous enough for
// a 2-core machine that runs a parallel build beside the suite, and far
// below what each such program would take if tako did not stop it (it
// runs forever, or until hostileTimeout).
const promptly = 30 * time.Second

// answeredWithin fails when r took longer than limit plus its container's
// start-up: what a user waits for a program that must end promptly.
func answeredWithin(t *testing.T, r hostileRun, limit time.Duration) {
	t.Helper()
	if start := time.Duration(timing(r.res, "start_ms")) * time.Millisecond; r.took > limit+start {
		t.Errorf("answered after %s (start-up %s), want within %s of the start: %.1000s", r.took, start, limit, r.body)
	}
}

// hostileCases are the attacks. Each runs on a warm and on a cold container.
var hostileCases = []hostileCase{
	// The slowest first, so that they do not run last on their own.
	// The output watcher stops a tree nested past 32 levels. Removing one
	// deeper than the server may open files once left the slot directory
	// behind and took every descriptor the server had (see removeTree).
	{name: "deeply nested directories in /output", status: "failed", errType: "output_error", timeout: 120, input: map[string]any{"depth": deepNesting()},
		code: "import json, os, time\ndepth = json.load(open('/input/data.json'))['depth']\nos.chdir('/output')\nfor _ in range(depth):\n    os.mkdir('d')\n    os.chdir('d')\nprint(depth, flush=True)\ntime.sleep(120)",
		check: func(t *testing.T, r hostileRun) {
			if !strings.Contains(r.errMessage(), "nested directories more than 32 levels deep in /output") {
				t.Errorf("error message %q", r.errMessage())
			}
			answeredWithin(t, r, 2*promptly)
			if names, _ := r.artifacts(); len(names) != 0 {
				t.Errorf("artifacts %v: a directory is not one", names)
			}
		}},
	{name: "filling /output with many files", status: "failed", errType: "output_error", timeout: 30,
		code: "import time\nchunk = b'y' * (9 << 20)\nfor i in range(1000):\n    with open('/output/big%03d.bin' % i, 'wb') as f:\n        f.write(chunk)\n    print(i, flush=True)\ntime.sleep(30)",
		check: func(t *testing.T, r hostileRun) {
			// The watcher stops the program past limits.max_output_bytes
			// (200 MiB): about 23 files of 9 MiB, give or take what it
			// wrote in the last quarter second. What comes back is capped.
			if !strings.Contains(r.errMessage(), "more than 200MiB written to /output (limits.max_output_bytes)") {
				t.Errorf("error message %q", r.errMessage())
			}
			// How far past the limit it got depends on how busy the machine
			// is; that it was stopped long before its 1000 files does not.
			lines := strings.Count(r.str("stdout"), "\n")
			if lines < 20 || lines >= 500 {
				t.Errorf("the program wrote %d files of 9 MiB before it was stopped; want about 23, and far fewer than 1000", lines)
			}
			names, total := r.artifacts()
			if len(names) != 5 || total > 50<<20 || r.res["artifacts_truncated"] != true {
				t.Errorf("artifacts %v (%d bytes, truncated %v): want the first 5 of 9 MiB, up to max_total_artifact_bytes, and truncated", names, total, r.res["artifacts_truncated"])
			}
		}},
	{name: "fork bomb", timeout: 3, status: "timeout", errType: "timeout",
		code:  "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
		check: func(t *testing.T, r hostileRun) { answeredWithin(t, r, promptly) },
		// gVisor's kernel holds the processes to pids (RLIMIT_NPROC), and
		// that many interpreters outgrow the memory limit first.
		gvisor: &hostileCase{status: "oom", errType: "oom", timeout: 60}},
	{name: "memory bomb", timeout: 30, status: "oom", errType: "oom",
		code: "x = []\nwhile True:\n    x.append(' ' * 10**6)",
		check: func(t *testing.T, r hostileRun) {
			if !strings.Contains(r.errMessage(), "(limit 512MiB)") {
				t.Errorf("error message %q does not name the memory limit", r.errMessage())
			}
		}},
	{name: "CPU burn past the timeout", timeout: 2, status: "timeout", errType: "timeout",
		code: "print('partial', flush=True)\nwhile True:\n    pass",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "partial\n" {
				t.Errorf("stdout %q: output before the kill must be kept", r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		}},
	{name: "sleeping forever", timeout: 2, status: "timeout", errType: "timeout",
		code: "import time\nprint('sleeping', flush=True)\ntime.sleep(10**6)",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "sleeping\n" {
				t.Errorf("stdout %q", r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		}},
	{name: "stopping itself (SIGSTOP)", timeout: 2, status: "timeout", errType: "timeout",
		code: "import os, signal\nprint('stopping', flush=True)\nos.kill(os.getpid(), signal.SIGSTOP)\nprint('resumed')",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "stopping\n" {
				t.Errorf("stdout %q", r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		}},
	{name: "100 MB flood on stdout", status: "succeeded",
		code: "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n    sys.stdout.write(line)",
		check: func(t *testing.T, r hostileRun) {
			if r.res["stdout_truncated"] != true || len(r.str("stdout")) != 64<<10 || r.res["stderr_truncated"] != false {
				t.Errorf("stdout %d bytes, truncated %v; stderr truncated %v", len(r.str("stdout")), r.res["stdout_truncated"], r.res["stderr_truncated"])
			}
		}},
	{name: "50 MB flood on stderr", status: "succeeded",
		code: "import sys\nline = 'e' * 1023 + '\\n'\nfor _ in range(50 * 1024):\n    sys.stderr.write(line)\nprint('done')",
		check: func(t *testing.T, r hostileRun) {
			if r.res["stderr_truncated"] != true || len(r.str("stderr")) != 64<<10 || r.res["stdout_truncated"] != false || r.str("stdout") != "done\n" {
				t.Errorf("stderr %d bytes, truncated %v; stdout %q, truncated %v", len(r.str("stderr")), r.res["stderr_truncated"], r.str("stdout"), r.res["stdout_truncated"])
			}
		}},
	{name: "filling /tmp", status: "failed", errType: "os_error",
		code: "chunk = b'x' * (1 << 20)\nwith open('/tmp/fill', 'wb') as f:\n    while True:\n        f.write(chunk)",
		check: func(t *testing.T, r hostileRun) {
			if !strings.Contains(r.str("stderr"), "No space left on device") {
				t.Errorf("stderr %.300q", r.str("stderr"))
			}
		}},
	{name: "filling /output past the file size limit", status: "failed", errType: "os_error",
		code: "chunk = b'x' * (1 << 20)\nwith open('/output/fill', 'wb') as f:\n    while True:\n        f.write(chunk)",
		check: func(t *testing.T, r hostileRun) {
			if !strings.Contains(r.str("stderr"), "File too large") {
				t.Errorf("stderr %.300q", r.str("stderr"))
			}
			if names, _ := r.artifacts(); len(names) != 0 {
				t.Errorf("artifacts %v: a file over max_artifact_bytes is not returned", names)
			}
		}},
	{name: "thousands of artifacts", status: "succeeded",
		code: "for i in range(2000):\n    with open('/output/f%04d.txt' % i, 'w') as f:\n        f.write(str(i))\nprint('wrote 2000')",
		check: func(t *testing.T, r hostileRun) {
			names, _ := r.artifacts()
			if len(names) != 100 || names[0] != "f0000.txt" || names[99] != "f0099.txt" {
				t.Errorf("%d artifacts (%v...): want the first 100, limits.max_artifacts", len(names), names[:min(3, len(names))])
			}
			if r.res["artifacts_truncated"] != true {
				t.Error("1900 files left out, but artifacts_truncated is not set")
			}
		}},
	{name: "links and special files in /output", status: "succeeded",
		code: `import errno, json, os
os.symlink('/etc/passwd', '/output/passwd')
os.symlink('/proc/1/environ', '/output/environ')
os.symlink('/', '/output/root')
os.symlink('../../../../../../etc/hostname', '/output/hostname')
with open('/output/real.txt', 'w') as f:
    f.write('mine')
os.link('/output/real.txt', '/output/hard.txt')
open('/tmp/scratch', 'w').close()
errs = set()
for src in ('/etc/passwd', '/code/main.py', '/input/data.json', '/tmp/scratch', '/proc/1/environ'):
    try:
        os.link(src, '/output/' + os.path.basename(src) + '.link')
        errs.add('linked ' + src)
    except OSError as e:
        errs.add(errno.errorcode[e.errno])
os.mkfifo('/output/fifo')
os.mkdir('/output/dir')
os.symlink('/etc/shadow', '/output/dir/shadow')
print(sorted(errs))`,
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "['EXDEV']\n" {
				t.Errorf("stdout %q: a hard link to a file outside /output must fail with EXDEV", r.str("stdout"))
			}
			if names, total := r.artifacts(); !slices.Equal(names, []string{"hard.txt", "real.txt"}) || total != 8 {
				t.Errorf("artifacts %v (%d bytes), want only the regular files hard.txt and real.txt", names, total)
			}
		}},
	{name: "result.json symlink to /etc/passwd", status: "failed", errType: "output_error",
		code: "import os\nos.symlink('/etc/passwd', '/output/result.json')",
		check: func(t *testing.T, r hostileRun) {
			if r.errMessage() != "/output/result.json is not a regular file" || string(mustJSON(r.res["output"])) != "null" {
				t.Errorf("error %q, output %v", r.errMessage(), r.res["output"])
			}
			if strings.Contains(string(r.body), "root:x:0:0") {
				t.Errorf("the response shows /etc/passwd: %.300s", r.body)
			}
		}},
	{name: "result.json is a FIFO", status: "failed", errType: "output_error",
		code: "import os\nos.mkfifo('/output/result.json')",
		check: func(t *testing.T, r hostileRun) {
			if r.errMessage() != "/output/result.json is not a regular file" {
				t.Errorf("error %q", r.errMessage())
			}
			answeredWithin(t, r, promptly)
		},
		// gVisor keeps a FIFO made in a bind mount inside the sandbox: the
		// host sees no result.json at all.
		gvisor: &hostileCase{status: "succeeded",
			check: func(t *testing.T, r hostileRun) {
				if r.res["output"] != nil {
					t.Errorf("output %v, want none", r.res["output"])
				}
				answeredWithin(t, r, promptly)
			}}},
	{name: "huge result.json", status: "failed", errType: "output_error",
		code: "with open('/output/result.json', 'w') as f:\n    f.write('\"' + 'x' * (20 << 20) + '\"')",
		check: func(t *testing.T, r hostileRun) {
			if r.errMessage() != "/output/result.json is larger than 10485760 bytes" || string(mustJSON(r.res["output"])) != "null" {
				t.Errorf("error %q, output %.100v", r.errMessage(), r.res["output"])
			}
		}},
	{name: "write to /code", status: "failed", errType: "os_error",
		code:   "open('/code/main.py', 'w').write('x')",
		check:  stderrHas("Read-only file system"),
		gvisor: readOnlyUnderGVisor},
	{name: "write to /input", status: "failed", errType: "os_error",
		code:   "open('/input/data.json', 'w').write('{}')",
		check:  stderrHas("Read-only file system"),
		gvisor: readOnlyUnderGVisor},
	{name: "write to /", status: "failed", errType: "os_error",
		code:   "open('/evil', 'w').write('x')",
		check:  stderrHas("Read-only file system"),
		gvisor: readOnlyUnderGVisor},
	{name: "TCP egress", status: "failed", errType: "os_error",
		code:  "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)",
		check: stderrHas("Network is unreachable")},
	{name: "UDP egress", status: "failed", errType: "os_error",
		code:  "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('8.8.8.8', 53))",
		check: stderrHas("Network is unreachable")},
	{name: "DNS egress", status: "failed", errType: "network_error",
		code:  "import socket\nsocket.getaddrinfo('example.com', 443)",
		check: stderrHas("socket.gaierror")},
	{name: "reading /proc and looking for the Docker socket", status: "succeeded",
		code: `import glob, json, os, stat
seen = {}
for path in ['/proc/1/environ', '/proc/self/environ', '/proc/1/cmdline', '/proc/self/mountinfo'] + glob.glob('/proc/[0-9]*/environ'):
    try:
        with open(path, 'rb') as f:
            seen[path] = f.read().decode('utf-8', 'replace')
    except OSError as e:
        seen[path] = 'error: ' + e.strerror
# A socket from the host would be bind-mounted: look at every mount point,
# the usual places and the directories where one could hide.
paths = [line.split()[4] for line in seen['/proc/self/mountinfo'].splitlines()]
paths += ['/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock', '/var/run/containerd/containerd.sock']
for top in ('/run', '/var', '/tmp', '/dev', '/home', '/root', '/mnt', '/srv', '/opt', '/etc', '/output'):
    for root, dirs, files in os.walk(top):
        paths += [os.path.join(root, name) for name in dirs + files]
sockets = []
for p in paths:
    try:
        if stat.S_ISSOCK(os.lstat(p).st_mode) or p.endswith(('docker.sock', 'containerd.sock')):
            sockets.append(p)
    except OSError:
        pass
with open('/output/result.json', 'w') as f:
    json.dump({'seen': seen, 'sockets': sorted(set(sockets))}, f)`,
		check: func(t *testing.T, r hostileRun) {
			out, _ := r.res["output"].(map[string]any)
			if socks, _ := out["sockets"].([]any); socks == nil || len(socks) != 0 {
				t.Errorf("sockets in the container: %v", out["sockets"])
			}
			seen, _ := out["seen"].(map[string]any)
			if !strings.Contains(fmt.Sprint(seen["/proc/1/environ"]), "PYTHONUNBUFFERED=1") {
				t.Errorf("/proc/1/environ %q: want the container's own environment", seen["/proc/1/environ"])
			}
			if !strings.Contains(fmt.Sprint(seen["/proc/self/mountinfo"]), " /output ") {
				t.Errorf("/proc/self/mountinfo %.500q", seen["/proc/self/mountinfo"])
			}
			for path, text := range seen {
				for _, secret := range []string{hostileCanary, "TAKO_DATABASE_URL", "postgres:postgres", "docker.sock"} {
					if strings.Contains(fmt.Sprint(text), secret) {
						t.Errorf("%s shows %q: %.300q", path, secret, text)
					}
				}
			}
		}},
	{name: "setuid attempts", status: "failed", errType: "permission",
		code: `import json, os, subprocess
status = dict(l.split(':\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\t' in l)
tried = {}
for name, call in [('setuid', lambda: os.setuid(0)), ('seteuid', lambda: os.seteuid(0)),
                   ('setgid', lambda: os.setgid(0)), ('setgroups', lambda: os.setgroups([0]))]:
    try:
        call()
        tried[name] = 'succeeded'
    except OSError as e:
        tried[name] = e.errno
mount = subprocess.run(['mount', '-t', 'tmpfs', 'none', '/tmp'], capture_output=True)
with open('/output/result.json', 'w') as f:
    json.dump({'euid': os.geteuid(), 'egid': os.getegid(), 'tried': tried, 'mount_exit': mount.returncode,
               'no_new_privs': status['NoNewPrivs'], 'cap_eff': status['CapEff'], 'cap_prm': status['CapPrm']}, f)
os.setuid(0)`,
		check: func(t *testing.T, r hostileRun) {
			var out map[string]any
			json.Unmarshal(mustJSON(r.res["output"]), &out)
			// A uid of the job's own, from runner.uid_range.
			if uid, _ := out["euid"].(float64); uid < 200000 || uid > 265535 || out["egid"] != out["euid"] {
				t.Errorf("euid %v, egid %v: want a uid of runner.uid_range", out["euid"], out["egid"])
			}
			delete(out, "euid")
			delete(out, "egid")
			got := string(mustJSON(out))
			want := `{"cap_eff":"0000000000000000","cap_prm":"0000000000000000","mount_exit":32,"no_new_privs":"1","tried":{"seteuid":1,"setgid":1,"setgroups":1,"setuid":1}}`
			if got != want {
				t.Errorf("output %s\nwant %s", got, want)
			}
			if !strings.Contains(r.str("stderr"), "PermissionError: [Errno 1] Operation not permitted") {
				t.Errorf("stderr %.300q", r.str("stderr"))
			}
		}},
	{name: "SIGKILL and SIGSTOP to PID 1", status: "succeeded",
		code: "import os, signal\nos.kill(1, signal.SIGKILL)\nos.kill(1, signal.SIGSTOP)\nprint('alive')",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "alive\n" {
				t.Errorf("stdout %q: the namespace's init ignores them", r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		},
		// gVisor's init takes the SIGKILL: the sandbox ends, and with it the
		// job, reported as killed.
		gvisor: &hostileCase{status: "failed", errType: "killed",
			check: func(t *testing.T, r hostileRun) { answeredWithin(t, r, promptly) }}},
	// The init passes SIGTERM on to the program, which dies of it; 143 is
	// what the taxonomy (jobs.ClassifySignal) calls "cancelled".
	{name: "SIGTERM to PID 1", status: "failed", errType: "cancelled",
		code: "import os, signal, time\nprint('sending', flush=True)\nos.kill(1, signal.SIGTERM)\ntime.sleep(30)\nprint('survived')",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "sending\n" || r.res["exit_code"] != 143.0 {
				t.Errorf("stdout %q, exit_code %v", r.str("stdout"), r.res["exit_code"])
			}
			answeredWithin(t, r, promptly)
		}},
	// Short sleeps: a SIGINT that lands just before a long sleep starts is
	// only seen when it ends (Python checks for signals between bytecodes).
	{name: "SIGINT to PID 1", status: "failed", errType: "interrupted",
		code: "import os, signal, time\nos.kill(1, signal.SIGINT)\nfor _ in range(300):\n    time.sleep(0.1)",
		check: func(t *testing.T, r hostileRun) {
			if !strings.Contains(r.str("stderr"), "KeyboardInterrupt") {
				t.Errorf("stderr %.300q", r.str("stderr"))
			}
			answeredWithin(t, r, promptly)
		}},
	{name: "detached children outlive the program", status: "succeeded",
		code: `import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            print('late', flush=True)
            with open('/output/late.txt', 'a') as f:
                f.write('late\n')
            time.sleep(0.01)
    os._exit(0)
os.wait()
print('parent done')`,
		check: func(t *testing.T, r hostileRun) {
			// The grandchild's lines may land inside the parent's: two
			// writers share the pipe.
			if !strings.Contains(strings.ReplaceAll(r.str("stdout"), "late\n", ""), "parent done\n") {
				t.Errorf("stdout %.300q", r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		}},
	{name: "closing stdout early", status: "succeeded",
		code: "import json, os\nos.close(1)\ntotal = sum(range(10**6))\nwith open('/output/result.json', 'w') as f:\n    json.dump({'total': total}, f)",
		check: func(t *testing.T, r hostileRun) {
			if got := string(mustJSON(r.res["output"])); got != `{"total":499999500000}` || r.str("stdout") != "" {
				t.Errorf("output %s, stdout %q", got, r.str("stdout"))
			}
			answeredWithin(t, r, promptly)
		}},
	// With both streams closed tako cannot hear the program: it runs until
	// its timeout stops it, a failure of the program, not of tako.
	{name: "closing both streams and running on", timeout: 3, status: "timeout", errType: "timeout",
		code:  "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(600)",
		check: func(t *testing.T, r hostileRun) { answeredWithin(t, r, promptly) }},
	{name: "invalid UTF-8 and NUL bytes in output", status: "succeeded",
		code: "import json, sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe\\x00 nul\\n')\nsys.stderr.buffer.write(b'err \\xc3\\x28\\x00\\n')\n" +
			"with open('/output/result.json', 'w') as f:\n    json.dump({'s': 'a\\x00b'}, f)",
		check: func(t *testing.T, r hostileRun) {
			if r.str("stdout") != "ok \ufffd\x00 nul\n" || r.str("stderr") != "err \ufffd(\x00\n" {
				t.Errorf("stdout %q, stderr %q", r.str("stdout"), r.str("stderr"))
			}
			if got := string(mustJSON(r.res["output"])); got != `{"s":"a\u0000b"}` {
				t.Errorf("output %s", got)
			}
		}},
	{name: "deep recursion", status: "failed", errType: "recursion_error",
		code:  "def f(n):\n    return f(n + 1)\nf(0)",
		check: stderrHas("RecursionError: maximum recursion depth exceeded")},
	{name: "recursion past the C stack", status: "failed", errType: "segfault",
		code: "import sys\nsys.setrecursionlimit(10**6)\nx = []\nfor _ in range(10**6):\n    x = [x]\nprint(len(repr(x)))",
		check: func(t *testing.T, r hostileRun) {
			if r.res["exit_code"] != 139.0 {
				t.Errorf("exit_code %v", r.res["exit_code"])
			}
		}},
	{name: "sys.exit(3)", status: "failed", errType: "runtime_error",
		code: "import sys\nsys.exit(3)",
		check: func(t *testing.T, r hostileRun) {
			if r.res["exit_code"] != 3.0 {
				t.Errorf("exit_code %v", r.res["exit_code"])
			}
		}},
}

// deepNesting is how deep the nested-directories case goes: past the
// server's limit on open files (the server runs in this process), within
// what a program creates in a few seconds.
func deepNesting() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 30000
	}
	return int(min(lim.Cur+1000, 40000))
}

func stderrHas(s string) func(t *testing.T, r hostileRun) {
	return func(t *testing.T, r hostileRun) {
		t.Helper()
		if !strings.Contains(r.str("stderr"), s) {
			t.Errorf("stderr %.400q, want %q in it", r.str("stderr"), s)
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestHostilePrograms runs programs that attack their container, each on a
// warm (pooled) and on a cold (pool-less) job type, in parallel, through
// the real HTTP server, while a steady stream of ordinary jobs runs beside
// them. Each attack gets its expected status and error type; the ordinary
// jobs all get their right answers; the server stays healthy; and
// afterwards no container and no slot directory of the attacks is left.
func TestHostilePrograms(t *testing.T) {
	s := startHostileServer(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	baseline := healthProblems(t, s)

	stopStream, streamed := make(chan struct{}), make(chan streamReport, 1)
	go func() { streamed <- runOrdinaryJobs(s, baseline, stopStream) }()

	var (
		mu    sync.Mutex
		table = map[string]map[string]string{}
	)
	gates := map[string]*warmGate{"warm": {s: s, jobType: "warm"}, "gwarm": {s: s, jobType: "gwarm"}}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range hostileCases {
			for _, m := range hostileModes {
				mode := m.jobType
				tc := tc.under(m)
				t.Run(tc.name+"/"+mode, func(t *testing.T) {
					t.Parallel()
					r, err := runHostile(s, gates[mode], tc, mode)
					got := "request failed"
					if err == nil {
						got = fmt.Sprintf("%v / %s", r.res["status"], cmp.Or(errorType(r.res), "null"))
					}
					mu.Lock()
					if table[tc.name] == nil {
						table[tc.name] = map[string]string{}
					}
					table[tc.name][mode] = got
					mu.Unlock()
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("took %s, timing %v", r.took.Round(time.Millisecond), r.res["timing"])
					checkHostile(t, s, tc, m, r)
				})
			}
		}
	})
	close(stopStream)
	rep := <-streamed

	t.Log("\n" + hostileTable(table))
	if len(rep.failures) > 0 {
		t.Errorf("%d of %d ordinary jobs beside the attacks went wrong:\n%s", len(rep.failures), rep.jobs, strings.Join(rep.failures, "\n"))
	}
	if rep.jobs < 5 {
		t.Errorf("only %d ordinary jobs ran beside the attacks", rep.jobs)
	}
	t.Logf("%d ordinary jobs ran beside the attacks, all right", rep.jobs)
	if p := healthProblems(t, s); !slices.Equal(p, baseline) {
		t.Errorf("health after the attacks: problems %v, before %v", p, baseline)
	}
	for _, jt := range []string{"cold", "gcold"} {
		if code, res := s.post(t, "/execute", `{"code": "print(1 + 1)", "job_type": "`+jt+`"}`); code != http.StatusOK || res["stdout"] != "2\n" {
			t.Errorf("ordinary %s job after the attacks: %d %v", jt, code, res)
		}
	}
	waitNoContainers(t, s)
	waitNoStraySlots(t, s)
	if logs := s.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("the server panicked:\n%s", logs)
	}
}

// startHostileServer starts a server of its own for the hostile suite, so
// that its containers, slot directories and health are judged apart from
// the other tests': job types "warm" and "gwarm" have a pool, "cold" and
// "gcold" none; "warm" and "cold" run under runc, "gwarm" and "gcold" are
// strict and run under gVisor; and the server's environment holds a canary
// that no program may read.
func startHostileServer(t *testing.T) *testServer {
	t.Helper()
	runnertest.Docker(t)
	return startOwnServer(t,
		"TAKO_JOB_TYPES_WARM_POOL_MIN=2", "TAKO_JOB_TYPES_WARM_POOL_MAX=4",
		"TAKO_JOB_TYPES_COLD_POOL_MIN=0", "TAKO_JOB_TYPES_COLD_POOL_MAX=0",
		"TAKO_JOB_TYPES_WARM_LIMITS_TIMEOUT=120s", "TAKO_JOB_TYPES_COLD_LIMITS_TIMEOUT=120s",
		"TAKO_JOB_TYPES_WARM_RUNTIME=runc", "TAKO_JOB_TYPES_COLD_RUNTIME=runc",
		"TAKO_JOB_TYPES_GWARM_POOL_MIN=2", "TAKO_JOB_TYPES_GWARM_POOL_MAX=4",
		"TAKO_JOB_TYPES_GCOLD_POOL_MIN=0", "TAKO_JOB_TYPES_GCOLD_POOL_MAX=0",
		"TAKO_JOB_TYPES_GWARM_LIMITS_TIMEOUT=120s", "TAKO_JOB_TYPES_GCOLD_LIMITS_TIMEOUT=120s",
		"TAKO_JOB_TYPES_GWARM_SECURITY_MODE=strict", "TAKO_JOB_TYPES_GCOLD_SECURITY_MODE=strict",
		"TAKO_RUNNER_GVISOR_RUNTIME="+runnertest.GVisorRuntime(t, runnertest.Docker(t)),
		"HOSTILE_SECRET="+hostileCanary,
	)
}

// runHostile runs tc on job type mode. A warm run goes through gate (nil
// for a cold one), so that it finds a container in the pool.
func runHostile(s *testServer, gate *warmGate, tc hostileCase, mode string) (hostileRun, error) {
	timeout := tc.timeout
	if timeout == 0 {
		timeout = hostileTimeout
	}
	body, _ := json.Marshal(map[string]any{"code": tc.code, "input_data": tc.input, "job_type": mode, "timeout": timeout})
	send := func() (hostileRun, error) {
		began := time.Now()
		code, raw, err := postRaw(s.url+"/execute", string(body))
		r := hostileRun{body: raw, took: time.Since(began)}
		if err != nil {
			return r, err
		}
		if code != http.StatusOK {
			return r, fmt.Errorf("status %d: %.500s", code, raw)
		}
		if err := json.Unmarshal(raw, &r.res); err != nil {
			return r, fmt.Errorf("decode response: %v: %.500s", err, raw)
		}
		return r, nil
	}
	if gate != nil {
		return gate.run(send)
	}
	return send()
}

// checkHostile asserts what every hostile run must give a user, then the
// case's own expectations.
func checkHostile(t *testing.T, s *testServer, tc hostileCase, m hostileMode, r hostileRun) {
	t.Helper()
	if !utf8.Valid(r.body) || !json.Valid(r.body) {
		t.Errorf("the response is not valid UTF-8 JSON: %.300q", r.body)
	}
	want(t, r.res, tc.status, tc.status == "succeeded")
	if got := errorType(r.res); got != tc.errType {
		t.Errorf("error type %q (%v), want %q", got, r.res["error"], tc.errType)
	}
	if r.res["start"] != m.start || r.res["job_type"] != m.jobType {
		t.Errorf("start %v on job type %v, want %s on %s", r.res["start"], r.res["job_type"], m.start, m.jobType)
	}
	for _, key := range []string{"stdout", "stderr"} {
		// Rendering invalid UTF-8 as U+FFFD at most doubles the 64 KiB kept.
		if n := len(r.str(key)); n > 2*64<<10 {
			t.Errorf("%s is %d bytes, over the 64 KiB cap", key, n)
		}
	}
	// The history has the same outcome: storing it did not fail on what
	// the program printed.
	id, _ := r.res["execution_id"].(string)
	code, raw, err := getRaw(s.url + "/executions/" + id)
	var rec map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &rec)
	}
	if err != nil || code != http.StatusOK || rec["status"] != r.res["status"] || errorType(rec) != errorType(r.res) {
		t.Errorf("record of %s: %d %v %.300s", id, code, err, raw)
	}
	if rec["runtime"] != m.runtime {
		t.Errorf("record of %s: runtime %v, want %s", id, rec["runtime"], m.runtime)
	}
	tc.check(t, r)
}

func errorType(res map[string]any) string {
	e, _ := res["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

// warmGate lets one warm run at a time take its container: it waits until
// the pool has a ready one and holds the next run back until this one has
// checked out, so every warm run finds a warm container. The runs
// themselves overlap.
type warmGate struct {
	mu      sync.Mutex
	s       *testServer
	jobType string
}

func (g *warmGate) run(send func() (hostileRun, error)) (hostileRun, error) {
	type answer struct {
		r   hostileRun
		err error
	}
	done := make(chan answer, 1)
	err := func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		deadline := time.Now().Add(2 * time.Minute)
		for g.warm() < 1 {
			if time.Now().After(deadline) {
				return fmt.Errorf("pool of %s has no ready container after 2 minutes", g.jobType)
			}
			time.Sleep(50 * time.Millisecond)
		}
		before := g.checkouts()
		go func() {
			r, err := send()
			done <- answer{r, err}
		}()
		for g.checkouts() == before {
			if time.Now().After(deadline) {
				return fmt.Errorf("warm run did not check out a container within 2 minutes")
			}
			select {
			case a := <-done: // answered without a checkout
				done <- a
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil
	}()
	if err != nil {
		return hostileRun{}, err
	}
	a := <-done
	return a.r, a.err
}

// warm returns the ready containers of the gate's pool.
func (g *warmGate) warm() int {
	_, raw, err := getRaw(g.s.url + "/job-types/" + g.jobType)
	var jt struct {
		Pool struct{ Warm int } `json:"pool"`
	}
	if err != nil || json.Unmarshal(raw, &jt) != nil {
		return 0
	}
	return jt.Pool.Warm
}

// checkouts returns how many containers jobs of the gate's job type have
// got, warm or cold, from the server's metrics.
func (g *warmGate) checkouts() int {
	_, raw, err := getRaw(g.s.url + "/metrics")
	if err != nil {
		return -1
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "tako_pool_checkouts_total{") && strings.Contains(line, `job_type="`+g.jobType+`"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += int(v)
		}
	}
	return n
}

// streamReport is what the ordinary jobs beside the attacks got.
type streamReport struct {
	jobs     int
	failures []string
}

// runOrdinaryJobs runs ordinary jobs on the default job type, one after
// the other, until stop is closed, checking each answer and the server's
// health after each.
func runOrdinaryJobs(s *testServer, baseline []string, stop chan struct{}) streamReport {
	const code = `import json
with open('/input/data.json') as f:
    n = json.load(f)['n']
total = sum(range(n))
with open('/output/result.json', 'w') as f:
    json.dump({'sum': total}, f)
print(total)`
	var rep streamReport
	fail := func(format string, args ...any) { rep.failures = append(rep.failures, fmt.Sprintf(format, args...)) }
	for n := 1000; ; n++ {
		select {
		case <-stop:
			return rep
		default:
		}
		rep.jobs++
		body, _ := json.Marshal(map[string]any{"code": code, "input_data": map[string]any{"n": n}})
		status, raw, err := postRaw(s.url+"/execute", string(body))
		var res map[string]any
		if err == nil {
			err = json.Unmarshal(raw, &res)
		}
		sum := n * (n - 1) / 2
		if err != nil || status != http.StatusOK || res["status"] != "succeeded" || res["stdout"] != fmt.Sprintf("%d\n", sum) ||
			string(mustJSON(res["output"])) != fmt.Sprintf(`{"sum":%d}`, sum) {
			fail("job n=%d: %d %v %.300s", n, status, err, raw)
		}
		status, raw, err = getRaw(s.url + "/health")
		var h struct {
			Docker   bool     `json:"docker_available"`
			Database bool     `json:"database_available"`
			Problems []string `json:"problems"`
		}
		if err == nil {
			err = json.Unmarshal(raw, &h)
		}
		if err != nil || status != http.StatusOK || !h.Docker || !h.Database || !slices.Equal(h.Problems, baseline) {
			fail("health after job n=%d: %d %v %.500s", n, status, err, raw)
		}
	}
}

// healthProblems returns the problems GET /health reports, failing unless
// Docker and the database are available.
func healthProblems(t *testing.T, s *testServer) []string {
	t.Helper()
	code, raw, err := getRaw(s.url + "/health")
	var h struct {
		Docker   bool     `json:"docker_available"`
		Database bool     `json:"database_available"`
		Problems []string `json:"problems"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &h)
	}
	if err != nil || code != http.StatusOK || !h.Docker || !h.Database {
		t.Fatalf("health: %d %v %s", code, err, raw)
	}
	return h.Problems
}

// waitNoStraySlots waits until every slot directory in the server's work
// directory belongs to a container the server still has (a warm one in a
// pool): the slots of the containers that ran jobs are removed with them.
func waitNoStraySlots(t *testing.T, s *testServer) {
	t.Helper()
	var stray []string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		live := map[string]bool{}
		for _, dir := range slotsOf(t, s.workDir) {
			live[dir] = true
		}
		dirs, err := filepath.Glob(filepath.Join(s.workDir, "slots", "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		stray = stray[:0]
		for _, d := range dirs {
			if !live[d] {
				stray = append(stray, d)
			}
		}
		if len(stray) == 0 {
			return
		}
	}
	t.Errorf("%d slot directories left without a container: %v", len(stray), stray[:min(5, len(stray))])
}

// slotsOf returns the slot directories of the containers of the server in
// workDir.
func slotsOf(t *testing.T, workDir string) []string {
	t.Helper()
	var out []string
	for _, c := range serverContainers(t, workDir) {
		out = append(out, c.Labels[runner.LabelSlot])
	}
	return out
}

// hostileTable renders what each case got, warm and cold.
func hostileTable(table map[string]map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %-48s | %-28s | %-28s | %-28s | %-28s |\n", "case", "runc warm", "runc cold", "runsc warm", "runsc cold")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 50), strings.Repeat("-", 30), strings.Repeat("-", 30), strings.Repeat("-", 30), strings.Repeat("-", 30))
	for _, tc := range hostileCases {
		fmt.Fprintf(&b, "| %-48s | %-28s | %-28s | %-28s | %-28s |\n", tc.name, table[tc.name]["warm"], table[tc.name]["cold"], table[tc.name]["gwarm"], table[tc.name]["gcold"])
	}
	return b.String()
}

// postRaw posts body to url and returns the status and the body as sent,
// without a testing.T: the ordinary jobs run in a goroutine of their own.
func postRaw(url, body string) (int, []byte, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func getRaw(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}
