package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixedReport is a report with both rows, as a run would produce.
func fixedReport() Report {
	tako := Stats{Requests: 100, Errors: 2, ErrorKinds: map[string]int{"http 503": 1, "status timeout": 1},
		ErrorSamples: map[string]string{"http 503": "Service unavailable", "status timeout": "timeout: took too long"},
		DurationS:    1.25, JobsPerS: 78.4, LatencyMS: LatencyStats{P50: 11.5, P90: 14.25, P99: 38, Max: 52.125}, Warm: 95, Cold: 5}
	base := Stats{Requests: 100, ErrorKinds: map[string]int{}, DurationS: 45.5, JobsPerS: 2.2,
		LatencyMS: LatencyStats{P50: 460, P90: 520.5, P99: 610, Max: 1200.75}, Cold: 100}
	cfg := Config{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 1, Requests: 100,
		Baseline: true, Image: "tako-executor:abc", Timeout: time.Minute}
	return Report{Tako: tako, Baseline: &base, Ratio: newRatio(tako, base),
		Config: newReportConfig(cfg, jobType{Image: "tako-executor:abc", Limits: Limits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 128}})}
}

func TestBenchOutput(t *testing.T) {
	t.Parallel()
	r := fixedReport()
	if r.Ratio.P50 != 40 || r.Ratio.JobsPerS != 35.636 {
		t.Errorf("ratio %+v, want p50 40 and jobs/s 35.636", *r.Ratio)
	}

	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		writeTable(&out, r)
		lines := strings.Split(out.String(), "\n")
		want := []string{
			"tako bench: http://127.0.0.1:8000, job type default, sync, concurrency 1, 100 requests",
			"          requests  errors  duration  jobs/s  p50 ms  p90 ms  p99 ms  max ms  warm  cold",
			"tako           100       2     1.25s    78.4    11.5    14.2    38.0    52.1    95     5",
			"baseline       100       0    45.50s     2.2   460.0   520.5   610.0  1200.8     0   100",
			"",
			"tako is 40.0x faster (p50 11.5 ms vs the baseline's 460.0 ms) and does 35.6x the baseline's jobs/s",
			"",
			"tako errors:",
			"  http 503              1  Service unavailable",
			"  status timeout        1  timeout: took too long",
		}
		if len(lines) < len(want) || !slices.Equal(lines[:len(want)], want) {
			t.Errorf("table:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
		}
		if strings.Contains(out.String(), "baseline errors") {
			t.Errorf("a model without errors has an error section:\n%s", out.String())
		}
	})

	t.Run("no successful job", func(t *testing.T) {
		r := fixedReport()
		r.Tako = Stats{Requests: 2, Errors: 2, ErrorKinds: map[string]int{"timeout": 2},
			ErrorSamples: map[string]string{"timeout": "no answer within --timeout 2s"}, DurationS: 2}
		if r.Ratio = newRatio(r.Tako, *r.Baseline); r.Ratio != nil {
			t.Errorf("ratio %+v without a successful tako job", *r.Ratio)
		}
		var out bytes.Buffer
		writeTable(&out, r)
		for _, want := range []string{
			"tako             2       2     2.00s     0.0       -       -       -       -     0     0\n",
			"\nno ratio: tako or the baseline had no successful job\n",
			"tako errors:\n  timeout               2  no answer within --timeout 2s\n",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("no %q in\n%s", want, out.String())
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(m) != 4 || m["tako"] == nil || m["baseline"] == nil || m["ratio"] == nil || m["config"] == nil {
			t.Fatalf("top-level keys of %s", b)
		}
		for _, row := range []string{"tako", "baseline"} {
			for _, k := range []string{"requests", "errors", "error_kinds", "duration_s", "jobs_per_s", "latency_ms", "warm", "cold"} {
				if _, ok := m[row][k]; !ok {
					t.Errorf("%s has no %q: %s", row, k, b)
				}
			}
		}
		lat := m["tako"]["latency_ms"].(map[string]any)
		if lat["p50"] != 11.5 || lat["p90"] != 14.25 || lat["p99"] != 38.0 || lat["max"] != 52.125 {
			t.Errorf("tako latency_ms %v", lat)
		}
		if m["ratio"]["p50"] != 40.0 || m["ratio"]["jobs_per_s"] != 35.636 {
			t.Errorf("ratio %v", m["ratio"])
		}
		c := m["config"]
		if c["url"] != "http://127.0.0.1:8000" || c["job_type"] != "default" || c["mode"] != "sync" || c["concurrency"] != 1.0 ||
			c["requests"] != 100.0 || c["image"] != "tako-executor:abc" || c["timeout"] != "1m0s" {
			t.Errorf("config %v", c)
		}

		// Without --baseline, baseline and ratio are null.
		r := r
		r.Baseline, r.Ratio = nil, nil
		b, _ = json.Marshal(r)
		var n map[string]json.RawMessage
		json.Unmarshal(b, &n)
		if string(n["baseline"]) != "null" || string(n["ratio"]) != "null" {
			t.Errorf("without a baseline: %s", b)
		}
	})
}
