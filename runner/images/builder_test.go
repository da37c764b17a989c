package images

import (
	"context"
	"fmt"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobtypes"
)

// fakeDocker knows a fixed set of local images; any other call panics
// through the nil embedded interface.
type fakeDocker struct {
	DockerAPI
	images map[string]image.InspectResponse
}

func (f fakeDocker) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	if info, ok := f.images[ref]; ok {
		return info, nil
	}
	return image.InspectResponse{}, fmt.Errorf("no such image: %s: %w", ref, cerrdefs.ErrNotFound)
}

func TestEnsureAllReportsExecutorFailureOnce(t *testing.T) {
	t.Parallel()
	docker := fakeDocker{images: map[string]image.InspectResponse{
		"python:3.12-slim": {ID: "sha256:aaaa"},
	}}
	b := NewBuilder(docker, Options{aptDir: t.TempDir()}, nil, nil)
	refs, err := b.EnsureAll(context.Background(), []jobtypes.JobType{
		{Name: "default"},
		{Name: "data", SystemPackages: []string{"python3-numpy"}},
		{Name: "custom", Image: "python:3.12-slim"},
	})
	if err == nil {
		t.Fatal("EnsureAll succeeded without a Debian mirror")
	}
	if n := strings.Count(err.Error(), "no Debian mirror found"); n != 1 {
		t.Errorf("executor failure reported %d times: %v", n, err)
	}
	if !strings.HasPrefix(err.Error(), "build executor image: no Debian mirror found in /etc/apt/sources*; set images.debian_mirror") {
		t.Errorf("error = %v", err)
	}
	if len(refs) != 1 || refs["custom"] != "python:3.12-slim" {
		t.Errorf("refs = %v, want only the custom image", refs)
	}
}

func TestLookupWithoutBuilding(t *testing.T) {
	t.Parallel()
	b := NewBuilder(nil, Options{}, nil, nil)
	executor := b.ExecutorRef()
	b.docker = fakeDocker{images: map[string]image.InspectResponse{executor: {ID: "sha256:bbbb"}}}
	ctx := context.Background()

	ref, exists, err := b.Lookup(ctx, jobtypes.JobType{Name: "default"})
	if err != nil || !exists || ref != executor {
		t.Errorf("Lookup(default) = %q, %v, %v", ref, exists, err)
	}
	data := jobtypes.JobType{Name: "data", SystemPackages: []string{"python3-numpy"}}
	ref, exists, err = b.Lookup(ctx, data)
	want := "tako-jt-data:" + data.BuildHash("sha256:bbbb", jobtypes.PipIndex{})
	if err != nil || exists || ref != want {
		t.Errorf("Lookup(data) = %q, %v, %v; want %q, not existing", ref, exists, err, want)
	}
	ref, exists, err = b.Lookup(ctx, jobtypes.JobType{Name: "x", Image: "missing:1", Requirements: []string{"a"}})
	if err != nil || exists || ref != "" {
		t.Errorf("Lookup on a missing base = %q, %v, %v", ref, exists, err)
	}
}

func TestEnsureExecutorWithoutDebootstrap(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no debootstrap anywhere
	b := NewBuilder(fakeDocker{}, Options{DebianMirror: "http://deb.example/debian", WorkDir: t.TempDir()}, nil, nil)
	_, err := b.EnsureExecutor(context.Background())
	want := "build executor image: debootstrap is not installed; install it with `apt-get install debootstrap` (needed to build the executor image without a registry)"
	if err == nil || err.Error() != want {
		t.Fatalf("EnsureExecutor = %v\nwant %s", err, want)
	}
}
