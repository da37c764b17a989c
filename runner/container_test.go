package runner

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"
)

// TestRemoveTreeDeep removes slot directories whose /output a program
// filled the way discard finds them, with the process's descriptor limit
// lowered below the deepest tree's depth: os.RemoveAll alone fails there
// with EMFILE. Symlinks in the tree are removed, never followed.
func TestRemoveTreeDeep(t *testing.T) {
	tests := []struct {
		name  string
		depth int // directories nested in output, each with a file
	}{
		{"missing", -1},
		{"empty output", 0},
		{"a few levels", 3},
		{"just at the bound", maxRemoveDepth},
		{"just past the bound", maxRemoveDepth + 1},
		{"deeper than the descriptor limit", 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := t.TempDir()
			keep := filepath.Join(outside, "keep")
			if err := os.WriteFile(keep, []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			slot := filepath.Join(t.TempDir(), "slot")
			if tt.depth >= 0 {
				out := filepath.Join(slot, "output")
				if err := os.MkdirAll(out, 0o755); err != nil {
					t.Fatal(err)
				}
				nest(t, out, tt.depth)
				for _, link := range []string{filepath.Join(out, "host"), filepath.Join(out, strings.Repeat("d/", min(tt.depth, 5))+"host")} {
					if err := os.Symlink(outside, link); err != nil && !errors.Is(err, fs.ErrExist) {
						t.Fatal(err)
					}
				}
			}

			err := withFileLimit(t, 512, func() error { return removeTree(slot) })
			if err != nil {
				t.Fatalf("removeTree: %v", err)
			}
			if _, err := os.Lstat(slot); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("slot still there: %v", err)
			}
			if b, err := os.ReadFile(keep); err != nil || string(b) != "host" {
				t.Errorf("file behind a symlink: %q %v", b, err)
			}
		})
	}
}

// nest makes depth directories "d" nested in dir, each with a file "f",
// without holding more than two descriptors.
func nest(t *testing.T, dir string, depth int) {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		if err := syscall.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := syscall.Openat(fd, "f", syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(f)
		next, err := syscall.Openat(fd, "d", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
		fd = next
	}
	syscall.Close(fd)
}

// withFileLimit runs f with the soft limit on open files at n.
func withFileLimit(t *testing.T, n uint64, f func() error) error {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = min(n, old.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	return f()
}

// refusingDocker refuses the first refusals forced removals the way
// Docker 20.10 does for a container that is exiting by itself.
type refusingDocker struct {
	dockerAPI
	mu       sync.Mutex
	refusals int
	calls    int
}

func (d *refusingDocker) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls <= d.refusals {
		return errdefs.Conflict(errors.New("Could not kill running container " + id + ", cannot remove - Container " + id + " is not running"))
	}
	return errdefs.NotFound(errors.New("No such container: " + id))
}

func TestRemoveContainerTriesAgainWhileRefused(t *testing.T) {
	d := &refusingDocker{refusals: 2}
	l := &launcher{docker: d}
	if err := l.removeContainer("c1", removeAttempts); err != nil {
		t.Fatalf("a removal refused twice, then found gone: %v", err)
	}
	if d.calls != 3 {
		t.Errorf("%d removal calls, want 3", d.calls)
	}
	always := &refusingDocker{refusals: 100}
	l = &launcher{docker: always}
	if err := l.removeContainer("c2", 3); err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("a removal refused every time: %v", err)
	}
	if always.calls != 3 {
		t.Errorf("%d removal calls, want 3", always.calls)
	}
}
