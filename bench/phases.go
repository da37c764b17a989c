package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// serverTiming is the "timing" of an execution's JSON: where the runner
// says the job's time went, in milliseconds. TotalMS runs from the job's
// arrival at the runner to its answer; the database writes before and
// after it, HTTP and JSON are outside it.
type serverTiming struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// Phases is where a model's time went by the server's own account, over
// its successful jobs whose answer carried a timing: the p50 of each phase
// the runner times (QueueMS waiting for a slot, StartMS getting a
// container, RunMS the program, CollectMS reading its output), of the
// runner's TotalMS, and of OutsideMS, each job's client latency less its
// TotalMS: HTTP, JSON and the database writes around the run (and in
// --async mode the wait for a claim and the long poll). Each is a p50 of
// its own, so they need not add up to TotalMS or to the latency's p50.
type Phases struct {
	QueueMS   float64 `json:"queue_ms"`
	StartMS   float64 `json:"start_ms"`
	RunMS     float64 `json:"run_ms"`
	CollectMS float64 `json:"collect_ms"`
	TotalMS   float64 `json:"total_ms"`
	OutsideMS float64 `json:"outside_ms"`
}

// newPhases is the Phases of samples: nil when no successful sample has a
// server timing, as with the baseline.
func newPhases(samples []sample) *Phases {
	var queue, start, run, collect, total, outside []time.Duration
	for _, s := range samples {
		t := s.timing
		if s.err != nil || t == nil {
			continue
		}
		queue = append(queue, fromMS(t.QueueMS))
		start = append(start, fromMS(t.StartMS))
		run = append(run, fromMS(t.RunMS))
		collect = append(collect, fromMS(t.CollectMS))
		total = append(total, fromMS(t.TotalMS))
		outside = append(outside, s.latency-fromMS(t.TotalMS))
	}
	if len(total) == 0 {
		return nil
	}
	return &Phases{
		QueueMS:   p50(queue),
		StartMS:   p50(start),
		RunMS:     p50(run),
		CollectMS: p50(collect),
		TotalMS:   p50(total),
		OutsideMS: p50(outside),
	}
}

// fromMS is v milliseconds as a duration, to the nanosecond.
func fromMS(v float64) time.Duration { return time.Duration(math.Round(v * float64(time.Millisecond))) }

// p50 is the median of sample in milliseconds, as LatencyStats has it; it
// sorts sample.
func p50(sample []time.Duration) float64 {
	slices.Sort(sample)
	return ms(percentile(sample, 50))
}

// writePhases prints where the time of s went, after the table: one line
// headed by label ("where the time goes (p50)"); nothing when s has no
// server timing.
func writePhases(w io.Writer, label string, s Stats) {
	p := s.Phases
	if p == nil {
		return
	}
	fmt.Fprintf(w, "%s: queue %.1f ms, start %.1f ms, run %.1f ms, collect %.1f ms, outside the runner %.1f ms\n",
		label, p.QueueMS, p.StartMS, p.RunMS, p.CollectMS, p.OutsideMS)
}
