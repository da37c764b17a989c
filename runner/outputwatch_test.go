package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOverLimit(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(outside, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"empty", func(*testing.T, string) {}, ""},
		{"small files", func(t *testing.T, dir string) {
			for i := range 10 {
				write(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), 10<<10)
			}
		}, ""},
		{"too many bytes", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "a"), 600<<10)
			write(t, filepath.Join(dir, "b"), 600<<10)
		}, "more than 1MiB written to /output (limits.max_output_bytes)"},
		{"too many bytes in a subdirectory", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "x", "y"), 0o755)
			write(t, filepath.Join(dir, "x", "y", "a"), 2<<20)
		}, "limits.max_output_bytes"},
		{"a symlink to a big file is not followed", func(t *testing.T, dir string) {
			if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"too many entries", func(t *testing.T, dir string) {
			for i := range maxOutputEntries + 1 {
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("e%05d", i)))
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}, "more than 10000 files and directories in /output"},
		{"too deep", func(t *testing.T, dir string) {
			path := dir
			for range maxOutputDepth + 2 {
				path = filepath.Join(path, "d")
			}
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "nested directories more than 32 levels deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tt.setup(t, dir)
			got := overLimit(dir, 1<<20)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("overLimit = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWatchOutputStops(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	over := watchOutput(ctx, dir, 1<<20)
	select {
	case why := <-over:
		t.Fatalf("an empty directory is over: %s", why)
	case <-time.After(2 * outputWatchEvery):
	}
	write(t, filepath.Join(dir, "big"), 2<<20)
	select {
	case why := <-over:
		if !strings.Contains(why, "limits.max_output_bytes") {
			t.Errorf("why %q", why)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the watcher did not notice 2 MiB over a 1 MiB limit")
	}
}

// write writes n non-zero bytes, so that the file takes real blocks.
func write(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOverLimitDoesNotFollowLinks swaps a directory of the measured tree
// for a link to /usr and back, again and again, while overLimit measures
// the tree. Measured without following links, the tree is
// a few hundred files; through the link it would be /usr's tens of
// thousands.
func TestOverLimitDoesNotFollowLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 300 {
		write(t, filepath.Join(dir, fmt.Sprintf("f%03d", i)), 1)
	}
	// "zz": walks go in name order, so the files are measured first.
	d, tmp, link := filepath.Join(dir, "zz"), filepath.Join(dir, "tmp"), filepath.Join(dir, "link")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr", link); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				swapped <- n
				return
			default:
			}
			// A directory for 2 ms, then a link for 20: long enough for a
			// walk that followed it to count /usr past the limits.
			time.Sleep(2 * time.Millisecond)
			os.Rename(d, tmp)
			os.Rename(link, d)
			time.Sleep(20 * time.Millisecond)
			os.Rename(d, link)
			os.Rename(tmp, d)
			n++
		}
	}()
	for i := range 3000 {
		if why := overLimit(dir, 1<<30); why != "" {
			close(stop)
			<-swapped
			t.Fatalf("measurement %d: %s: the walk followed the link out of the tree", i, why)
		}
	}
	close(stop)
	t.Logf("%d swaps during 3000 measurements", <-swapped)
}
