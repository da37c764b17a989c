package bench

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixedCompareReport is a --compare report of default against data and
// serial, as a run would produce; serial had no successful job.
func fixedCompareReport() Report {
	main := Stats{Requests: 10, Errors: 1, ErrorKinds: map[string]int{"http 503": 1},
		ErrorSamples: map[string]string{"http 503": "Service unavailable"}, DurationS: 1, JobsPerS: 9,
		LatencyMS: LatencyStats{P50: 10, P90: 12, P99: 20, Max: 25}, Warm: 9}
	data := Stats{Requests: 10, ErrorKinds: map[string]int{}, DurationS: 2.5, JobsPerS: 4,
		LatencyMS: LatencyStats{P50: 25, P90: 30, P99: 50.5, Max: 60}, Warm: 8, Cold: 2}
	serial := Stats{Requests: 10, Errors: 10, ErrorKinds: map[string]int{"timeout": 10},
		ErrorSamples: map[string]string{"timeout": "no answer within --timeout 1s"}, DurationS: 10}
	cfg := Config{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 2, Requests: 10,
		Timeout: time.Second, Compare: []string{"data", "serial"}}
	return Report{Tako: main, Config: newReportConfig(cfg, jobType{Image: "tako-executor:abc"}),
		Compare: []CompareRow{newCompareRow("data", data, main), newCompareRow("serial", serial, main)}}
}

func TestBenchCompareOutput(t *testing.T) {
	t.Parallel()
	r := fixedCompareReport()

	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		writeTable(&out, r)
		want := strings.Join([]string{
			"tako bench: http://127.0.0.1:8000, job types default, data, serial, sync, concurrency 2, 10 requests",
			"job type  requests  errors  duration  jobs/s  p50 ms  p90 ms  p99 ms  max ms  p50 ×  p99 ×  warm  cold",
			"default         10       1     1.00s     9.0    10.0    12.0    20.0    25.0   1.00   1.00     9     0",
			"data            10       0     2.50s     4.0    25.0    30.0    50.5    60.0   2.50   2.52     8     2",
			"serial          10      10    10.00s     0.0       -       -       -       -      -      -     0     0",
			"",
			"default errors:",
			"  http 503              1  Service unavailable",
			"",
			"serial errors:",
			"  timeout              10  no answer within --timeout 1s",
			"",
		}, "\n")
		if out.String() != want {
			t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
		}
	})

	t.Run("json", func(t *testing.T) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		// The main job type keeps its fields; compare is added.
		for _, k := range []string{"tako", "baseline", "ratio", "config", "compare"} {
			if _, ok := m[k]; !ok {
				t.Errorf("no top-level %q in %s", k, b)
			}
		}
		var rows []map[string]any
		if err := json.Unmarshal(m["compare"], &rows); err != nil || len(rows) != 2 {
			t.Fatalf("compare %s: %v", m["compare"], err)
		}
		for _, row := range rows {
			for _, k := range []string{"job_type", "requests", "errors", "error_kinds", "duration_s", "jobs_per_s",
				"latency_ms", "warm", "cold", "p50_ratio", "p99_ratio"} {
				if _, ok := row[k]; !ok {
					t.Errorf("compared row has no %q: %v", k, row)
				}
			}
		}
		if d := rows[0]; d["job_type"] != "data" || d["p50_ratio"] != 2.5 || d["p99_ratio"] != 2.525 || d["jobs_per_s"] != 4.0 {
			t.Errorf("data row %v", d)
		}
		if s := rows[1]; s["job_type"] != "serial" || s["p50_ratio"] != nil || s["p99_ratio"] != nil || s["errors"] != 10.0 {
			t.Errorf("serial row %v", s)
		}
		var c map[string]any
		json.Unmarshal(m["config"], &c)
		if c["job_type"] != "default" || !reflect.DeepEqual(c["compare"], []any{"data", "serial"}) {
			t.Errorf("config %v", c)
		}
	})
}
