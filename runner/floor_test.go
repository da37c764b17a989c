package runner

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/bootstrap"
	"github.com/tako-run/tako/runner/runnertest"
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
		t.Fatalf("the trigger floor runs on the host's python3 (make testdeps installs it): %v", err)
	}
	s, l, tf := hostTriggerFloor(t)
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

// hostTriggerFloor returns a trigger floor on a slot with the bootstrap's
// FIFOs in a temporary directory, for an interpreter on the host, and the
// launcher it removes the slot with.
func hostTriggerFloor(t *testing.T) (slot, *launcher, *TriggerFloor) {
	t.Helper()
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
	return s, l, tf
}

// TestTriggerFloorNeverReady closes a trigger floor whose interpreter never
// opened its stdout: the open waiting for it is released, and nothing is
// left behind.
func TestTriggerFloorNeverReady(t *testing.T) {
	t.Parallel()
	s, l, tf := hostTriggerFloor(t)
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

// recordingDocker records the configuration of the containers it is asked
// to create, and creates none.
type recordingDocker struct {
	dockerAPI
	created []*container.Config
}

func (d *recordingDocker) ContainerCreate(_ context.Context, c *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, _ string) (container.CreateResponse, error) {
	d.created = append(d.created, c)
	return container.CreateResponse{}, errors.New("no engine")
}

// TestFloorLabeler checks that the bootstrap floor's containers are job
// containers of the job type, the bootstrap's command included, but for
// their kind label, and that the launcher's configuration is left as it
// was.
func TestFloorLabeler(t *testing.T) {
	t.Parallel()
	l := &launcher{
		instance: &instance{id: "0123456789abcdef", lockPath: "/work/instances/0123456789abcdef.lock"},
		seccomp:  SeccompProfile,
	}
	spec := containerSpec{image: "tako-executor:abc", jobType: jobtypes.JobType{Name: "data", Preload: []string{"numpy"}}, runtime: runtimeGVisor}
	job, jobHost := l.config(spec, slot{dir: "/work/slots/0123456789abcdef/aa"}, 200123)
	sent := *job
	sent.Labels = maps.Clone(job.Labels)
	rec := &recordingDocker{}
	if _, err := (floorLabeler{rec}).ContainerCreate(t.Context(), &sent, jobHost, nil, nil, "tako-x"); err == nil {
		t.Fatal("the recording engine created a container")
	}
	if len(rec.created) != 1 {
		t.Fatalf("%d creates, want 1", len(rec.created))
	}
	got := rec.created[0]
	if got.Labels[LabelKind] != "bench-floor" || sent.Labels[LabelKind] != "job" {
		t.Errorf("kind labels: created %q, the launcher's %q", got.Labels[LabelKind], sent.Labels[LabelKind])
	}
	if !slices.Equal(got.Cmd, bootstrap.Command(spec.jobType.Preload)) {
		t.Errorf("command %.60q, want the bootstrap's", got.Cmd)
	}
	f, j := *got, *job
	f.Labels, j.Labels = nil, nil
	if !reflect.DeepEqual(f, j) {
		t.Errorf("container configuration\n%+v\nwant the job's\n%+v", f, j)
	}
	for k, v := range job.Labels {
		if k != LabelKind && got.Labels[k] != v {
			t.Errorf("label %s = %q, want the job's %q", k, got.Labels[k], v)
		}
	}
}

// TestFloorProbeBootstrap starts the bootstrap floor's containers on the
// real engine, under runc and gVisor: each runs the job type's bootstrap
// with its configuration and the floor's label, is ready when
// StartBootstrap returns and gone, slot directory included, when its
// remove returns, also when several start at once; a start that fails
// leaves nothing behind.
func TestFloorProbeBootstrap(t *testing.T) {
	t.Parallel()
	dc, image := executor(t)
	gvisor := runnertest.GVisorRuntime(t, dc)
	jt := testJobType()
	for _, runtime := range []string{runtimeRunc, runtimeGVisor} {
		t.Run(runtime, func(t *testing.T) {
			t.Parallel()
			work := t.TempDir()
			p, err := NewFloorProbe(dc, FloorOptions{WorkDir: work, GVisorRuntime: gvisor, Image: image, JobType: jt, Runtime: runtime},
				slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			id := p.launch.instance.id
			slots := filepath.Join(work, "slots", id)
			// Only the probe's own slot directory is left between runs.
			settled := func(when string) {
				t.Helper()
				if n := containersOf(t, dc, id); n != 0 {
					t.Errorf("%s: %d containers left", when, n)
				}
				if entries, err := os.ReadDir(slots); err != nil || len(entries) != 1 {
					t.Errorf("%s: slot directories %v (%v), want the probe's own", when, entries, err)
				}
			}

			remove, err := p.StartBootstrap(t.Context())
			if err != nil {
				p.Close()
				t.Fatal(err)
			}
			list, err := dc.ContainerList(t.Context(), container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+id))})
			if err != nil || len(list) != 1 {
				t.Errorf("containers of the probe: %d, %v; want 1", len(list), err)
			} else {
				c, err := dc.ContainerInspect(t.Context(), list[0].ID)
				if err != nil {
					t.Fatal(err)
				}
				if c.Config.Labels[LabelKind] != "bench-floor" || c.Config.Labels[LabelJobType] != jt.Name {
					t.Errorf("labels %v", c.Config.Labels)
				}
				if !slices.Equal(c.Config.Cmd, bootstrap.Command(jt.Preload)) {
					t.Errorf("command %.60q, want the bootstrap's", c.Config.Cmd)
				}
				if !c.State.Running || c.Config.User == "" || !c.HostConfig.ReadonlyRootfs {
					t.Errorf("running %v, user %q, read-only root %v", c.State.Running, c.Config.User, c.HostConfig.ReadonlyRootfs)
				}
				if want := map[string]string{runtimeRunc: "runc", runtimeGVisor: gvisor}[runtime]; c.HostConfig.Runtime != want {
					t.Errorf("runtime %q, want %q", c.HostConfig.Runtime, want)
				}
			}
			remove()
			settled("after remove")

			// Two at once, as the churn floor runs them: neither waits for
			// the other's removal.
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for range 2 {
				wg.Go(func() {
					remove, err := p.StartBootstrap(t.Context())
					if err != nil {
						errs <- err
						return
					}
					remove()
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent start: %v", err)
			}
			settled("after concurrent starts")

			// A start whose context has ended fails, and undoes itself
			// before it returns.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if remove, err := p.StartBootstrap(ctx); !errors.Is(err, context.Canceled) || remove != nil ||
				!strings.HasPrefix(err.Error(), "bootstrap floor: ") {
				t.Errorf("StartBootstrap after cancel: %v", err)
			}
			settled("after a failed start")

			p.Close()
			if _, err := os.Stat(slots); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the probe's slot directories are left after Close: %v", err)
			}
		})
	}
}
