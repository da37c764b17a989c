package api

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tako-run/tako/jobs"
)

// RateLimit is a token bucket per caller: an API key, or a client address
// when the request has no valid key. A zero PerSecond turns it off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// limiter holds one bucket per caller. A bucket that has refilled is
// dropped, which loses nothing, so memory follows the callers active in
// the last few seconds, not every address ever seen.
type limiter struct {
	cfg RateLimit
	now func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

func newLimiter(cfg RateLimit, now func() time.Time) *limiter {
	return &limiter{cfg: cfg, now: now, buckets: map[string]*rate.Limiter{}}
}

// refill is how long an idle bucket takes to fill up again.
func (l *limiter) refill() time.Duration {
	return time.Duration(float64(l.cfg.Burst) / l.cfg.PerSecond * float64(time.Second))
}

// allow takes a token from caller's bucket, or returns an ERATELIMITED
// error that says when to come back.
func (l *limiter) allow(caller string) error {
	if l == nil || l.cfg.PerSecond <= 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[caller]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)
		l.buckets[caller] = b
	}
	r := b.ReserveN(now, 1)
	if r.OK() && r.DelayFrom(now) == 0 {
		return nil
	}
	delay := time.Second
	if r.OK() {
		delay = r.DelayFrom(now)
	}
	r.CancelAt(now) // the request is refused: give the token back
	return &jobs.Error{
		Code:       jobs.ERATELIMITED,
		Message:    fmt.Sprintf("rate limit exceeded: %g requests per second with bursts of %d (server.rate_limit); retry later", l.cfg.PerSecond, l.cfg.Burst),
		RetryAfter: int(math.Ceil(delay.Seconds())),
	}
}

// sweep drops the buckets that are full again, at most once per refill
// period.
func (l *limiter) sweep(now time.Time) {
	refill := l.refill()
	if now.Sub(l.lastSweep) < max(refill, time.Second) {
		return
	}
	l.lastSweep = now
	for caller, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.buckets, caller)
		}
	}
}
