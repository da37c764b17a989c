package runner

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tako-run/tako/runner/bootstrap"
)

// slot is a job container's host-side directory. Its code and input
// subdirectories are bind-mounted read-only at /code and /input, and output
// read-write at /output. The container is created before the job is known
// (that is what lets a pool prewarm it), so the host writes the program and
// its input into the mounted directories just before the trigger.
type slot struct {
	dir string
}

func (s slot) code() string    { return filepath.Join(s.dir, "code") }
func (s slot) input() string   { return filepath.Join(s.dir, "input") }
func (s slot) output() string  { return filepath.Join(s.dir, "output") }
func (s slot) control() string { return filepath.Join(s.dir, "tako") }

// fifo is the path of one of the bootstrap's FIFOs.
func (s slot) fifo(name string) string { return filepath.Join(s.control(), name) }

// newSlot creates a fresh slot directory under parent for a container that
// runs as uid: /output and the FIFOs are the uid's, the rest root's and
// read-only to it.
func newSlot(parent string, uid int) (slot, error) {
	s := slot{dir: filepath.Join(parent, randomHex(8))}
	if err := os.Mkdir(s.dir, 0o711); err != nil {
		return slot{}, fmt.Errorf("create slot: %w", err)
	}
	for _, d := range []string{s.code(), s.input()} {
		if err := os.Mkdir(d, 0o755); err != nil {
			s.remove()
			return slot{}, fmt.Errorf("create slot: %w", err)
		}
	}
	if err := os.Mkdir(s.output(), 0o755); err != nil {
		s.remove()
		return slot{}, fmt.Errorf("create slot: %w", err)
	}
	if err := os.Chown(s.output(), uid, uid); err != nil {
		s.remove()
		return slot{}, fmt.Errorf("create slot: %w", err)
	}
	// The bootstrap's standard streams and trigger: FIFOs that tako reads
	// and writes directly, bind-mounted read-only (a FIFO on a read-only
	// mount can still be opened for writing).
	if err := os.Mkdir(s.control(), 0o755); err != nil {
		s.remove()
		return slot{}, fmt.Errorf("create slot: %w", err)
	}
	for _, name := range []string{bootstrap.StdoutFIFO, bootstrap.StderrFIFO, bootstrap.TriggerFIFO} {
		path := s.fifo(name)
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			s.remove()
			return slot{}, fmt.Errorf("create slot: %w", err)
		}
		if err := os.Chown(path, uid, uid); err != nil {
			s.remove()
			return slot{}, fmt.Errorf("create slot: %w", err)
		}
	}
	return s, nil
}

// unblocking runs fn, a kill or removal of the slot's container, while it
// keeps releasing whatever in the container waits in open(2) on one of the
// slot's FIFOs: gVisor opens host FIFOs blocking, and a sandbox blocked
// there cannot be killed, so the engine would give up on it after 10 s and
// leave it running. An open of the other end, at once closed, lets such an
// open return; what the bootstrap then reads or writes fails or ends.
func (s slot) unblocking(fn func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, end := range []struct {
				name string
				flag int
			}{
				{bootstrap.TriggerFIFO, os.O_WRONLY},
				{bootstrap.StdoutFIFO, os.O_RDONLY},
				{bootstrap.StderrFIFO, os.O_RDONLY},
			} {
				if f, err := os.OpenFile(s.fifo(end.name), end.flag|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0); err == nil {
					f.Close()
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	defer close(done)
	fn()
}

// fill writes the program and its input, read-only for the container.
func (s slot) fill(code string, input []byte) error {
	if input == nil {
		input = []byte("{}")
	}
	if err := os.WriteFile(filepath.Join(s.code(), "main.py"), []byte(code), 0o444); err != nil {
		return fmt.Errorf("write code: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.input(), "data.json"), input, 0o444); err != nil {
		return fmt.Errorf("write input: %w", err)
	}
	return nil
}

// remove removes the slot directory and everything the program left in it.
func (s slot) remove() error { return removeTree(s.dir) }

// maxRemoveDepth bounds the directories removeTree holds open at once.
const maxRemoveDepth = 32

// removeTree removes dir and everything in it, like os.RemoveAll. But
// os.RemoveAll holds one open file per directory level, and a program can
// nest directories in /output deeper than the server may open files: the
// removal then failed with EMFILE, leaving the slot directory on the host
// for good, and while it tried it held every descriptor the server had, so
// that other jobs and requests failed too. So removeTree first moves every
// directory nested more than maxRemoveDepth levels below dir up into dir,
// under a fresh name, and os.RemoveAll never goes deeper than that. It
// opens each directory relative to its parent without following symlinks,
// so a process still changing the tree cannot make it touch anything
// outside dir.
func removeTree(dir string) error {
	top, err := os.Open(dir)
	if err != nil {
		return os.RemoveAll(dir)
	}
	queue := hoistDeep(top, top, 0)
	for len(queue) > 0 {
		d, err := openDirAt(top, queue[0])
		queue = queue[1:]
		if err != nil {
			continue
		}
		queue = append(queue, hoistDeep(top, d, 1)...)
		d.Close()
	}
	top.Close()
	return os.RemoveAll(dir)
}

// hoistDeep walks d, which is depth levels below top, and moves the
// directories maxRemoveDepth levels below top up into top. It returns their
// new names, to be walked in turn.
func hoistDeep(top, d *os.File, depth int) []string {
	// Read the whole directory before changing it: renaming entries away
	// while reading it in batches could skip some.
	entries, _ := d.ReadDir(-1)
	var moved []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if depth+1 >= maxRemoveDepth {
			name := "deep-" + randomHex(8)
			if syscall.Renameat(int(d.Fd()), e.Name(), int(top.Fd()), name) == nil {
				moved = append(moved, name)
			}
			continue
		}
		child, err := openDirAt(d, e.Name())
		if err != nil {
			continue
		}
		moved = append(moved, hoistDeep(top, child, depth+1)...)
		child.Close()
	}
	return moved
}

// openDirAt opens the directory name in parent, failing on a symlink.
func openDirAt(parent *os.File, name string) (*os.File, error) {
	fd, err := syscall.Openat(int(parent.Fd()), name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b)
}
