package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/runnertest"
)

// pooledJobType is testJobType with a pool.
func pooledJobType(min, max int, idle time.Duration) jobtypes.JobType {
	jt := testJobType()
	jt.Pool = jobtypes.Pool{Min: min, Max: max, IdleTTL: idle}
	jt.Env = map[string]string{"TAKO_TEST_ENV": "from-job-type"}
	return jt
}

// startPooledRunner starts a runner whose only job type, jt, may have a
// pool.
func startPooledRunner(t *testing.T, dc *client.Client, image string, jt jobtypes.JobType) *Runner {
	t.Helper()
	return startRunnerWith(t, dc, Options{
		Images:        map[string]string{jt.Name: image},
		JobTypes:      []jobtypes.JobType{jt},
		MaxConcurrent: 4,
		WorkDir:       t.TempDir(),
	})
}

// waitPool waits until the pool of jt has want ready containers.
func waitPool(t *testing.T, r *Runner, name string, want func(PoolStats) bool) PoolStats {
	t.Helper()
	var st PoolStats
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, _ = r.PoolStats(name)
		if want(st) {
			return st
		}
	}
	t.Fatalf("pool never reached the wanted state: %+v", st)
	return st
}

func TestPoolWarmStartAndRefill(t *testing.T) {
	dc, image := executor(t)
	jt := pooledJobType(2, 4, time.Minute)
	r := startPooledRunner(t, dc, image, jt)
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 2 })

	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		// Each job marks its container; a container that ran a job is never
		// used again, so no job finds a mark.
		res, err := r.Execute(context.Background(), Request{JobType: jt, Code: `import os, socket
print(socket.gethostname(), os.path.exists('/tmp/used'))
open('/tmp/used', 'w').write('x')`})
		if err != nil {
			t.Fatal(err)
		}
		if res.Start != jobs.StartWarm || res.Status != jobs.StatusSucceeded {
			t.Fatalf("job %d: start %s status %s stderr %q", i, res.Start, res.Status, res.Stderr)
		}
		host, used, _ := strings.Cut(strings.TrimSpace(res.Stdout), " ")
		if used != "False" || seen[host] {
			t.Errorf("job %d ran in a used container: %q", i, res.Stdout)
		}
		seen[host] = true
		// The replacement starts off the request path.
		waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm >= 2 })
	}
	if st, _ := r.PoolStats(jt.Name); st.Hits != 3 || st.Misses != 0 {
		t.Errorf("stats %+v, want 3 hits", st)
	}
}

func TestPoolShrinksAfterIdle(t *testing.T) {
	dc, image := executor(t)
	// idle_ttl leaves room for a loaded machine to start the grown pool
	// before demand is forgotten.
	jt := pooledJobType(1, 4, 5*time.Second)
	r := startPooledRunner(t, dc, image, jt)
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 1 })
	done := make(chan struct{})
	for i := 0; i < 3; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			r.Execute(context.Background(), Request{JobType: jt, Code: "import time; time.sleep(1)"})
		}()
	}
	// Demand grows the pool towards min plus the concurrent peak ...
	grown := waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Target == 4 })
	for i := 0; i < 3; i++ {
		<-done
	}
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm >= 3 })
	// ... and after idle_ttl without demand it shrinks back to min.
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 1 && s.Target == 1 })
	t.Logf("grown to %+v, then back to min", grown)
}

func TestPoolRecoversFromKilledContainers(t *testing.T) {
	dc, image := executor(t)
	jt := pooledJobType(2, 2, time.Minute)
	r := startPooledRunner(t, dc, image, jt)
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 2 })
	list, err := dc.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+r.InstanceID())),
	})
	if err != nil || len(list) != 2 {
		t.Fatalf("pool containers: %d, %v", len(list), err)
	}
	for _, c := range list { // behind tako's back
		if err := dc.ContainerKill(context.Background(), c.ID, "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	// A job right away never gets a dead container: warm if a replacement
	// is ready, cold otherwise.
	res, err := r.Execute(context.Background(), Request{JobType: jt, Code: "print('alive')"})
	if err != nil || res.Stdout != "alive\n" {
		t.Fatalf("job after the kill: %v %+v", err, res)
	}
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 2 })
	res, err = r.Execute(context.Background(), Request{JobType: jt, Code: "print('warm again')"})
	if err != nil || res.Start != jobs.StartWarm || res.Stdout != "warm again\n" {
		t.Fatalf("job after the refill: %v %+v", err, res)
	}
}

