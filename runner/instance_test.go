package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// TestStartReapsOnlyDeadInstances starts a runner next to a live
// neighbour and the leftovers of a dead instance sharing its work
// directory: the dead instance's container and slots go, the neighbour's
// stay.
func TestStartReapsOnlyDeadInstances(t *testing.T) {
	dc, image := executor(t)
	work := t.TempDir()
	ctx := context.Background()

	neighbour := startRunner(t, dc, image, work)
	live := idleContainer(t, dc, image, neighbour.launch.instance.id, neighbour.launch.instance.lockPath, "")

	// A dead instance: its lock file exists but nobody holds it.
	deadLock := filepath.Join(work, "instances", "deadbeef00000000.lock")
	if err := os.WriteFile(deadLock, []byte("pid 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadSlot := filepath.Join(work, "slots", "deadbeef00000000", "s1")
	if err := os.MkdirAll(deadSlot, 0o755); err != nil {
		t.Fatal(err)
	}
	dead := idleContainer(t, dc, image, "deadbeef00000000", deadLock, deadSlot)

	startRunner(t, dc, image, work)

	if _, err := dc.ContainerInspect(ctx, dead); !errdefs.IsNotFound(err) {
		t.Errorf("dead instance's container still exists (inspect error %v)", err)
	}
	if _, err := os.Stat(deadSlot); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead instance's slot directory still exists")
	}
	if _, err := os.Stat(deadLock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead instance's lock file still exists")
	}
	if _, err := dc.ContainerInspect(ctx, live); err != nil {
		t.Errorf("live neighbour's container was removed: %v", err)
	}
}

// idleContainer creates (without starting) a container labelled as a job
// container of instance id, removed at the end of the test.
func idleContainer(t *testing.T, dc *client.Client, image, id, lockPath, slotDir string) string {
	t.Helper()
	ctx := context.Background()
	c, err := dc.ContainerCreate(ctx, &container.Config{
		Image: image,
		Cmd:   []string{"true"},
		Labels: map[string]string{
			LabelManaged: "true", LabelKind: "job", LabelInstance: id, LabelLock: lockPath, LabelSlot: slotDir,
		},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
	return c.ID
}

// TestGone: an instance is gone when its lock is free, or missing from a
// directory this process sees; a lock in a directory it cannot see (a
// node in a container with its own work directory) may be alive.
func TestGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	free := filepath.Join(dir, "free.lock")
	if err := os.WriteFile(free, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		path string
		want bool
	}{
		{"a free lock", free, true},
		{"a missing lock in a directory this process sees", filepath.Join(dir, "missing.lock"), true},
		{"a lock in a directory this process cannot see", filepath.Join(dir, "elsewhere", "instances", "x.lock"), false},
	} {
		if got := gone(tt.path); got != tt.want {
			t.Errorf("%s: gone = %v, want %v", tt.name, got, tt.want)
		}
	}
}
