package runner

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// countingDocker is the real engine, counting the calls a job can make.
type countingDocker struct {
	dockerAPI
	mu    sync.Mutex
	calls map[string]int
}

func (d *countingDocker) count(call string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls[call]++
}

func (d *countingDocker) snapshot() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.calls)
}

func (d *countingDocker) ContainerAttach(ctx context.Context, id string, o container.AttachOptions) (types.HijackedResponse, error) {
	d.count("attach")
	return d.dockerAPI.ContainerAttach(ctx, id, o)
}

func (d *countingDocker) ContainerCreate(ctx context.Context, c *container.Config, h *container.HostConfig, n *network.NetworkingConfig, p *ocispec.Platform, name string) (container.CreateResponse, error) {
	d.count("create")
	return d.dockerAPI.ContainerCreate(ctx, c, h, n, p, name)
}

func (d *countingDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	d.count("inspect")
	return d.dockerAPI.ContainerInspect(ctx, id)
}

func (d *countingDocker) ContainerKill(ctx context.Context, id, signal string) error {
	d.count("kill")
	return d.dockerAPI.ContainerKill(ctx, id, signal)
}

func (d *countingDocker) ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error {
	d.count("remove")
	return d.dockerAPI.ContainerRemove(ctx, id, o)
}

func (d *countingDocker) ContainerStart(ctx context.Context, id string, o container.StartOptions) error {
	d.count("start")
	return d.dockerAPI.ContainerStart(ctx, id, o)
}

func (d *countingDocker) ContainerWait(ctx context.Context, id string, c container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	d.count("wait")
	return d.dockerAPI.ContainerWait(ctx, id, c)
}

// startCountingRunner starts a runner for jt over a counting client.
func startCountingRunner(t *testing.T, dc *client.Client, image string, jt jobtypes.JobType) (*Runner, *countingDocker) {
	t.Helper()
	counted := &countingDocker{dockerAPI: dc, calls: map[string]int{}}
	r := New(counted, Options{
		AcquireTimeout: 30 * time.Second,
		Images:         map[string]string{jt.Name: image},
		JobTypes:       []jobtypes.JobType{jt},
		Limits:         testLimits(),
		MaxConcurrent:  2,
		WorkDir:        t.TempDir(),
	}, slog.New(slog.DiscardHandler))
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(r.Stop)
	return r, counted
}

// callsOfJobs runs n print(1+1) jobs one after another and returns the
// container calls they cost, up to the pool's refill and the used
// containers' removal.
func callsOfJobs(t *testing.T, r *Runner, counted *countingDocker, jt jobtypes.JobType, n int, want jobs.Start) map[string]int {
	t.Helper()
	settle := func() {
		if jt.Pool.Max > 0 {
			waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == jt.Pool.Max && s.Busy == 0 })
		}
		r.launch.wait()
	}
	settle()
	before := counted.snapshot()
	for i := range n {
		res, err := r.Execute(context.Background(), Request{JobType: jt, Code: "print(1+1)"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != jobs.StatusSucceeded || res.Start != want {
			t.Fatalf("job %d: status %s, start %s (want %s), stderr %q", i, res.Status, res.Start, want, res.Stderr)
		}
		settle()
	}
	after := counted.snapshot()
	diff := map[string]int{}
	for call, k := range after {
		if d := k - before[call]; d != 0 {
			diff[call] = d
		}
	}
	return diff
}

// TestDockerCallsPerJob proves the engine work a job costs, warm or cold:
// one create, one start and one forced remove, and nothing else (no
// inspect, wait, kill or attach on a job that ends normally).
func TestDockerCallsPerJob(t *testing.T) {
	dc, image := executor(t)
	const n = 3
	want := map[string]int{"create": n, "start": n, "remove": n}
	t.Run("warm", func(t *testing.T) {
		jt := pooledJobType(1, 1, time.Minute)
		r, counted := startCountingRunner(t, dc, image, jt)
		if got := callsOfJobs(t, r, counted, jt, n, jobs.StartWarm); !maps.Equal(got, want) {
			t.Errorf("%d warm jobs and their refills cost %v, want %v", n, got, want)
		}
	})
	t.Run("cold", func(t *testing.T) {
		jt := testJobType()
		r, counted := startCountingRunner(t, dc, image, jt)
		if got := callsOfJobs(t, r, counted, jt, n, jobs.StartCold); !maps.Equal(got, want) {
			t.Errorf("%d cold jobs cost %v, want %v", n, got, want)
		}
	})
}
