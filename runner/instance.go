package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/errdefs"
)

// instance is this process's identity on a Docker host shared with other
// tako nodes. It holds an exclusive flock on its lock file for as long as the
// process lives, so a neighbour can tell a live instance from a dead one: a
// lock file that nobody holds belongs to an instance that is gone.
type instance struct {
	id       string
	lockPath string
	lock     *os.File
	slotsDir string
}

// NewInstanceID returns a fresh id for a tako instance.
func NewInstanceID() string { return randomHex(8) }

// LockPath is the lock file of instance id in workDir: whoever holds its
// lock is that instance, alive.
func LockPath(workDir, id string) string { return filepath.Join(workDir, "instances", id+".lock") }

// acquireInstance creates the lock file of instance id under workDir and
// takes its lock.
func acquireInstance(workDir, id string) (*instance, error) {
	lockDir := filepath.Join(workDir, "instances")
	slotsDir := filepath.Join(workDir, "slots", id)
	for _, d := range []string{lockDir, slotsDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
	}
	lockPath := LockPath(workDir, id)
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create instance lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock instance file %s: %w", lockPath, err)
	}
	fmt.Fprintf(f, "pid %d\n", os.Getpid())
	return &instance{id: id, lockPath: lockPath, lock: f, slotsDir: slotsDir}, nil
}

// release removes the instance's files and drops its lock. It is idempotent.
func (in *instance) release() {
	if in.lock == nil {
		return
	}
	removeTree(in.slotsDir)
	os.Remove(in.lockPath)
	in.lock.Close()
	in.lock = nil
}

// gone reports whether the instance owning lockPath is provably dead: its
// lock file is missing from a directory this process sees, or nobody
// holds its lock. A lock whose directory this process cannot see belongs
// to another file system view, such as a node in a container with a work
// directory of its own: it may live. It never blocks.
func gone(lockPath string) bool {
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		_, err := os.Stat(filepath.Dir(lockPath))
		return err == nil
	}
	if err != nil {
		return false // cannot tell: assume it lives
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// reap removes the containers and slot directories of tako instances that
// are gone, never those of a live neighbour. It returns how many containers
// it removed.
func reap(ctx context.Context, docker dockerAPI, self *instance, workDir string, logger *slog.Logger) (int, error) {
	list, err := docker.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true")),
	})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	removed := 0
	deadLocks := map[string]bool{}
	for _, c := range list {
		owner, lockPath := c.Labels[LabelInstance], c.Labels[LabelLock]
		if owner == "" || owner == self.id || lockPath == "" {
			continue
		}
		dead, seen := deadLocks[lockPath]
		if !seen {
			dead = gone(lockPath)
			deadLocks[lockPath] = dead
		}
		if !dead {
			continue
		}
		dir := c.Labels[LabelSlot]
		if !strings.HasPrefix(dir, filepath.Dir(filepath.Dir(lockPath))) {
			dir = "" // not in the dead instance's work directory: not ours to touch
		}
		var err error
		remove := func() {
			err = docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
		if dir != "" {
			slot{dir: dir}.unblocking(remove)
		} else {
			remove()
		}
		if err != nil && !errdefs.IsNotFound(err) {
			logger.Warn("remove orphaned container", "container_id", c.ID, "instance", owner, "error", err)
			continue
		}
		removed++
		if dir != "" {
			removeTree(dir)
		}
	}
	// Lock files in our own work directory whose owners are gone: remove
	// their slot directories and the lock files themselves.
	locks, _ := filepath.Glob(filepath.Join(workDir, "instances", "*.lock"))
	for _, lp := range locks {
		id := strings.TrimSuffix(filepath.Base(lp), ".lock")
		if id == self.id || !gone(lp) {
			continue
		}
		removeTree(filepath.Join(workDir, "slots", id))
		os.Remove(lp)
	}
	if removed > 0 {
		logger.Info("removed containers of instances that are gone", "count", removed)
	}
	return removed, nil
}
