// Package testsync holds what tests in several packages share to take
// turns and to read what concurrent work writes: the image build lock and
// a goroutine-safe buffer. Only tests import it.
package testsync

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// LockImages makes test processes that build shared images take turns, so
// each image is built once. It holds the lock until the test ends.
func LockImages(t testing.TB) {
	t.Helper()
	t.Cleanup(LockImagesUntil(t))
}

// LockImagesUntil is LockImages for a holder that releases the lock itself:
// it returns the unlock function.
func LockImagesUntil(t testing.TB) func() {
	t.Helper()
	path := filepath.Join(os.TempDir(), "tako-test-images.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

// Buffer is a bytes.Buffer that concurrent writers and a reading test can
// share, such as a build's progress writer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
