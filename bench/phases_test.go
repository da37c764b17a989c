package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// phaseSamples are three successful jobs with a server timing, and two
// that newPhases leaves out: a failed one and one without a timing.
func phaseSamples() []sample {
	return []sample{
		{latency: 20 * time.Millisecond, start: "warm",
			timing: &serverTiming{QueueMS: 0.1, StartMS: 0.5, RunMS: 10, CollectMS: 1, TotalMS: 12}},
		{latency: 32 * time.Millisecond, start: "warm",
			timing: &serverTiming{QueueMS: 0.3, StartMS: 0.7, RunMS: 12, CollectMS: 2, TotalMS: 15}},
		{latency: 400 * time.Millisecond, start: "cold",
			timing: &serverTiming{QueueMS: 0.2, StartMS: 300, RunMS: 11, CollectMS: 1.5, TotalMS: 313}},
		{latency: 5 * time.Millisecond, start: "warm", err: &requestError{kind: "status failed", detail: "ZeroDivisionError"},
			timing: &serverTiming{QueueMS: 900, StartMS: 900, RunMS: 900, CollectMS: 900, TotalMS: 900}},
		{latency: 50 * time.Millisecond, start: "warm"},
	}
}

func TestBenchPhases(t *testing.T) {
	t.Parallel()
	// Each figure is the p50 (the second of three) of its own column; the
	// time outside the runner is each latency less its total: 8, 17, 87.
	want := Phases{QueueMS: 0.2, StartMS: 0.7, RunMS: 11, CollectMS: 1.5, TotalMS: 15, OutsideMS: 17}
	st := newStats(phaseSamples(), time.Second)
	if st.Phases == nil || *st.Phases != want {
		t.Fatalf("phases %+v, want %+v", st.Phases, want)
	}

	t.Run("none without a server timing", func(t *testing.T) {
		t.Parallel()
		samples := []sample{{latency: 400 * time.Millisecond, start: "cold"}, {latency: time.Second, start: "cold"}}
		if p := newPhases(samples); p != nil {
			t.Errorf("baseline samples have phases %+v", *p)
		}
		if p := newPhases(phaseSamples()[3:4]); p != nil {
			t.Errorf("a failed job alone has phases %+v", *p)
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		r := fixedReport()
		r.Tako.Phases = &want
		var m map[string]map[string]json.RawMessage
		if err := json.Unmarshal(mustJSON(t, r), &m); err != nil {
			t.Fatal(err)
		}
		var got map[string]float64
		if err := json.Unmarshal(m["tako"]["phases"], &got); err != nil {
			t.Fatalf("tako phases %s: %v", m["tako"]["phases"], err)
		}
		wantJSON := map[string]float64{"queue_ms": 0.2, "start_ms": 0.7, "run_ms": 11, "collect_ms": 1.5, "total_ms": 15, "outside_ms": 17}
		if len(got) != len(wantJSON) {
			t.Errorf("tako phases %v, want %v", got, wantJSON)
		}
		for k, v := range wantJSON {
			if got[k] != v {
				t.Errorf("tako phases %s = %v, want %v", k, got[k], v)
			}
		}
		if _, ok := m["baseline"]["phases"]; ok {
			t.Errorf("the baseline has phases: %s", m["baseline"]["phases"])
		}
	})

	t.Run("human", func(t *testing.T) {
		t.Parallel()
		r := fixedReport()
		r.Tako.Phases = &want
		var out bytes.Buffer
		writeTable(&out, r)
		line := "\n\nwhere the time goes (p50): queue 0.2 ms, start 0.7 ms, run 11.0 ms, collect 1.5 ms, outside the runner 17.0 ms\n\ntako is "
		if !strings.Contains(out.String(), line) {
			t.Errorf("no %q between the table and the ratio in\n%s", line, out.String())
		}
		r.Tako.Phases = nil
		out.Reset()
		writeTable(&out, r)
		if strings.Contains(out.String(), "where the time goes") {
			t.Errorf("phases without a server timing:\n%s", out.String())
		}
	})

	t.Run("compare", func(t *testing.T) {
		t.Parallel()
		r := fixedCompareReport()
		r.Tako.Phases = &want
		var out bytes.Buffer
		writeTable(&out, r)
		line := "where the time goes in " + r.Config.JobType + " (p50): queue 0.2 ms, start 0.7 ms"
		if !strings.Contains(out.String(), line) {
			t.Errorf("no %q in\n%s", line, out.String())
		}
		if strings.Count(out.String(), "where the time goes") != 1 {
			t.Errorf("phases for a row without a server timing:\n%s", out.String())
		}
	})
}
