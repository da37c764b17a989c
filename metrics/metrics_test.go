package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tako-run/tako/jobs"
)

func TestJobEnded(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.AddJobType("default")
	warm := &jobs.Result{Status: jobs.StatusSucceeded, Start: jobs.StartWarm, Timing: jobs.Timing{
		Queue: 2 * time.Millisecond, Start: 3 * time.Millisecond, Run: 5 * time.Millisecond, Collect: time.Millisecond,
	}}
	timeout := &jobs.Result{Status: jobs.StatusTimeout, Start: jobs.StartCold, Error: &jobs.ExecError{Type: jobs.ErrTimeout}}
	// tako could not run it: no container, so no phases.
	infra := &jobs.Result{Status: jobs.StatusFailed, Error: &jobs.ExecError{Type: jobs.ErrInternal}}

	m.JobEnded("default", warm, 0, 12*time.Millisecond)
	m.JobEnded("default", warm, time.Second, 1100*time.Millisecond)
	m.JobEnded("default", timeout, 0, 2*time.Second)
	m.JobEnded("default", infra, 0, time.Millisecond)

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"succeeded", testutil.ToFloat64(m.jobs.WithLabelValues("default", "succeeded")), 2},
		{"timeout", testutil.ToFloat64(m.jobs.WithLabelValues("default", "timeout")), 1},
		{"failed", testutil.ToFloat64(m.jobs.WithLabelValues("default", "failed")), 1},
		{"oom stays at zero", testutil.ToFloat64(m.jobs.WithLabelValues("default", "oom")), 0},
		{"timeout errors", testutil.ToFloat64(m.jobErrors.WithLabelValues("default", "timeout")), 1},
		{"internal errors", testutil.ToFloat64(m.jobErrors.WithLabelValues("default", "internal_error")), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// One duration series per (status, start); phases only for the three
	// jobs that got a container.
	if n := testutil.CollectAndCount(m.jobDuration); n != 3 {
		t.Errorf("duration series: got %d, want 3", n)
	}
	for _, phase := range []string{PhaseQueue, PhaseStart, PhaseRun, PhaseCollect} {
		if n := histogramCount(t, m, "tako_job_phase_seconds", map[string]string{"job_type": "default", "phase": phase}); n != 3 {
			t.Errorf("phase %s: %d observations, want 3", phase, n)
		}
	}
	if n := histogramCount(t, m, "tako_job_duration_seconds", map[string]string{"job_type": "default", "status": "failed", "start": "none"}); n != 1 {
		t.Errorf("a job that never ran is labelled start=none: got %d observations", n)
	}
	// The async wait counts towards the queue phase: the second warm job
	// queued for over a second.
	if got := histogramBucket(t, m, "tako_job_phase_seconds", map[string]string{"job_type": "default", "phase": PhaseQueue}, 1); got != 2 {
		t.Errorf("queue phase at or below 1 s: %d observations, want 2 (of 3)", got)
	}
}

func TestHTTPRequestBoundsLabels(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.HTTPRequest("/jobs/:id", "GET", 404, time.Millisecond)
	m.HTTPRequest("/jobs/:id", "BREW", 405, time.Millisecond)
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("/jobs/:id", "GET", "404")); got != 1 {
		t.Errorf("GET 404: %v", got)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("/jobs/:id", "other", "405")); got != 1 {
		t.Errorf("an unknown method is counted as other: %v", got)
	}
	if n := testutil.CollectAndCount(m.httpRequests); n != 2 {
		t.Errorf("series: %d, want 2", n)
	}
}

func TestPoolsReadAtScrape(t *testing.T) {
	t.Parallel()
	m := New("test")
	warm := 1
	m.SetPoolSource(func() []PoolSample {
		return []PoolSample{{JobType: "default", Warm: warm, Busy: 2, Target: 3}}
	})
	warm = 4
	want := `
# HELP tako_pool_warm_containers Prewarmed containers ready for a job, by job type.
# TYPE tako_pool_warm_containers gauge
tako_pool_warm_containers{job_type="default"} 4
# HELP tako_pool_target_containers Containers the pool of a job type aims to keep, by job type.
# TYPE tako_pool_target_containers gauge
tako_pool_target_containers{job_type="default"} 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tako_pool_warm_containers", "tako_pool_target_containers"); err != nil {
		t.Error(err)
	}
}

func TestRemovalsReadAtScrape(t *testing.T) {
	t.Parallel()
	m := New("test")
	if n := testutil.CollectAndCount(m.removals); n != 0 {
		t.Errorf("%d series before a source is set, want none", n)
	}
	pending := 1
	m.SetRemovalSource(func() int { return pending })
	pending = 3
	want := `
# HELP tako_container_removals_pending Used containers waiting for their removal on this node's engine; pool refills wait while there are more than four per concurrent start.
# TYPE tako_container_removals_pending gauge
tako_container_removals_pending 3
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tako_container_removals_pending"); err != nil {
		t.Error(err)
	}
}

