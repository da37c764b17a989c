package runner

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// fakeClock is a clock that moves only when a test says so.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)} }

// arrivals records n arrivals at rate per second on d, moving clock.
func arrivals(d *demand, clock *fakeClock, n int, rate float64) {
	gap := time.Duration(float64(time.Second) / rate)
	for range n {
		clock.advance(gap)
		d.arrive(clock.now())
	}
}

func TestDemandEstimatesTheArrivalRate(t *testing.T) {
	for _, rate := range []float64{0.5, 2, 10, 40} {
		clock := newFakeClock()
		var d demand
		arrivals(&d, clock, int(rate*120), rate) // two minutes: the estimate has settled
		// Read it half-way to the next arrival: right after one, the
		// decaying count is at the top of its saw tooth.
		clock.advance(time.Duration(float64(time.Second) / rate / 2))
		got := d.perSecond(clock.now())
		if math.Abs(got-rate)/rate > 0.1 {
			t.Errorf("after steady arrivals at %.1f/s the estimate is %.2f/s", rate, got)
		}
	}
}

func TestDemandAheadIsArrivalsDuringAStart(t *testing.T) {
	cases := []struct {
		rate  float64
		start time.Duration
		want  int
	}{
		{rate: 2, start: 300 * time.Millisecond, want: 1},  // 0.6 arrivals: keep one ahead
		{rate: 4, start: 500 * time.Millisecond, want: 2},  // 2.0
		{rate: 10, start: 500 * time.Millisecond, want: 5}, // 5.0
		{rate: 10, start: 2 * time.Second, want: 20},       // 20.0: a pool.max caps it later
	}
	for _, c := range cases {
		clock := newFakeClock()
		var d demand
		d.started(c.start)
		arrivals(&d, clock, int(c.rate*120), c.rate)
		got := d.ahead(clock.now())
		// The estimate wobbles around the rate; allow the neighbour above.
		if got != c.want && got != c.want+1 {
			t.Errorf("%.0f/s with starts of %s: ahead = %d, want %d", c.rate, c.start, got, c.want)
		}
	}
}

func TestDemandFallsToNothingWhenArrivalsStop(t *testing.T) {
	clock := newFakeClock()
	var d demand
	d.started(time.Second)
	arrivals(&d, clock, 200, 10)
	if d.ahead(clock.now()) < 9 {
		t.Fatalf("ahead = %d during arrivals at 10/s with 1 s starts", d.ahead(clock.now()))
	}
	clock.advance(30 * time.Second)
	mid := d.ahead(clock.now())
	if mid < 1 || mid > 2 {
		t.Errorf("30 s after the last arrival ahead = %d, want it decaying (1-2)", mid)
	}
	clock.advance(time.Minute)
	if got := d.ahead(clock.now()); got != 0 {
		t.Errorf("90 s after the last arrival ahead = %d, want 0", got)
	}
}

func TestDemandNothingAheadBeforeAStartIsMeasured(t *testing.T) {
	clock := newFakeClock()
	var d demand
	arrivals(&d, clock, 100, 10)
	if got := d.ahead(clock.now()); got != 0 {
		t.Errorf("ahead = %d with no start measured, want 0", got)
	}
}

func TestDemandSmoothsStartTimes(t *testing.T) {
	var d demand
	d.started(400 * time.Millisecond)
	if d.startTime != 400*time.Millisecond {
		t.Fatalf("first start sets the estimate: %s", d.startTime)
	}
	d.started(2 * time.Second) // one slow start moves it a quarter of the way
	if d.startTime != 800*time.Millisecond {
		t.Errorf("after a 2 s start the estimate is %s, want 800ms", d.startTime)
	}
}

// fakePool is a pool on a fake clock whose launcher is never called: the
// tests below only take from it and read its target.
func fakePool(clock *fakeClock, cfg jobtypes.Pool) *pool {
	p := newPool(&launcher{}, containerSpec{jobType: jobtypes.JobType{Name: "t", Pool: cfg}}, slog.New(slog.DiscardHandler))
	p.now = clock.now
	p.peakAt = clock.now()
	return p
}

// readyContainer is a container that looks alive and ready to a pool.
func readyContainer(clock *fakeClock) *pooled {
	return &pooled{c: &jobContainer{streamDone: make(chan struct{})}, readyAt: clock.now()}
}

