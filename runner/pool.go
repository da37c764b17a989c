package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// pool keeps started containers of one job type and image whose bootstrap
// has preloaded and waits for its trigger, so that a job finds its
// interpreter running. A container leaves the pool for one job and is never
// returned; the pool starts a replacement off the request path, once the
// job's result is recorded (done), or at once when the arrivals expected
// would otherwise find it empty. Its size follows demand between the job
// type's pool.min and pool.max: it grows to min plus the larger of two
// needs, the peak of concurrent executions (one more for each checkout
// that found it empty) and the arrivals expected while one container
// starts (demand); containers idle for longer than pool.idle_ttl are
// trimmed back to min. The pool owns its containers: it starts and
// removes them through its launcher and calls nobody back.
type pool struct {
	launch *launcher
	logger *slog.Logger
	cfg    jobtypes.Pool
	now    func() time.Time // time.Now, or a test's fake clock

	mu       sync.Mutex
	spec     containerSpec
	ready    []*pooled // oldest first
	starting int
	inflight int // executions of this job type running now
	peak     int // most concurrent executions since peakAt
	peakAt   time.Time
	demand   demand
	failures int       // consecutive failed starts, for backoff
	lastErr  string    // why the last start failed, safe to show callers
	retryAt  time.Time // no start before this, after a failure
	hits     int64
	misses   int64

	wake    chan struct{}
	workers sync.WaitGroup // startOne calls under way
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
	// Failures counts the container starts that failed in a row; the pool
	// backs off between them, up to a minute.
	Failures int `json:"failures"`
	// LastError says why the last of those failed; "" after a success.
	LastError string `json:"last_error,omitempty"`
}

// FailingPool is how many failed starts in a row make a pool a problem
// in /health.
const FailingPool = 3

func newPool(launch *launcher, spec containerSpec, logger *slog.Logger) *pool {
	return &pool{
		launch: launch,
		logger: logger,
		cfg:    spec.jobType.Pool,
		now:    time.Now,
		spec:   spec,
		peakAt: time.Now(),
		wake:   make(chan struct{}, 1),
	}
}

// take hands out a ready container, or nil when there is none. The caller
// owns it and must discard it.
func (p *pool) take() *jobContainer {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.demand.arrive(now)
	p.inflight++
	if p.inflight > p.peak {
		p.peak, p.peakAt = p.inflight, now
	}
	if c := p.takeReady(); c != nil {
		p.hits++
		if len(p.ready)+p.starting < p.demand.ahead(now) {
			// The next arrivals would find the pool empty before a
			// replacement started after this job could be ready.
			p.signal()
		}
		return c
	}
	// A miss means the pool is smaller than demand: grow it, up to max.
	p.misses++
	p.peak, p.peakAt = p.peak+1, now
	return nil
}

// takeReady removes and returns the newest live ready container, or nil;
// newest first, since idle trimming removes the oldest. Callers hold mu.
func (p *pool) takeReady() *jobContainer {
	for len(p.ready) > 0 {
		pc := p.ready[len(p.ready)-1]
		p.ready = p.ready[:len(p.ready)-1]
		if pc.c.alive() {
			return pc.c
		}
		p.launch.discard(pc.c)
	}
	return nil
}

// done records the end of an execution that called take, and has the
// pool start the replacement now unless take already did: while the
// pool has enough ready for the arrivals expected, a container start
// running beside the job would only take the job's CPU on a small machine.
func (p *pool) done() {
	p.mu.Lock()
	p.inflight--
	p.mu.Unlock()
	p.signal()
}

// setImage makes the pool start its containers from image from now on,
// and removes the ready ones started from another: what a rebuilt job type
// image asks for.
func (p *pool) setImage(image string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spec.image == image {
		return
	}
	p.spec.image = image
	p.failures, p.lastErr, p.retryAt = 0, "", time.Time{} // a new image deserves a fresh try
	for _, pc := range p.ready {
		p.launch.discard(pc.c)
	}
	p.ready = nil
	p.signal()
}

// image returns the image the pool starts containers from.
func (p *pool) image() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spec.image
}

// target is how many ready containers the pool aims for. Callers hold mu.
func (p *pool) target() int {
	now := p.now()
	if now.Sub(p.peakAt) > p.cfg.IdleTTL {
		p.peak, p.peakAt = p.inflight, now
	}
	need := max(p.peak, p.demand.ahead(now))
	return max(p.cfg.Min, min(p.cfg.Min+need, p.cfg.Max))
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{
		Busy: p.inflight, Hits: p.hits, Misses: p.misses, Target: p.target(), Warm: len(p.ready),
		Failures: p.failures, LastError: p.lastErr,
	}
}

func (p *pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run keeps the pool at its target until ctx ends, then removes every
// ready container and waits for the starts under way.
func (p *pool) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		p.maintain(ctx)
		select {
		case <-ctx.Done():
			p.workers.Wait()
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
			p.launch.discard(pc.c) // killed behind tako's back, or the daemon restarted
		}
	}
	p.ready = live
	for len(p.ready) > target && p.now().Sub(p.ready[0].readyAt) > p.cfg.IdleTTL {
		p.launch.discard(p.ready[0].c)
		p.ready = p.ready[1:]
	}
	if ctx.Err() != nil || p.now().Before(p.retryAt) {
		return // stopping, or backing off after a failed start
	}
	for n := len(p.ready) + p.starting; n < target; n++ {
		p.starting++
		spec := p.spec
		p.workers.Go(func() { p.startOne(ctx, spec) })
	}
}

// startOne starts a container for spec and adds it once its bootstrap is
// ready.
func (p *pool) startOne(ctx context.Context, spec containerSpec) {
	began := p.now()
	c, err := p.launch.prepare(ctx, spec)
	p.mu.Lock()
	p.starting--
	if err != nil {
		// Back off: 2 s, 4 s ... at most a minute between attempts, so a job
		// type whose containers cannot start does not spin.
		p.failures++
		p.lastErr = startFailure(err)
		backoff := min(time.Second<<min(p.failures, 6), time.Minute)
		p.retryAt = p.now().Add(backoff)
		failures := p.failures
		p.mu.Unlock()
		if ctx.Err() == nil {
			p.logger.Warn("start pool container", "job_type", spec.jobType.Name, "error", err, "failures", failures, "retry_in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
		}
		p.signal()
		return
	}
	defer p.mu.Unlock()
	if ctx.Err() != nil || c.image != p.spec.image {
		p.launch.discard(c) // stopping, or the image changed while it started
		return
	}
	p.failures, p.lastErr = 0, ""
	now := p.now()
	p.demand.started(now.Sub(began))
	p.ready = append(p.ready, &pooled{c: c, readyAt: now})
}

// drain removes every ready container.
func (p *pool) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.ready {
		p.launch.discard(pc.c)
	}
	p.ready = nil
}

// startFailure says why a container start failed in words fit for callers:
// the engine's own message may name host paths.
func startFailure(err error) string {
	switch {
	case errors.Is(err, errExitedEarly):
		return "the container exited before its bootstrap was ready"
	case errors.Is(err, errNotReady):
		return "the container was not ready in time"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "the start was cancelled"
	default:
		return "the Docker engine could not create or start the container"
	}
}