// TestWarmColdConformance runs every case on a warm container and on a cold
// one: user code cannot tell them apart, except by speed.
// TestWarmColdConformance: a program sees the same thing and ends the same
// way warm and cold, under runc and under gVisor.
func TestWarmColdConformance(t *testing.T) {
	dc, image := executor(t)
	gv := GVisorOptions{Runtime: runnertest.GVisorRuntime(t, dc), ProbeImage: image}
	jt := pooledJobType(2, 4, time.Minute)
	jt.Runtime = jobtypes.RuntimeRunc
	coldJT := jt
	coldJT.Pool = jobtypes.Pool{}
	strictJT := jt
	strictJT.Runtime, strictJT.SecurityMode = jobtypes.RuntimeAuto, jobtypes.Strict
	strictColdJT := strictJT
	strictColdJT.Pool = jobtypes.Pool{}
	type variant struct {
		name  string
		r     *Runner
		jt    jobtypes.JobType
		start jobs.Start
	}
	start := func(jt jobtypes.JobType) *Runner {
		return startRunnerWith(t, dc, Options{
			GVisor:        gv,
			Images:        map[string]string{jt.Name: image},
			JobTypes:      []jobtypes.JobType{jt},
			MaxConcurrent: 4,
			WorkDir:       t.TempDir(),
		})
	}
	variants := []variant{
		{"runc warm", start(jt), jt, jobs.StartWarm},
		{"runc cold", start(coldJT), coldJT, jobs.StartCold},
		{"runsc warm", start(strictJT), strictJT, jobs.StartWarm},
		{"runsc cold", start(strictColdJT), strictColdJT, jobs.StartCold},
	}
	cases := []struct {
		name, code, input string
		timeout           time.Duration
	}{
		{"hello", "print(1 + 1)", "", 0},
		{"empty writes", "import sys\nprint('', end='')\nsys.stdout.write('')\nsys.stderr.write('')\nprint('after')", "", 0},
		{"exception", "def f():\n    raise ValueError('bad')\nf()", "", 0},
		{"syntax error", "def (:", "", 0},
		{"NUL in code", "print(1)\x00", "", 0},
		{"sys.exit codes", "import sys\nprint('out')\nsys.exit(3)", "", 0},
		{"sys.exit message", "import sys\nsys.exit('fatal')", "", 0},
		{"__main__ guard", "if __name__ == '__main__':\n    print('main')", "", 0},
		{"argv, cwd, uid", "import sys, os\nprint(sys.argv, os.getcwd(), 200000 <= os.getuid() <= 265535, sys.path[0])", "", 0},
		{"env", "import os\nprint(os.environ.get('TAKO_TEST_ENV'), os.environ.get('HOME'), sorted(k for k in os.environ if k.startswith('TAKO')))", "", 0},
		{"stdin", "import sys\nprint(repr(sys.stdin.read()))\ntry:\n    input()\nexcept EOFError:\n    print('eof')", "", 0},
		{"stdout encoding", "import sys\nprint(sys.stdout.encoding, sys.stderr.errors, sys.stdout.buffer is not None)\nprint('\u00e9\u6f22')", "", 0},
		{"input and result.json", "import json\nd = json.load(open('/input/data.json'))\njson.dump({'y': d['x'] + 1}, open('/output/result.json', 'w'))", `{"x": 1}`, 0},
		{"artifacts", "open('/output/a.txt', 'w').write('aaa')", "", 0},
		{"timeout", "print('before', flush=True)\nwhile True: pass", "", 2 * time.Second},
		{"oom", "x = []\nwhile True: x.append(' ' * 10**6)", "", 0},
		{"output flood", "import sys\nfor _ in range(20000): sys.stdout.write('y' * 100 + '\\n')", "", 0},
		{"subprocess", "import subprocess\nprint(subprocess.run(['python3', '-c', 'print(41 + 1)'], capture_output=True, text=True).stdout.strip())", "", 0},
		{"threads", "import threading\nt = threading.Thread(target=lambda: print('thread'))\nt.start()", "", 0},
		{"atexit", "import atexit\natexit.register(lambda: print('bye'))\nprint('hi')", "", 0},
		// A program under bootstrap.MaxTriggerLine comes with the trigger,
		// a longer one from /code/main.py: both run the same.
		{"long program, from the file", "x = 1\n# " + strings.Repeat("a", 40<<10) + "\nprint(len(open(__file__).read()), x)\nraise KeyError('k')", "", 0},
		{"coding declaration", "# -*- coding: latin-1 -*-\nprint(len('\u00e9'))", "", 0},
		{"modules", "import sys\nprint('numpy' in sys.modules, '__main__' in sys.modules, sys.modules['__main__'].__file__)", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var first string
			for i, v := range variants {
				req := Request{JobType: v.jt, Code: tc.code, InputJSON: []byte(tc.input), Timeout: tc.timeout}
				if v.start == jobs.StartWarm {
					waitPool(t, v.r, v.jt.Name, func(s PoolStats) bool { return s.Warm >= 1 })
				}
				res, err := v.r.Execute(context.Background(), req)
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				wantRuntime := string(jobtypes.RuntimeRunc)
				if v.jt.SecurityMode == jobtypes.Strict {
					wantRuntime = string(jobtypes.RuntimeGVisor)
				}
				if res.Start != v.start || res.Runtime != wantRuntime {
					t.Fatalf("%s: start %s runtime %s, want %s %s", v.name, res.Start, res.Runtime, v.start, wantRuntime)
				}
				got := observable(res)
				if i == 0 {
					first = got
				} else if got != first {
					t.Errorf("%s differs from %s:\n%s: %s\n%s: %s", v.name, variants[0].name, variants[0].name, first, v.name, got)
				}
			}
		})
	}
}

