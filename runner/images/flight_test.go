package images

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestFlightsShareOneRun(t *testing.T) {
	t.Parallel()
	f := flights{m: map[string]*flight{}}
	var runs atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]error, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = f.do(context.Background(), "k", func(context.Context) (bool, error) {
				runs.Add(1)
				<-release
				return true, errors.New("shared")
			})
		}()
	}
	// Every caller has joined once five waiters are registered.
	for {
		f.mu.Lock()
		fl := f.m["k"]
		joined := fl != nil && fl.waiters == len(results)
		f.mu.Unlock()
		if joined {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1", n)
	}
	for i, err := range results {
		if err == nil || err.Error() != "shared" {
			t.Errorf("caller %d got %v", i, err)
		}
	}
}

func TestFlightsCancelWhenAllWaitersLeave(t *testing.T) {
	t.Parallel()
	f := flights{m: map[string]*flight{}}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	_, err := f.do(ctx, "k", func(ctx context.Context) (bool, error) {
		close(started)
		<-ctx.Done()
		close(stopped)
		return false, ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("do = %v, want context.Canceled", err)
	}
	select {
	case <-stopped: // the last caller returned only after the build ended
	default:
		t.Fatal("do returned while the cancelled build was still running")
	}
}