// takeAndFinish is one job that finds a ready container (its refill came
// in time), runs for d and ends.
func takeAndFinish(p *pool, clock *fakeClock, d time.Duration) {
	p.ready = append(p.ready, readyContainer(clock))
	if p.take() == nil {
		panic("no container taken from a pool with one ready")
	}
	clock.advance(d)
	p.mu.Lock()
	p.inflight--
	p.mu.Unlock()
}

func poolTarget(p *pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target()
}

func TestPoolTargetFollowsTheArrivalRate(t *testing.T) {
	clock := newFakeClock()
	p := fakePool(clock, jobtypes.Pool{Min: 1, Max: 8, IdleTTL: 5 * time.Minute})
	if got := poolTarget(p); got != 1 {
		t.Fatalf("idle pool target = %d, want min 1", got)
	}
	p.demand.started(time.Second) // its starts take a second
	// Jobs of 10 ms every 250 ms: never two at once, but four arrive
	// while one container starts.
	for range 200 {
		takeAndFinish(p, clock, 10*time.Millisecond)
		clock.advance(240 * time.Millisecond)
	}
	if got := poolTarget(p); got < 5 || got > 6 {
		t.Errorf("at 4 jobs/s with 1 s starts the target is %d, want min 1 + 4 ahead (5, or 6 as the estimate wobbles)", got)
	}
}

func TestPoolTargetCappedAtMax(t *testing.T) {
	clock := newFakeClock()
	p := fakePool(clock, jobtypes.Pool{Min: 2, Max: 4, IdleTTL: time.Minute})
	p.demand.started(2 * time.Second)
	for range 500 {
		takeAndFinish(p, clock, 10*time.Millisecond)
		clock.advance(40 * time.Millisecond)
	}
	if got := poolTarget(p); got != 4 {
		t.Errorf("target = %d under heavy demand, want pool.max 4", got)
	}
}

func TestPoolTargetFallsBackToMinWhenIdle(t *testing.T) {
	clock := newFakeClock()
	p := fakePool(clock, jobtypes.Pool{Min: 1, Max: 8, IdleTTL: time.Minute})
	p.demand.started(time.Second)
	for range 100 {
		takeAndFinish(p, clock, 10*time.Millisecond)
		clock.advance(190 * time.Millisecond)
	}
	busy := poolTarget(p)
	if busy < 6 {
		t.Fatalf("target = %d at 5 jobs/s with 1 s starts, want at least 6", busy)
	}
	clock.advance(2 * time.Minute) // longer than idle_ttl, and the rate has decayed
	if got := poolTarget(p); got != 1 {
		t.Errorf("target = %d two idle minutes later, want min 1", got)
	}
}

func TestPoolTargetCountsConcurrentPeaks(t *testing.T) {
	clock := newFakeClock()
	p := fakePool(clock, jobtypes.Pool{Min: 1, Max: 8, IdleTTL: time.Minute})
	// Three jobs at once, each finding the pool empty. A take raises the
	// peak to the running count when that is higher, then its miss adds
	// one: 1 then 2, 2 (not higher) then 3, 3 (not higher) then 4.
	for range 3 {
		p.take()
	}
	if got := poolTarget(p); got != 5 {
		t.Errorf("target = %d after 3 concurrent misses, want min 1 + peak 4", got)
	}
}

func TestPoolTakeAsksForARefillAheadOnlyWhenShort(t *testing.T) {
	clock := newFakeClock()
	p := fakePool(clock, jobtypes.Pool{Min: 1, Max: 8, IdleTTL: time.Minute})
	p.demand.started(time.Second)
	for range 3 {
		p.ready = append(p.ready, readyContainer(clock))
	}
	drain := func() bool {
		select {
		case <-p.wake:
			return true
		default:
			return false
		}
	}
	// A slow trickle: one ready container is plenty, so taking one does
	// not start a replacement beside the job.
	clock.advance(10 * time.Second)
	if p.take() == nil {
		t.Fatal("no container taken from a pool of 3")
	}
	if drain() {
		t.Error("a take with 2 ready and almost no demand started a refill beside the job")
	}
	// Four arrivals per second and 1 s starts: two ready is short.
	for range 40 {
		clock.advance(250 * time.Millisecond)
		p.demand.arrive(clock.now())
	}
	if p.take() == nil {
		t.Fatal("no container taken from a pool of 2")
	}
	if !drain() {
		t.Error("a take that left 1 ready while 4 arrive per start did not ask for a refill at once")
	}
}
