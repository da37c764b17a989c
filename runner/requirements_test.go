package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/images"
)

// sameImage stands in for the image builder: every requirement set's image
// is the base image itself, and a job type's image is whatever jobType
// returns. It lets the runner's pools be tested without building.
type sameImage struct{ jobType string }

func (s sameImage) EnsureJobType(context.Context, jobtypes.JobType) (string, error) {
	return s.jobType, nil
}

func (sameImage) EnsureRequirements(_ context.Context, set images.RequirementSet) (string, error) {
	return set.Base, nil
}

func (sameImage) CollectRequirements(context.Context, int, int64, func(string) bool) ([]string, error) {
	return nil, nil
}

// TestHotPoolsBelongToTheirJobType: two job types, one without network
// and one with the bridge and env of its own, use the same requirement set
// until each has a hot pool. A job of the first never gets a container
// started for the second.
func TestHotPoolsBelongToTheirJobType(t *testing.T) {
	dc, image := executor(t)
	quiet := testJobType()
	quiet.Name = "quiet"
	loud := testJobType()
	loud.Name, loud.Network, loud.Env = "loud", jobtypes.NetworkBridge, map[string]string{"LOUD": "1"}
	// Demand is remembered for the idle TTL: with none, a hot pool's target
	// falls back to zero as soon as its job ends, and a container start
	// that fails on a loaded machine is never tried again.
	quiet.Pool.IdleTTL, loud.Pool.IdleTTL = 5*time.Minute, 5*time.Minute
	r := startRunnerWith(t, dc, Options{
		Images:        map[string]string{"quiet": image, "loud": image},
		JobTypes:      []jobtypes.JobType{quiet, loud},
		MaxConcurrent: 2,
		Requirements:  sameImage{},
		WorkDir:       t.TempDir(),
	})
	probe := `import os, socket
print(os.environ.get('LOUD'), sorted(n for _, n in socket.if_nameindex()))`
	runAs := func(jt jobtypes.JobType) *jobs.Result {
		t.Helper()
		res, err := r.Execute(context.Background(), Request{JobType: jt, Code: probe, Requirements: []string{"takotiny"}})
		if err != nil || res.Status != jobs.StatusSucceeded {
			t.Fatalf("%s: %v %+v", jt.Name, err, res)
		}
		return res
	}
	for range hotAfter {
		runAs(loud)
	}
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st, _ := r.poolTotals("loud")
		if st.Warm >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loud job type's hot pool never filled: %+v", st)
		}
	}
	for i := range hotAfter + 3 {
		res := runAs(quiet)
		if res.Stdout != "None ['lo']\n" {
			t.Fatalf("quiet job %d (%s) ran in a loud container: %q", i, res.Start, res.Stdout)
		}
	}
	if st, _ := r.poolTotals("quiet"); st.Hits == 0 {
		t.Errorf("the quiet job type's hot pool was never used: %+v", st)
	}
}

// TestPoolRollsOverToARebuiltImage: after Build gives a job type a new
// image, its pool's ready containers are replaced by containers of the new
// image, and jobs run in those.
func TestPoolRollsOverToARebuiltImage(t *testing.T) {
	dc, base := executor(t)
	rebuilt := "tako-test-rollover:" + randomHex(4)
	if err := dc.ImageTag(context.Background(), base, rebuilt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.ImageRemove(context.Background(), rebuilt, image.RemoveOptions{}) })
	jt := pooledJobType(2, 2, time.Minute)
	r := startRunnerWith(t, dc, Options{
		Images:        map[string]string{jt.Name: base},
		JobTypes:      []jobtypes.JobType{jt},
		MaxConcurrent: 2,
		Requirements:  sameImage{jobType: rebuilt},
		WorkDir:       t.TempDir(),
	})
	waitPool(t, r, jt.Name, func(s PoolStats) bool { return s.Warm == 2 })
	if ref, err := r.Build(context.Background(), jt); err != nil || ref != rebuilt {
		t.Fatalf("Build = %q, %v", ref, err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st, _ := r.PoolStats(jt.Name)
		images := poolImages(t, dc, r.InstanceID())
		if st.Warm == 2 && len(images) == 2 && images[0] == rebuilt && images[1] == rebuilt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool never rolled over: %+v, containers of %v", st, images)
		}
	}
	res, err := r.Execute(context.Background(), Request{JobType: jt, Code: "print('new')"})
	if err != nil || res.Image != rebuilt || res.Start != jobs.StartWarm {
		t.Errorf("job after the rebuild: %v, image %s, start %s", err, res.Image, res.Start)
	}
}

// poolImages returns the images of the instance's running job containers.
func poolImages(t *testing.T, dc *client.Client, instance string) []string {
	t.Helper()
	list, err := dc.ContainerList(context.Background(), container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+instance)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		out = append(out, strings.TrimPrefix(c.Image, "docker.io/library/"))
	}
	return out
}
