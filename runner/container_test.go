package runner

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
