package runner

import (
	"math"
	"time"
)

// demandWindow is the time constant of a pool's arrival-rate estimate:
// an arrival counts less by a factor e for every window that passes.
const demandWindow = 10 * time.Second

// demand estimates how many containers a pool must have ready ahead of
// its jobs: the arrivals expected while one container starts. It keeps an
// exponentially decaying count of arrivals, whose expected value is the
// arrival rate, and a smoothed duration of the pool's starts. It is not
// safe for concurrent use; the pool's lock guards it. Times come from the
// caller, so that tests can use a fake clock.
type demand struct {
	rate      float64       // arrivals per second, as of at
	at        time.Time     // when rate was last decayed
	startTime time.Duration // smoothed duration of a container start
}

// arrive records an arrival at now.
func (d *demand) arrive(now time.Time) {
	d.decay(now)
	d.rate += 1 / demandWindow.Seconds()
}

// started records that a container start took took.
func (d *demand) started(took time.Duration) {
	if d.startTime == 0 {
		d.startTime = took
		return
	}
	d.startTime += (took - d.startTime) / 4
}

// perSecond is the estimated arrival rate at now.
func (d *demand) perSecond(now time.Time) float64 {
	d.decay(now)
	return d.rate
}

// ahead is how many containers should be ready at now: the arrivals
// expected while one container starts, rounded up. It is 0 until a start
// has been measured, and falls to 0 when arrivals stop.
func (d *demand) ahead(now time.Time) int {
	expected := d.perSecond(now) * d.startTime.Seconds()
	if expected < 0.05 {
		return 0 // a trickle left over from arrivals long gone
	}
	return int(math.Ceil(expected))
}

// decay brings rate forward to now.
func (d *demand) decay(now time.Time) {
	if d.at.IsZero() {
		d.at = now
		return
	}
	if dt := now.Sub(d.at); dt > 0 {
		d.rate *= math.Exp(-dt.Seconds() / demandWindow.Seconds())
		d.at = now
	}
}
