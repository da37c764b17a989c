package runner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/bootstrap"
)

// TestFloorConfig checks that a floor container is a job container of its
// job type but for its command and kind label: the floors reuse the
// launcher's hardening and never restate it.
func TestFloorConfig(t *testing.T) {
	t.Parallel()
	jt := jobtypes.JobType{
		Name:    "data",
		Env:     map[string]string{"FOO": "bar"},
		Network: jobtypes.NetworkNone,
		Preload: []string{"numpy"},
		Limits: jobtypes.Limits{CPUs: 1, Memory: 256 << 20, Pids: 64, NoFile: 256,
			FileSize: 16 << 20, Tmp: 16 << 20},
	}
	for _, runtime := range []string{runtimeRunc, runtimeGVisor} {
		t.Run(runtime, func(t *testing.T) {
			l := &launcher{
				gvisorRuntime: "runsc-custom",
				instance:      &instance{id: "0123456789abcdef", lockPath: "/work/instances/0123456789abcdef.lock"},
				seccomp:       SeccompProfile,
			}
			p := &FloorProbe{launch: l, spec: containerSpec{image: "tako-executor:abc", jobType: jt, runtime: runtime}}
			s, uid := slot{dir: "/work/slots/0123456789abcdef/aa"}, 200123
			job, jobHost := l.config(p.spec, s, uid)
			for _, cmd := range [][]string{{"true"}, bootstrap.FloorCommand()} {
				floor, floorHost := p.floorConfig(cmd, s, uid)
				if !slices.Equal(floor.Cmd, cmd) || slices.Equal(job.Cmd, cmd) {
					t.Errorf("floor command %q, job command %.40q", floor.Cmd, job.Cmd)
				}
				if floor.Labels[LabelKind] != "bench-floor" || job.Labels[LabelKind] != "job" {
					t.Errorf("kind labels: floor %q, job %q", floor.Labels[LabelKind], job.Labels[LabelKind])
				}
				if !reflect.DeepEqual(floorHost, jobHost) {
					t.Errorf("host configuration\n%+v\nwant the job's\n%+v", floorHost, jobHost)
				}
				// All else is the job's.
				f, j := *floor, *job
				f.Cmd, j.Cmd = nil, nil
				f.Labels, j.Labels = nil, nil
				if !reflect.DeepEqual(f, j) {
					t.Errorf("container configuration\n%+v\nwant the job's\n%+v", f, j)
				}
				for k, v := range job.Labels {
					if k != LabelKind && floor.Labels[k] != v {
						t.Errorf("label %s = %q, want the job's %q", k, floor.Labels[k], v)
					}
				}
			}
			if want := map[string]string{runtimeRunc: "", runtimeGVisor: "runsc-custom"}[runtime]; jobHost.Runtime != want {
				t.Errorf("runtime %q, want %q", jobHost.Runtime, want)
			}
		})
	}
}

// TestTriggerFloorRoundTrip runs the trigger floor's interpreter on the
// host, on FIFOs like a slot's, and drives it as StartTrigger and the
// floor do: ready, then round trips, then Close, after which it exits.
func TestTriggerFloorRoundTrip(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on the host")
	}
	s := slot{dir: filepath.Join(t.TempDir(), "slot")}
	if err := os.MkdirAll(s.control(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bootstrap.StdoutFIFO, bootstrap.StderrFIFO, bootstrap.TriggerFIFO} {
		if err := syscall.Mkfifo(s.fifo(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	uids, err := newUIDPool(work, filepath.Join(work, "instances", "x.lock"), UIDRange{First: 300000, Count: 16})
	if err != nil {
		t.Fatal(err)
	}
	l := &launcher{logger: slog.New(slog.DiscardHandler), uids: uids, startupTimeout: time.Minute}
	tf := newTriggerFloor(l, &jobContainer{slot: s, uid: 300000})
	if err := tf.open(); err != nil {
		t.Fatal(err)
	}
	tf.listen()
	cmd := bootstrap.FloorCommand()
	proc := exec.Command(python, append(cmd[1:len(cmd)-1], s.control())...)
	var stderr strings.Builder
	proc.Stderr = &stderr
	if err := proc.Start(); err != nil {
		tf.Close()
		l.wait()
		t.Fatal(err)
	}
	if err := tf.ready(t.Context(), time.Now().Add(time.Minute)); err != nil {
		t.Errorf("ready: %v", err)
	}
	for i := range 3 {
		if err := tf.RoundTrip(t.Context()); err != nil {
			t.Errorf("round trip %d: %v", i, err)
		}
	}
	tf.Close()
	tf.Close() // idempotent
	l.wait()
	if err := proc.Wait(); err != nil {
		t.Errorf("the interpreter ended with %v:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("slot directory left behind: %v", err)
	}
}

// TestTriggerFloorNeverReady closes a trigger floor whose interpreter never
// opened its stdout: the open waiting for it is released, and nothing is
// left behind.
func TestTriggerFloorNeverReady(t *testing.T) {
	t.Parallel()
	s := slot{dir: filepath.Join(t.TempDir(), "slot")}
	if err := os.MkdirAll(s.control(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{bootstrap.StdoutFIFO, bootstrap.StderrFIFO, bootstrap.TriggerFIFO} {
		if err := syscall.Mkfifo(s.fifo(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	uids, err := newUIDPool(work, filepath.Join(work, "instances", "x.lock"), UIDRange{First: 300000, Count: 16})
	if err != nil {
		t.Fatal(err)
	}
	l := &launcher{logger: slog.New(slog.DiscardHandler), uids: uids, startupTimeout: time.Minute}
	tf := newTriggerFloor(l, &jobContainer{slot: s, uid: 300000})
	if err := tf.open(); err != nil {
		t.Fatal(err)
	}
	tf.listen()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := tf.ready(ctx, time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Errorf("ready: %v, want context.Canceled", err)
	}
	tf.Close()
	l.wait()
	if _, err := os.Stat(s.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("slot directory left behind: %v", err)
	}
}