// observable is everything of a result that user code determines.
func observable(r *jobs.Result) string {
	errType := ""
	if r.Error != nil {
		errType = r.Error.Type
	}
	var arts []string
	for _, a := range r.Artifacts {
		arts = append(arts, a.Name+":"+a.SHA256)
	}
	return fmt.Sprintf("status=%s exit=%d error=%s stdout=%q stderr=%q output=%s artifacts=%v truncated=%v/%v",
		r.Status, r.ExitCode, errType, r.Stdout, r.Stderr, r.Output, arts, r.StdoutTruncated, r.StderrTruncated)
}

// TestPoolIsolation runs two jobs at once from one pool: neither sees the
// other's files, and a job's leftovers are gone for the next one.
func TestPoolIsolation(t *testing.T) {
	dc, image := executor(t)
	jt := pooledJobType(2, 4, time.Minute)
	r := startPooledRunner(t, dc, image, jt)
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 2 })
	writer := make(chan *jobs.Result, 1)
	go func() {
		res, _ := r.Execute(context.Background(), Request{JobType: jt, Code: `import os, time
open('/tmp/secret', 'w').write('s3cret')
open('/output/secret.txt', 'w').write('s3cret')
while not os.path.exists('/input/read'):
    time.sleep(0.05)`})
		writer <- res
	}()
	// The writer has written once its secret shows in its slot; it then
	// waits for the reader to be done.
	var secret []string
	for deadline := time.Now().Add(2 * time.Minute); len(secret) == 0; time.Sleep(20 * time.Millisecond) {
		secret, _ = filepath.Glob(filepath.Join(r.opts.WorkDir, "slots", "*", "*", "output", "secret.txt"))
		if time.Now().After(deadline) {
			t.Fatal("the writer never wrote its secret")
		}
	}
	res, err := r.Execute(context.Background(), Request{JobType: jt, Code: `import os, glob
found = [p for d in ('/code', '/input', '/output', '/tmp', '/app', '/home', '/var', '/run') for p in glob.glob(d + '/**/secret*', recursive=True)]
print(sorted(os.listdir('/output')), os.listdir('/tmp'), found)`})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "[] [] []\n" {
		t.Errorf("the reader saw another job's files: %q %q", res.Stdout, res.Stderr)
	}
	// Let the writer finish: its /input is the slot's input directory.
	slotDir := filepath.Dir(filepath.Dir(secret[0]))
	if err := os.WriteFile(filepath.Join(slotDir, "input", "read"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if w := <-writer; w == nil || w.Status != jobs.StatusSucceeded || len(w.Artifacts) != 1 {
		t.Errorf("writer: %+v", w)
	}
}

// TestPoolBacksOffAndReports: a pool whose containers cannot start backs
// off instead of retrying in a loop, and says so in its stats.
func TestPoolBacksOffAndReports(t *testing.T) {
	dc, _ := executor(t)
	jt := pooledJobType(2, 2, time.Minute)
	r := startRunnerWith(t, dc, Options{
		GVisor:        noGVisor,
		Images:        map[string]string{jt.Name: "tako-test-no-such-image:none"},
		JobTypes:      []jobtypes.JobType{jt},
		MaxConcurrent: 2,
		WorkDir:       t.TempDir(),
	})
	st := waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Failures >= 2 })
	if st.LastError != "the Docker engine could not create or start the container" || st.Warm != 0 {
		t.Errorf("stats %+v, want the engine's failure", st)
	}
	// 2 s, 4 s, 8 s between rounds: in 6 s at most two more rounds of two.
	time.Sleep(6 * time.Second)
	if later, _ := r.PoolStats(jt.Name); later.Failures > st.Failures+4 {
		t.Errorf("failures went from %d to %d in 6 s: the pool does not back off", st.Failures, later.Failures)
	}
}
