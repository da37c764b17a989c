package runner

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/runnertest"
)

// strictRunner starts a runner whose strict job type runs under the test
// engine's gVisor, with a pool when pooled.
func strictRunner(t *testing.T, pooled bool) (*Runner, jobtypes.JobType, string) {
	t.Helper()
	dc, image := executor(t)
	jt := pooledJobType(1, 2, time.Minute)
	if !pooled {
		jt.Pool = jobtypes.Pool{}
	}
	jt.SecurityMode = jobtypes.Strict
	work := t.TempDir()
	r := startRunnerWith(t, dc, Options{
		GVisor:        GVisorOptions{Runtime: runnertest.GVisorRuntime(t, dc), RequiredArgs: []string{"--host-fifo=open"}, ProbeImage: image},
		Images:        map[string]string{jt.Name: image},
		JobTypes:      []jobtypes.JobType{jt},
		MaxConcurrent: 2,
		WorkDir:       work,
	})
	if h := r.Health(context.Background()); !h.GVisorAvailable {
		t.Fatalf("gVisor failed its probe: %s", h.GVisorReason)
	}
	return r, jt, work
}

// TestTransportIsolationUnderGVisor: a strict job reaches nothing of the
// host through the transport. It can open its own slot's FIFOs (its uid
// owns them), but a forged trigger goes nowhere, a process left to write
// after the end is killed first, no other slot is visible, and mountinfo
// names no host path.
func TestTransportIsolationUnderGVisor(t *testing.T) {
	for _, pooled := range []bool{true, false} {
		name := map[bool]string{true: "warm", false: "cold"}[pooled]
		t.Run(name, func(t *testing.T) {
			r, jt, work := strictRunner(t, pooled)
			if pooled {
				waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm >= 1 })
			}
			input, _ := json.Marshal(map[string]string{"work": work, "slots": filepath.Join(work, "slots")})
			code := `import errno, json, os, time
d = json.load(open('/input/data.json'))
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = 'ok'
    except OSError as e:
        res[name] = errno.errorcode.get(e.errno, str(e.errno))
attempt('forge trigger', lambda: os.write(os.open('/tako/trigger', os.O_WRONLY | os.O_NONBLOCK), b'{"nonce": "0000"}\n'))
attempt('read trigger', lambda: os.read(os.open('/tako/trigger', os.O_RDONLY | os.O_NONBLOCK), 100))
attempt('new fifo', lambda: os.mkfifo('/tako/evil'))
attempt('host work dir', lambda: os.stat(d['work']))
attempt('host slots', lambda: os.listdir(d['slots']))
res['control'] = sorted(os.listdir('/tako'))
res['host paths in mountinfo'] = [l for l in open('/proc/self/mountinfo') if d['work'] in l or '/var/lib/docker' in l]
if os.fork() == 0:
    time.sleep(2)
    fd = os.open('/tako/stdout', os.O_WRONLY)
    os.write(fd, b'LATE\n')
    os._exit(0)
print(json.dumps(res, sort_keys=True))
`
			res, err := r.Execute(context.Background(), Request{Code: code, InputJSON: input, JobType: jt})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, res, jobs.StatusSucceeded, 0, "")
			if res.Runtime != "runsc" {
				t.Errorf("runtime %q, want runsc", res.Runtime)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
				t.Fatalf("stdout %q: %v", res.Stdout, err)
			}
			t.Logf("from inside: %v", got)
			if got["new fifo"] == "ok" || got["host work dir"] != "ENOENT" || got["host slots"] != "ENOENT" {
				t.Errorf("the program reached the host's side of the transport: %v", got)
			}
			if c, _ := json.Marshal(got["control"]); string(c) != `["stderr","stdout","trigger"]` {
				t.Errorf("/tako holds %s, want its own three FIFOs only", c)
			}
			if paths, _ := got["host paths in mountinfo"].([]any); len(paths) != 0 {
				t.Errorf("mountinfo names host paths under gVisor: %v", paths)
			}
			// The late writer was killed before the end marker; give it the
			// time it would have needed, and see that the next job, in a
			// container of its own, is untouched too.
			time.Sleep(3 * time.Second)
			next, err := r.Execute(context.Background(), Request{Code: "print('next')", JobType: jt})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(res.Stdout+next.Stdout, "LATE") || next.Stdout != "next\n" {
				t.Errorf("stdout %q then %q: a write after the end got through", res.Stdout, next.Stdout)
			}
		})
	}
}

// TestGVisorThatFailsItsProbe: with a gVisor runtime registered without
// --host-fifo=open, the probe fails at start-up; permissive job types run
// under runc at once, and strict ones are unavailable with the reason.
func TestGVisorThatFailsItsProbe(t *testing.T) {
	dc, image := executor(t)
	runnertest.GVisorRuntime(t, dc) // make gvisor registers the broken one beside it
	jt := testJobType()
	strict := testJobType()
	strict.Name, strict.SecurityMode = "strict", jobtypes.Strict
	began := time.Now()
	r := startRunnerWith(t, dc, Options{
		// No required arguments: the probe container itself must fail.
		GVisor:        GVisorOptions{Runtime: "tako-test-runsc-nofifo", ProbeImage: image},
		Images:        map[string]string{jt.Name: image, strict.Name: image},
		MaxConcurrent: 2,
		WorkDir:       t.TempDir(),
	})
	t.Logf("start-up with the failing probe took %s", time.Since(began).Round(time.Millisecond))
	h := r.Health(context.Background())
	if h.GVisorAvailable || !h.GVisorInstalled || !strings.Contains(h.GVisorReason, "probe") || !strings.Contains(h.GVisorFix, "--host-fifo=open") {
		t.Errorf("health %+v, want installed, unusable, the probe's failure and the fix", h)
	}
	if a := r.Availability(strict); a.Available || !strings.Contains(a.Reason, "strict") || !strings.Contains(a.Reason, "probe") {
		t.Errorf("strict availability %+v, want unavailable with the probe's failure", a)
	}
	res, err := r.Execute(context.Background(), Request{Code: "print(1 + 1)", JobType: jt, StartupTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, res, jobs.StatusSucceeded, 0, "")
	if res.Runtime != "runc" || res.Stdout != "2\n" {
		t.Errorf("permissive job: runtime %q stdout %q, want runc and 2", res.Runtime, res.Stdout)
	}
	if _, err := r.Execute(context.Background(), Request{Code: "print(1)", JobType: strict}); jobs.ErrorCodeOf(err) != jobs.EUNAVAILABLE {
		t.Errorf("strict job: %v, want EUNAVAILABLE", err)
	}
}
