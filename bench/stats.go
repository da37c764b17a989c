package bench

import (
	"errors"
	"math"
	"slices"
	"time"

	"github.com/tako-run/tako/internal/oneline"
)

// newLatencyStats returns the percentiles of sample, which it sorts.
func newLatencyStats(sample []time.Duration) LatencyStats {
	slices.Sort(sample)
	return LatencyStats{
		P50: ms(percentile(sample, 50)),
		P90: ms(percentile(sample, 90)),
		P99: ms(percentile(sample, 99)),
		Max: ms(percentile(sample, 100)),
	}
}

// LatencyStats are latency percentiles in milliseconds.
type LatencyStats struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Stats are the statistics of one model's measured run. Latencies are
// those of the successful requests; JobsPerS counts successful jobs.
// Phases, tako's only, is where the time of its successful jobs went by
// the server's timing; absent for the baseline.
type Stats struct {
	Requests     int               `json:"requests"`
	Errors       int               `json:"errors"`
	ErrorKinds   map[string]int    `json:"error_kinds"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // the first detail of each kind
	DurationS    float64           `json:"duration_s"`
	JobsPerS     float64           `json:"jobs_per_s"`
	LatencyMS    LatencyStats      `json:"latency_ms"`
	WarmMS       *LatencyStats     `json:"warm_latency_ms"` // successful warm starts only; null when none
	Warm         int               `json:"warm"`
	Cold         int               `json:"cold"`
	Phases       *Phases           `json:"phases,omitempty"`
}

// newStats returns the statistics of samples, measured over elapsed.
func newStats(samples []sample, elapsed time.Duration) Stats {
	st := Stats{Requests: len(samples), ErrorKinds: map[string]int{}, DurationS: round3(elapsed.Seconds())}
	var ok, warm []time.Duration
	for _, s := range samples {
		if s.err == nil && s.start == "warm" {
			warm = append(warm, s.latency)
		}
		switch s.start {
		case "warm":
			st.Warm++
		case "cold":
			st.Cold++
		}
		if s.err == nil {
			ok = append(ok, s.latency)
			continue
		}
		st.Errors++
		kind, detail := "error", s.err.Error()
		var be *requestError
		if errors.As(s.err, &be) {
			kind, detail = be.kind, be.detail
		}
		st.ErrorKinds[kind]++
		if st.ErrorSamples == nil {
			st.ErrorSamples = map[string]string{}
		}
		if _, seen := st.ErrorSamples[kind]; !seen {
			st.ErrorSamples[kind] = oneline.Clip(detail, 200)
		}
	}
	if elapsed > 0 {
		st.JobsPerS = round3(float64(len(ok)) / elapsed.Seconds())
	}
	st.LatencyMS = newLatencyStats(ok)
	st.Phases = newPhases(samples)
	if len(warm) > 0 {
		w := newLatencyStats(warm)
		st.WarmMS = &w
	}
	return st
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of the
// ascending sample sorted: the smallest value with at least p% of the
// sample at or below it. It is 0 for an empty sample.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

// round3 rounds x to three decimals.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Ratio compares tako with the baseline: P50 is baseline p50 / tako
// p50 (how many times faster tako is), JobsPerS is tako's jobs/s over the
// baseline's. There is none (nil) when either model had no successful job.
type Ratio struct {
	P50      float64 `json:"p50"`
	JobsPerS float64 `json:"jobs_per_s"`
}

// newRatio compares tako with base; nil when either had no successful job.
func newRatio(tako, base Stats) *Ratio {
	if tako.LatencyMS.P50 <= 0 || base.LatencyMS.P50 <= 0 || tako.JobsPerS <= 0 || base.JobsPerS <= 0 {
		return nil // a model without a successful job has nothing to compare
	}
	return &Ratio{
		P50:      round3(base.LatencyMS.P50 / tako.LatencyMS.P50),
		JobsPerS: round3(tako.JobsPerS / base.JobsPerS),
	}
}
