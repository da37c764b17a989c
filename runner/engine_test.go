package runner

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pendingStart is a start asked for by startSlot in the background.
type pendingStart struct {
	end chan func()
	err chan error
}

func askStart(e *engineWork, ctx context.Context, p priority) pendingStart {
	ps := pendingStart{end: make(chan func(), 1), err: make(chan error, 1)}
	go func() {
		end, err := e.startSlot(ctx, p)
		if err != nil {
			ps.err <- err
			return
		}
		ps.end <- end
	}()
	return ps
}

// waiters is how many starts wait, by priority.
func waiters(e *engineWork) (int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.waiting[urgent]), len(e.waiting[refill])
}

// untilWaiting waits until e has u cold starts and r refills waiting.
func untilWaiting(t *testing.T, e *engineWork, u, r int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gotU, gotR := waiters(e)
		if gotU == u && gotR == r {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting starts = %d cold, %d refills; want %d, %d", gotU, gotR, u, r)
		}
		time.Sleep(time.Millisecond)
	}
}

func (ps pendingStart) mustBeGranted(t *testing.T, what string) func() {
	t.Helper()
	select {
	case end := <-ps.end:
		return end
	case err := <-ps.err:
		t.Fatalf("%s: %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not let through", what)
	}
	return nil
}

func (ps pendingStart) mustWait(t *testing.T, what string) {
	t.Helper()
	select {
	case end := <-ps.end:
		end()
		t.Fatalf("%s was let through, want it to wait", what)
	case err := <-ps.err:
		t.Fatalf("%s: %v", what, err)
	default:
	}
}

func TestEngineWorkOneStartAtATimeColdFirst(t *testing.T) {
	e := &engineWork{maxStarts: 1, maxRemovals: 1, maxBacklog: 4}
	ctx := context.Background()
	first, err := e.startSlot(ctx, refill)
	if err != nil {
		t.Fatal(err)
	}
	r1 := askStart(e, ctx, refill)
	untilWaiting(t, e, 0, 1)
	cold := askStart(e, ctx, urgent)
	untilWaiting(t, e, 1, 1)
	r1.mustWait(t, "a refill while another start runs")
	cold.mustWait(t, "a cold start while another start runs")

	first()
	endCold := cold.mustBeGranted(t, "the cold start, which came after the refill")
	untilWaiting(t, e, 0, 1)
	r1.mustWait(t, "the refill while the cold start runs")
	endCold()
	r1.mustBeGranted(t, "the refill")()
	untilWaiting(t, e, 0, 0)
	if e.starting != 0 {
		t.Errorf("starting = %d after every start ended", e.starting)
	}
}

func TestEngineWorkRefillsWaitForRemovals(t *testing.T) {
	e := &engineWork{maxStarts: 1, maxRemovals: 1, maxBacklog: 2}
	ctx := context.Background()
	// One removal runs and blocks; three more wait: a backlog of 3 > 2.
	release := make(chan struct{})
	removed := make(chan int, 4)
	for i := range 4 {
		e.remove(func() {
			if i == 0 {
				<-release
			}
			removed <- i
		})
	}
	for deadline := time.Now().Add(10 * time.Second); e.backlog() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("backlog = %d, want 3 (one removal running)", e.backlog())
		}
	}
	refillStart := askStart(e, ctx, refill)
	untilWaiting(t, e, 0, 1)
	refillStart.mustWait(t, "a refill behind 3 pending removals")
	// A cold start never waits for removals.
	cold := askStart(e, ctx, urgent)
	cold.mustBeGranted(t, "a cold start behind pending removals")()

	close(release)
	refillStart.mustBeGranted(t, "the refill once the backlog shrank")()
	e.wait()
	for want := range 4 {
		if got := <-removed; got != want {
			t.Fatalf("removal %d ran as number %d: removals must keep their order", got, want)
		}
	}
}

func TestEngineWorkCancelledWaitLeavesNoTrace(t *testing.T) {
	e := &engineWork{maxStarts: 1}
	end, err := e.startSlot(context.Background(), urgent)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waiting := askStart(e, ctx, refill)
	untilWaiting(t, e, 0, 1)
	cancel()
	select {
	case err := <-waiting.err:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled wait did not return")
	}
	untilWaiting(t, e, 0, 0)
	end()
	next, err := e.startSlot(context.Background(), refill)
	if err != nil {
		t.Fatal(err)
	}
	next()
}

func TestEngineWorkZeroValueLimitsNothing(t *testing.T) {
	var e engineWork
	var ends []func()
	for range 5 {
		end, err := e.startSlot(context.Background(), refill)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	for _, end := range ends {
		end()
	}
	running := make(chan struct{}, 3)
	block := make(chan struct{})
	for range 3 {
		e.remove(func() { running <- struct{}{}; <-block })
	}
	for i := range 3 { // all three run at once
		select {
		case <-running:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 3 removals run at once without a limit", i)
		}
	}
	close(block)
	e.wait()
}
