package runner

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tako-run/tako/internal/loop"
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
// maxOutputEntries stats. The program may change the tree while it is
// walked, so every directory is opened relative to its parent's descriptor
// without following a symlink, as removeTree does: swapping a directory for
// a link to / cannot make the walk leave /output.
func overLimit(dir string, maxBytes int64) string {
	top, err := os.Open(dir)
	if err != nil {
		return "" // gone: the next look sees it
	}
	defer top.Close()
	var u outputUsage
	var walk func(d *os.File, depth int) string
	walk = func(d *os.File, depth int) string {
		u.depth = max(u.depth, depth)
		if depth > maxOutputDepth {
			return fmt.Sprintf("nested directories more than %d levels deep in /output", maxOutputDepth)
		}
		entries, err := d.ReadDir(-1)
		if err != nil {
			return "" // changing under us: the next look sees it
		}
		for _, e := range entries {
			u.entries++
			if u.entries > maxOutputEntries {
				return fmt.Sprintf("more than %d files and directories in /output", maxOutputEntries)
			}
			var st unix.Stat_t
			if unix.Fstatat(int(d.Fd()), e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
				continue
			}
			u.bytes += st.Blocks * 512
			if u.bytes > maxBytes {
				return fmt.Sprintf("more than %s written to /output (limits.max_output_bytes)", jobtypes.FormatSize(maxBytes))
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			child, err := openDirAt(d, e.Name())
			if err != nil {
				continue // not a directory any more, or a link now
			}
			why := walk(child, depth+1)
			child.Close()
			if why != "" {
				return why
			}
		}
		return ""
	}
	return walk(top, 0)
}

// watchOutput measures dir every outputWatchEvery until ctx is done, and
// sends on the returned channel, once, why the program must stop.
func watchOutput(ctx context.Context, dir string, maxBytes int64) <-chan string {
	over := make(chan string, 1)
	if maxBytes <= 0 {
		return over
	}
	go loop.Every(ctx, outputWatchEvery, func() bool {
		if why := overLimit(dir, maxBytes); why != "" {
			over <- why
			return false
		}
		return true
	})
	return over
}
