package runner

import (
	"context"
	"sync"
)

// maxBacklogPerStart is how many pending removals per concurrent start
// hold pool refills back.
const maxBacklogPerStart = 4

// priority orders the container starts waiting for the engine.
type priority int

const (
	// urgent is a start a request waits for: a cold start.
	urgent priority = iota
	// refill is a start that fills a pool, ahead of any request.
	refill
)

// engineWork schedules the engine work of job containers, so that the
// starts and removals the pools cause do not slow the jobs running beside
// them on a small machine:
//
//   - at most maxStarts container starts (create and start) run at once,
//     and a waiting cold start goes before every waiting refill;
//   - removals run in the background, at most maxRemovals at once, in the
//     order the containers were discarded;
//   - refills wait while more than maxBacklog removals are pending, so
//     that used containers cannot pile up faster than the engine removes
//     them. Cold starts do not wait for removals: a request never fails
//     because the engine is behind.
//
// Zero limits mean no limit, so a zero engineWork runs everything at once.
type engineWork struct {
	maxStarts   int
	maxRemovals int
	maxBacklog  int

	mu       sync.Mutex
	starting int
	waiting  [2][]chan struct{} // by priority, oldest first
	removals []func()           // pending, oldest first
	removing int
	pending  sync.WaitGroup // removals not yet done
}

// startSlot waits until a container start of priority p may begin, and
// returns the function that ends it. It fails only when ctx ends first.
func (e *engineWork) startSlot(ctx context.Context, p priority) (func(), error) {
	e.mu.Lock()
	if len(e.waiting[urgent]) == 0 && (p == urgent || len(e.waiting[refill]) == 0) && e.mayStart(p) {
		e.starting++
		e.mu.Unlock()
		return e.endStart, nil
	}
	granted := make(chan struct{})
	e.waiting[p] = append(e.waiting[p], granted)
	e.mu.Unlock()
	select {
	case <-granted:
		return e.endStart, nil
	case <-ctx.Done():
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, ch := range e.waiting[p] {
			if ch == granted {
				e.waiting[p] = append(e.waiting[p][:i:i], e.waiting[p][i+1:]...)
				return nil, ctx.Err()
			}
		}
		// Granted as ctx ended: hand the start on.
		e.starting--
		e.grant()
		return nil, ctx.Err()
	}
}

// mayStart reports whether a start of priority p may begin now. Callers
// hold mu.
func (e *engineWork) mayStart(p priority) bool {
	if e.maxStarts > 0 && e.starting >= e.maxStarts {
		return false
	}
	return p == urgent || e.maxBacklog <= 0 || len(e.removals) <= e.maxBacklog
}

// endStart ends a start that startSlot allowed.
func (e *engineWork) endStart() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.starting--
	e.grant()
}

// grant lets waiting starts begin, as far as the limits allow, cold starts
// first. Callers hold mu.
func (e *engineWork) grant() {
	for _, p := range []priority{urgent, refill} {
		for len(e.waiting[p]) > 0 && e.mayStart(p) {
			e.starting++
			close(e.waiting[p][0])
			e.waiting[p] = e.waiting[p][1:]
		}
		if len(e.waiting[p]) > 0 {
			return // the older priority waits, and so does the rest
		}
	}
}

// remove runs fn, the removal of a container, in the background, after
// the removals pending before it. It never blocks.
func (e *engineWork) remove(fn func()) {
	e.pending.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removals = append(e.removals, fn)
	if e.maxRemovals <= 0 || e.removing < e.maxRemovals {
		e.removing++
		go e.removeAll()
	}
}

// removeAll runs pending removals until there are none.
func (e *engineWork) removeAll() {
	for {
		e.mu.Lock()
		if len(e.removals) == 0 {
			e.removing--
			e.mu.Unlock()
			return
		}
		fn := e.removals[0]
		e.removals = e.removals[1:]
		e.grant() // the backlog shrank: a refill may go
		e.mu.Unlock()
		fn()
		e.pending.Done()
	}
}

// backlog is the number of removals not yet begun.
func (e *engineWork) backlog() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.removals)
}

// wait waits until every removal handed to remove is done.
func (e *engineWork) wait() { e.pending.Wait() }
