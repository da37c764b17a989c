package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// /output is a directory on the host's disk, and no file system quota
// bounds it: the fsize ulimit caps one file, not how many a program writes.
// While a program runs, a watcher measures /output and stops the program
// once it takes more than limits.max_output_bytes of disk, or holds more
// entries or deeper directories than collecting or removing it should ever
// have to walk.
const (
	// outputWatchEvery is how often /output is measured while a program
	// runs. A program can write for at most this long past the limit.
	outputWatchEvery = 250 * time.Millisecond
	// maxOutputEntries bounds the files and directories in /output.
	maxOutputEntries = 10_000
	// maxOutputDepth bounds how deep directories nest in /output.
	maxOutputDepth = 32
)

// outputUsage is what a walk of /output found.
type outputUsage struct {
	bytes   int64 // disk space taken, in allocated blocks
	entries int
	depth   int // the deepest directory level seen; /output itself is 0
}

// overLimit measures dir and says which bound it breaks, "" when none. It
// stops walking as soon as one is broken, so a hostile tree costs at most
// maxOutputEntries stats.
func overLimit(dir string, maxBytes int64) string {
	var u outputUsage
	var walk func(path string, depth int) string
	walk = func(path string, depth int) string {
		u.depth = max(u.depth, depth)
		if depth > maxOutputDepth {
			return fmt.Sprintf("nested directories more than %d levels deep in /output", maxOutputDepth)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return "" // gone or changing under us: the next look sees it
		}
		for _, e := range entries {
			u.entries++
			if u.entries > maxOutputEntries {
				return fmt.Sprintf("more than %d files and directories in /output", maxOutputEntries)
			}
			info, err := e.Info() // lstat: links are not followed
			if err != nil {
				continue
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				u.bytes += st.Blocks * 512
			}
			if u.bytes > maxBytes {
				return fmt.Sprintf("more than %s written to /output (limits.max_output_bytes)", jobtypes.FormatSize(maxBytes))
			}
			if e.IsDir() {
				if why := walk(filepath.Join(path, e.Name()), depth+1); why != "" {
					return why
				}
			}
		}
		return ""
	}
	return walk(dir, 0)
}

// watchOutput measures dir every outputWatchEvery until ctx is done, and
// sends on the returned channel, once, why the program must stop.
func watchOutput(ctx context.Context, dir string, maxBytes int64) <-chan string {
	over := make(chan string, 1)
	if maxBytes <= 0 {
		return over
	}
	go func() {
		t := time.NewTicker(outputWatchEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if why := overLimit(dir, maxBytes); why != "" {
					over <- why
					return
				}
			}
		}
	}()
	return over
}
