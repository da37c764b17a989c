package bench

import (
	"testing"
	"time"
)

func TestBenchPercentile(t *testing.T) {
	t.Parallel()
	seq := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(i+1) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name   string
		sample []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", seq(1), 50, time.Millisecond},
		{"one value p99", seq(1), 99, time.Millisecond},
		{"p50 of 10", seq(10), 50, 5 * time.Millisecond},
		{"p90 of 10", seq(10), 90, 9 * time.Millisecond},
		{"p99 of 10", seq(10), 99, 10 * time.Millisecond},
		{"max of 10", seq(10), 100, 10 * time.Millisecond},
		{"p50 of 5 rounds up", seq(5), 50, 3 * time.Millisecond},
		{"p99 of 100", seq(100), 99, 99 * time.Millisecond},
		{"p99 of 1000", seq(1000), 99, 990 * time.Millisecond},
		{"tiny p is the minimum", seq(10), 1, time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sample, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestBenchStats(t *testing.T) {
	t.Parallel()
	samples := []sample{
		{latency: 30 * time.Millisecond, start: "warm"},
		{latency: 10 * time.Millisecond, start: "warm"},
		{latency: 20 * time.Millisecond, start: "cold"},
		{latency: 5 * time.Millisecond, err: &requestError{kind: "http 503", detail: "first"}},
		{latency: 5 * time.Millisecond, err: &requestError{kind: "http 503", detail: "second"}},
		{latency: 900 * time.Millisecond, start: "warm", err: &requestError{kind: "status failed", detail: "ZeroDivisionError"}},
	}
	st := newStats(samples, 2*time.Second)
	if st.Requests != 6 || st.Errors != 3 || st.Warm != 3 || st.Cold != 1 {
		t.Errorf("counts %+v", st)
	}
	if st.ErrorKinds["http 503"] != 2 || st.ErrorKinds["status failed"] != 1 || st.ErrorSamples["http 503"] != "first" {
		t.Errorf("error breakdown %v %v", st.ErrorKinds, st.ErrorSamples)
	}
	// Only the three successes count, for latency and jobs/s.
	if want := (LatencyStats{P50: 20, P90: 30, P99: 30, Max: 30}); st.LatencyMS != want {
		t.Errorf("latency %+v, want %+v", st.LatencyMS, want)
	}
	if st.JobsPerS != 1.5 || st.DurationS != 2 {
		t.Errorf("jobs/s %v over %vs, want 1.5 over 2s", st.JobsPerS, st.DurationS)
	}
	// The warm-only figures: the two successful warm starts.
	if want := (LatencyStats{P50: 10, P90: 30, P99: 30, Max: 30}); st.WarmMS == nil || *st.WarmMS != want {
		t.Errorf("warm latency %+v, want %+v", st.WarmMS, want)
	}
}
