package images

import (
	"context"
	"sync"
)

// flights lets concurrent callers share one build per image ref. The build
// runs on its own context so that one caller giving up does not fail the
// others; it is cancelled only when every caller waiting for it has gone,
// and the last one to go waits for it to wind down (kill its tools, remove
// its temporary files) so that nothing is left running behind a return.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one build in progress and, once done is closed, its result.
type flight struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int
	built   bool
	err     error
}

// do runs fn for key unless a run for key is already in flight, and waits
// for that run's result or for ctx to end.
func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (bool, error)) (bool, error) {
	f.mu.Lock()
	fl, ok := f.m[key]
	if !ok {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		go func() {
			built, err := fn(fctx)
			f.mu.Lock()
			fl.built, fl.err = built, err
			if f.m[key] == fl {
				delete(f.m, key)
			}
			f.mu.Unlock()
			cancel()
			close(fl.done)
		}()
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		return fl.built, fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		last := fl.waiters == 0
		if last {
			fl.cancel()
			// Whoever asks next starts afresh instead of joining a
			// cancelled build.
			if f.m[key] == fl {
				delete(f.m, key)
			}
		}
		f.mu.Unlock()
		if last {
			<-fl.done
		}
		return false, ctx.Err()
	}
}
