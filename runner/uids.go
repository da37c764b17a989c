package runner

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// UIDRange is the range of host uids that job containers run as.
type UIDRange struct {
	First int // the first uid
	Count int // how many uids from First
}

// DefaultUIDRange is runner.uid_range's default, 200000-265535: far above
// the uids of real accounts, in the space that user namespaces usually
// take for subordinate ids.
var DefaultUIDRange = UIDRange{First: 200000, Count: 65536}

// uidPool hands every job container a uid of its own from a range, so that
// no job runs as a real account and per-user kernel limits and file
// ownership keep jobs apart. A uid is claimed by a symlink named after it
// in the work directory, which every tako instance on the host shares,
// pointing at the claiming instance's lock file: a claim of an instance
// that is gone is freed by the reaper.
type uidPool struct {
	dir      string // workDir/uids
	lockPath string // the owning instance's lock file
	r        UIDRange
}

func newUIDPool(workDir, lockPath string, r UIDRange) (*uidPool, error) {
	if r.Count <= 0 {
		r = DefaultUIDRange
	}
	dir := filepath.Join(workDir, "uids")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create uid claims: %w", err)
	}
	return &uidPool{dir: dir, lockPath: lockPath, r: r}, nil
}

// maxClaimTries bounds the random picks claim makes before it gives up: a
// range this full has more containers than any host runs.
const maxClaimTries = 64

// claim takes a free uid.
func (p *uidPool) claim() (int, error) {
	for range maxClaimTries {
		uid := p.r.First + rand.IntN(p.r.Count)
		err := os.Symlink(p.lockPath, p.path(uid))
		if err == nil {
			return uid, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return 0, fmt.Errorf("claim uid: %w", err)
		}
	}
	return 0, fmt.Errorf("claim uid: no free uid found in %d tries in %d-%d (runner.uid_range)", maxClaimTries, p.r.First, p.r.First+p.r.Count-1)
}

// release frees uid, if this instance holds it.
func (p *uidPool) release(uid int) {
	if target, err := os.Readlink(p.path(uid)); err == nil && target == p.lockPath {
		os.Remove(p.path(uid))
	}
}

func (p *uidPool) path(uid int) string { return filepath.Join(p.dir, strconv.Itoa(uid)) }

// reapUIDs frees the uids claimed in workDir by instances that are gone.
func reapUIDs(workDir string) {
	entries, _ := os.ReadDir(filepath.Join(workDir, "uids"))
	for _, e := range entries {
		path := filepath.Join(workDir, "uids", e.Name())
		if owner, err := os.Readlink(path); err == nil && gone(owner) {
			os.Remove(path)
		}
	}
}
