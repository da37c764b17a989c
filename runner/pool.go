package runner

import (
	"context"
	"sync"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// pool keeps started containers of one job type whose bootstrap has
// preloaded and waits for its trigger, so that a job finds its interpreter
// running. A container leaves the pool for one job and is never returned;
// the pool starts a replacement at once, off the request path. Its size
// follows demand between the job type's pool.min and pool.max: it grows to
// min plus the peak of concurrent executions, and by one more for each
// checkout that found it empty; containers idle for longer than
// pool.idle_ttl are trimmed back to min.
type pool struct {
	r    *Runner
	spec containerSpec
	cfg  jobtypes.Pool

	mu       sync.Mutex
	ready    []*pooled // oldest first
	starting int
	inflight int // executions of this job type running now
	peak     int // most concurrent executions since peakAt
	peakAt   time.Time
	failures int // consecutive failed starts, for backoff
	hits     int64
	misses   int64

	wake chan struct{}
}

// pooled is a ready container and when it became ready.
type pooled struct {
	c       *jobContainer
	readyAt time.Time
}

// PoolStats is the state of one job type's pool.
type PoolStats struct {
	Busy   int   `json:"busy"`   // executions of the job type running now
	Hits   int64 `json:"hits"`   // checkouts that found a warm container
	Misses int64 `json:"misses"` // checkouts that had to start a cold one
	Target int   `json:"target"` // ready containers the pool aims for
	Warm   int   `json:"warm"`   // ready containers
}

func newPool(r *Runner, spec containerSpec) *pool {
	return &pool{r: r, spec: spec, cfg: spec.jobType.Pool, peakAt: time.Now(), wake: make(chan struct{}, 1)}
}

// take hands out a ready container, or nil when there is none. The caller
// owns it and must discard it.
func (p *pool) take() *jobContainer {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight++
	if p.inflight > p.peak {
		p.peak, p.peakAt = p.inflight, time.Now()
	}
	// Newest first: the oldest are the ones idle trimming removes.
	for len(p.ready) > 0 {
		pc := p.ready[len(p.ready)-1]
		p.ready = p.ready[:len(p.ready)-1]
		if pc.c.alive() {
			p.hits++
			return pc.c
		}
		p.r.discard(pc.c)
	}
	// A miss means the pool is smaller than demand: grow it, up to max.
	p.misses++
	p.peak, p.peakAt = p.peak+1, time.Now()
	return nil
}

// done records the end of an execution that called take, and has the
// pool start the replacement now: on a small machine a container start
// running beside the job would take the job's CPU.
func (p *pool) done() {
	p.mu.Lock()
	p.inflight--
	p.mu.Unlock()
	p.signal()
}

// target is how many ready containers the pool aims for. Callers hold mu.
func (p *pool) target() int {
	if time.Since(p.peakAt) > p.cfg.IdleTTL {
		p.peak, p.peakAt = p.inflight, time.Now()
	}
	return max(p.cfg.Min, min(p.cfg.Min+p.peak, p.cfg.Max))
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Busy: p.inflight, Hits: p.hits, Misses: p.misses, Target: p.target(), Warm: len(p.ready)}
}

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run keeps the pool at its target until ctx ends, then removes every
// ready container.
func (p *pool) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		p.maintain(ctx)
		select {
		case <-ctx.Done():
			p.drain()
			return
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// maintain drops dead and idle containers and starts what is missing.
func (p *pool) maintain(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	target := p.target()
	live := p.ready[:0]
	for _, pc := range p.ready {
		if pc.c.alive() {
			live = append(live, pc)
		} else {
			p.r.discard(pc.c) // killed behind tako's back, or the daemon restarted
		}
	}
	p.ready = live
	for len(p.ready) > target && time.Since(p.ready[0].readyAt) > p.cfg.IdleTTL {
		p.r.discard(p.ready[0].c)
		p.ready = p.ready[1:]
	}
	if p.failures > 0 {
		return // startOne retries with backoff
	}
	for n := len(p.ready) + p.starting; n < target; n++ {
		p.starting++
		p.r.poolsDone.Add(1)
		go func() {
			defer p.r.poolsDone.Done()
			p.startOne(ctx)
		}()
	}
}

// startOne starts a container and adds it once its bootstrap is ready.
func (p *pool) startOne(ctx context.Context) {
	c, err := p.r.prepare(ctx, p.spec)
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.failures++
		backoff := min(time.Second<<min(p.failures, 5), 30*time.Second)
		p.mu.Unlock()
		if ctx.Err() == nil {
			p.r.logger.Warn("start pool container", "job_type", p.spec.jobType.Name, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
		p.mu.Lock()
		p.failures = 0
		p.mu.Unlock()
		p.signal()
		return
	}
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		p.r.discard(c)
		return
	}
	p.failures = 0
	p.ready = append(p.ready, &pooled{c: c, readyAt: time.Now()})
}

// drain removes every ready container.
func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.ready {
		p.r.discard(pc.c)
	}
	p.ready = nil
}