func TestGaugesAndBuilds(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.AddJobType("data")
	m.SetQueueDepth([]string{"data", "default"}, map[string]int{"default": 7})
	m.SetAvailability(true, false)
	m.SetLimits(1000, 4)
	m.ImageBuilt(BuildRequirements, 9*time.Second, nil)
	m.ImageBuilt(BuildRequirements, time.Second, errors.New("pip install failed"))
	m.RequirementsLookup(true)
	m.RequirementsLookup(false)
	m.RequirementsLookup(true)
	m.SetRequirementsCache(2, 1<<30)
	done := m.JobStarted("data")

	checks := []struct {
		name      string
		got, want float64
	}{
		{"queue default", testutil.ToFloat64(m.queueDepth.WithLabelValues("default")), 7},
		{"queue data", testutil.ToFloat64(m.queueDepth.WithLabelValues("data")), 0},
		{"docker up", testutil.ToFloat64(m.dockerUp), 1},
		{"database up", testutil.ToFloat64(m.databaseUp), 0},
		{"max pending", testutil.ToFloat64(m.queueMax), 1000},
		{"max concurrent", testutil.ToFloat64(m.maxConcurrent), 4},
		{"builds ok", testutil.ToFloat64(m.builds.WithLabelValues("requirements", "success")), 1},
		{"builds failed", testutil.ToFloat64(m.builds.WithLabelValues("requirements", "failure")), 1},
		{"cache hits", testutil.ToFloat64(m.reqCache.WithLabelValues("hit")), 2},
		{"cache misses", testutil.ToFloat64(m.reqCache.WithLabelValues("miss")), 1},
		{"cached bytes", testutil.ToFloat64(m.reqBytes), 1 << 30},
		{"running while started", testutil.ToFloat64(m.jobsRunning.WithLabelValues("data")), 1},
	}
	done()
	checks = append(checks, struct {
		name      string
		got, want float64
	}{"running after done", testutil.ToFloat64(m.jobsRunning.WithLabelValues("data")), 0})
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestLint runs client_golang's linter, the same rules as `promtool check
// metrics`, over every tako_ metric once each has a series.
func TestLint(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.AddJobType("default")
	m.JobEnded("default", &jobs.Result{Status: jobs.StatusFailed, Start: jobs.StartCold, Error: &jobs.ExecError{Type: jobs.ErrRuntimeError}}, 0, time.Second)
	m.HTTPRequest("/execute", "POST", 200, time.Millisecond)
	m.ImageBuilt(BuildExecutor, time.Minute, nil)
	m.RequirementsLookup(true)
	m.SetPoolSource(func() []PoolSample { return []PoolSample{{JobType: "default"}} })
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestHandlerServesBuildInfo(t *testing.T) {
	t.Parallel()
	m := New("1.2.3")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`tako_build_info{goversion="go`, `version="1.2.3"} 1`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestNilRecordsNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.AddJobType("x")
	m.JobEnded("x", &jobs.Result{Status: jobs.StatusSucceeded}, 0, 0)
	m.JobStarted("x")()
	m.Checkout("x", true)
	m.HTTPRequest("/", "GET", 200, 0)
	m.ImageBuilt(BuildExecutor, 0, nil)
	m.RequirementsLookup(true)
	m.SetAvailability(true, true)
	m.SetQueueDepth([]string{"x"}, nil)
	m.SetLimits(1, 1)
	m.SetRequirementsCache(1, 1)
	m.SetPoolSource(nil)
}

// histogramCount returns the observations of the series of name with
// exactly labels.
func histogramCount(t *testing.T, m *Metrics, name string, labels map[string]string) uint64 {
	t.Helper()
	return histogramBucket(t, m, name, labels, -1)
}

// histogramBucket returns the cumulative count of the bucket with upper
// bound le of a series, or its total count when le is negative.
func histogramBucket(t *testing.T, m *Metrics, name string, labels map[string]string, le float64) uint64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range s.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			h := s.GetHistogram()
			if le < 0 {
				return h.GetSampleCount()
			}
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == le {
					return b.GetCumulativeCount()
				}
			}
			t.Fatalf("%s has no bucket %v", name, le)
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
