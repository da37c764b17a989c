package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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
		{latency: 5 * time.Millisecond, err: &benchError{kind: "http 503", detail: "first"}},
		{latency: 5 * time.Millisecond, err: &benchError{kind: "http 503", detail: "second"}},
		{latency: 900 * time.Millisecond, start: "warm", err: &benchError{kind: "status failed", detail: "ZeroDivisionError"}},
	}
	st := newBenchStats(samples, 2*time.Second)
	if st.Requests != 6 || st.Errors != 3 || st.Warm != 3 || st.Cold != 1 {
		t.Errorf("counts %+v", st)
	}
	if st.ErrorKinds["http 503"] != 2 || st.ErrorKinds["status failed"] != 1 || st.ErrorSamples["http 503"] != "first" {
		t.Errorf("error breakdown %v %v", st.ErrorKinds, st.ErrorSamples)
	}
	// Only the three successes count, for latency and jobs/s.
	if want := (latencyStats{P50: 20, P90: 30, P99: 30, Max: 30}); st.LatencyMS != want {
		t.Errorf("latency %+v, want %+v", st.LatencyMS, want)
	}
	if st.JobsPerS != 1.5 || st.DurationS != 2 {
		t.Errorf("jobs/s %v over %vs, want 1.5 over 2s", st.JobsPerS, st.DurationS)
	}
	// The warm-only figures: the two successful warm starts.
	if want := (latencyStats{P50: 10, P90: 30, P99: 30, Max: 30}); st.WarmMS == nil || *st.WarmMS != want {
		t.Errorf("warm latency %+v, want %+v", st.WarmMS, want)
	}
}

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	code := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(code, []byte("print('from file')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, ok, err := parseBenchFlags(nil, io.Discard)
		if err != nil || !ok {
			t.Fatalf("parse: %v %v", ok, err)
		}
		want := benchConfig{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 1,
			Requests: 100, Timeout: 60 * time.Second}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("defaults %+v, want %+v", cfg, want)
		}
	})
	t.Run("file and duration", func(t *testing.T) {
		cfg, _, err := parseBenchFlags([]string{"--file", code, "--duration", "30s", "--url", "http://h:1/"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Code != "print('from file')\n" || cfg.Duration != 30*time.Second || cfg.Requests != 0 || cfg.URL != "http://h:1" {
			t.Errorf("config %+v", cfg)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		_, ok, err := parseBenchFlags([]string{"-h"}, &out)
		if err != nil || ok || !strings.Contains(out.String(), "-baseline") {
			t.Errorf("help: ok %v, err %v, output %q", ok, err, out.String())
		}
	})

	tests := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"code and file", []string{"--code", "print(2)", "--file", code}, "--code and --file"},
		{"duration and requests", []string{"--duration", "5s", "--requests", "10"}, "--duration and --requests"},
		{"concurrency 0", []string{"--concurrency", "0"}, "--concurrency must be at least 1"},
		{"negative concurrency", []string{"--concurrency", "-3"}, "--concurrency"},
		{"bad duration", []string{"--duration", "fast"}, `invalid value "fast" for flag -duration`},
		{"zero duration", []string{"--duration", "0s"}, "--duration must be positive"},
		{"zero requests", []string{"--requests", "0"}, "--requests must be at least 1"},
		{"negative warmup", []string{"--warmup", "-1"}, "--warmup"},
		{"zero timeout", []string{"--timeout", "0s"}, "--timeout must be positive"},
		{"bad url", []string{"--url", "localhost:8000"}, "--url"},
		{"missing file", []string{"--file", filepath.Join(t.TempDir(), "nope.py")}, "--file"},
		{"empty code", []string{"--code", "  "}, "--code must not be empty"},
		{"empty job type", []string{"--job-type", ""}, "--job-type"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--fast"}, "-fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, ok, err := parseBenchFlags(tt.args, &stderr)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
	// run wires bench in and passes the error through.
	err := run(context.Background(), []string{"tako", "bench", "--concurrency", "0"}, nil, io.Discard, io.Discard)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--concurrency") {
		t.Errorf("tako bench --concurrency 0: %v", err)
	}
}

// fixedReport is a report with both rows, as a run would produce.
func fixedReport() benchReport {
	tako := benchStats{Requests: 100, Errors: 2, ErrorKinds: map[string]int{"http 503": 1, "status timeout": 1},
		ErrorSamples: map[string]string{"http 503": "Service unavailable", "status timeout": "timeout: took too long"},
		DurationS:    1.25, JobsPerS: 78.4, LatencyMS: latencyStats{P50: 11.5, P90: 14.25, P99: 38, Max: 52.125}, Warm: 95, Cold: 5}
	base := benchStats{Requests: 100, ErrorKinds: map[string]int{}, DurationS: 45.5, JobsPerS: 2.2,
		LatencyMS: latencyStats{P50: 460, P90: 520.5, P99: 610, Max: 1200.75}, Cold: 100}
	cfg := benchConfig{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 1, Requests: 100,
		Baseline: true, Image: "tako-executor:abc", Timeout: time.Minute}
	return benchReport{Tako: tako, Baseline: &base, Ratio: newRatio(tako, base),
		Config: newReportConfig(cfg, benchJobType{Image: "tako-executor:abc", Limits: benchLimits{MemoryBytes: 512 << 20, CPUs: 1, Pids: 128}})}
}

func TestBenchOutput(t *testing.T) {
	t.Parallel()
	r := fixedReport()
	if r.Ratio.P50 != 40 || r.Ratio.JobsPerS != 35.636 {
		t.Errorf("ratio %+v, want p50 40 and jobs/s 35.636", *r.Ratio)
	}

	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		writeBenchTable(&out, r)
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
		r.Tako = benchStats{Requests: 2, Errors: 2, ErrorKinds: map[string]int{"timeout": 2},
			ErrorSamples: map[string]string{"timeout": "no answer within --timeout 2s"}, DurationS: 2}
		if r.Ratio = newRatio(r.Tako, *r.Baseline); r.Ratio != nil {
			t.Errorf("ratio %+v without a successful tako job", *r.Ratio)
		}
		var out bytes.Buffer
		writeBenchTable(&out, r)
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

func TestBenchCompareFlags(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		args []string
		want []string
	}{
		{"one", []string{"--compare", "data"}, []string{"data"}},
		{"in order, spaces ignored", []string{"--compare", "serial, data"}, []string{"serial", "data"}},
		{"the default against another main", []string{"--job-type", "data", "--compare", "default"}, []string{"default"}},
		{"with --baseline=false", []string{"--baseline=false", "--compare", "data"}, []string{"data"}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok, err := parseBenchFlags(tt.args, io.Discard)
			if err != nil || !ok || !slices.Equal(cfg.Compare, tt.want) {
				t.Errorf("parseBenchFlags(%q) = %q, %v, %v; want %q", tt.args, cfg.Compare, ok, err, tt.want)
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"empty", []string{"--compare", ""}, "--compare must name at least one job type"},
		{"only spaces", []string{"--compare", "  "}, "--compare must name at least one job type"},
		{"empty name", []string{"--compare", "data,,serial"}, `--compare: job type 2 of "data,,serial" is empty`},
		{"trailing comma", []string{"--compare", "data,"}, `--compare: job type 2 of "data," is empty`},
		{"upper case", []string{"--compare", "Data"}, `--compare: "Data" is not a valid job type name`},
		{"slash", []string{"--compare", "data,../x"}, `--compare: "../x" is not a valid job type name`},
		{"too long", []string{"--compare", strings.Repeat("a", 64)}, "is not a valid job type name"},
		{"repeated", []string{"--compare", "data,serial,data"}, `--compare: "data" is listed twice`},
		{"the main job type", []string{"--compare", "data,default"}, `--compare: "default" is the --job-type`},
		{"another main job type", []string{"--job-type", "data", "--compare", "data"}, `--compare: "data" is the --job-type`},
		{"with --baseline", []string{"--baseline", "--compare", "data"}, "--compare and --baseline cannot be used together"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseBenchFlags(tt.args, io.Discard)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
}

// fixedCompareReport is a --compare report of default against data and
// serial, as a run would produce; serial had no successful job.
func fixedCompareReport() benchReport {
	main := benchStats{Requests: 10, Errors: 1, ErrorKinds: map[string]int{"http 503": 1},
		ErrorSamples: map[string]string{"http 503": "Service unavailable"}, DurationS: 1, JobsPerS: 9,
		LatencyMS: latencyStats{P50: 10, P90: 12, P99: 20, Max: 25}, Warm: 9}
	data := benchStats{Requests: 10, ErrorKinds: map[string]int{}, DurationS: 2.5, JobsPerS: 4,
		LatencyMS: latencyStats{P50: 25, P90: 30, P99: 50.5, Max: 60}, Warm: 8, Cold: 2}
	serial := benchStats{Requests: 10, Errors: 10, ErrorKinds: map[string]int{"timeout": 10},
		ErrorSamples: map[string]string{"timeout": "no answer within --timeout 1s"}, DurationS: 10}
	cfg := benchConfig{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 2, Requests: 10,
		Timeout: time.Second, Compare: []string{"data", "serial"}}
	return benchReport{Tako: main, Config: newReportConfig(cfg, benchJobType{Image: "tako-executor:abc"}),
		Compare: []compareRow{newCompareRow("data", data, main), newCompareRow("serial", serial, main)}}
}

func TestBenchCompareOutput(t *testing.T) {
	t.Parallel()
	r := fixedCompareReport()

	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		writeBenchTable(&out, r)
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

func TestBenchBaselineArgs(t *testing.T) {
	t.Parallel()
	got := strings.Join(baselineArgs("tako-bench-1", "img:1", "/w", "/w/output-1", benchLimits{MemoryBytes: 536870912, CPUs: 1.5, Pids: 128}), " ")
	want := "run --rm --name tako-bench-1 --network=none --read-only --cap-drop=ALL --security-opt=no-new-privileges " +
		"--memory=536870912 --memory-swap=536870912 --cpus=1.5 --pids-limit=128 " +
		"--ulimit nofile=256:256 --ulimit fsize=104857600 --tmpfs /tmp:rw,noexec,nosuid,size=64m --user 1000:1000 --init " +
		"--label tako.managed=true --label tako.kind=bench-baseline " +
		"-v /w/code:/code:ro -v /w/input:/input:ro -v /w/output-1:/output:rw img:1 python3 -u /code/main.py"
	if got != want {
		t.Errorf("docker argv\n got %s\nwant %s", got, want)
	}
}

// TestBenchEndToEnd runs short benchmarks against a real server and a real
// Docker engine. It checks the output, never the speed.
func TestBenchEndToEnd(t *testing.T) {
	s := startServer(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the baseline needs the docker CLI: %v", err)
	}
	bench := func(t *testing.T, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append([]string{"tako", "bench", "--url", s.url}, args...)
		if err := run(t.Context(), args, os.Environ(), &stdout, &stderr); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}

	t.Run("baseline json", func(t *testing.T) {
		out := bench(t, "--baseline", "--requests", "6", "--concurrency", "2", "--json")
		var r benchReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if r.Baseline == nil || r.Ratio == nil {
			t.Fatalf("no baseline row or ratio:\n%s", out)
		}
		for name, st := range map[string]benchStats{"tako": r.Tako, "baseline": *r.Baseline} {
			if st.Requests != 6 || st.Errors != 0 || len(st.ErrorKinds) != 0 {
				t.Errorf("%s: %d requests, %d errors %v; want 6 and 0:\n%s", name, st.Requests, st.Errors, st.ErrorKinds, out)
			}
			l := st.LatencyMS
			if l.P50 <= 0 || l.P90 < l.P50 || l.P99 < l.P90 || l.Max < l.P99 || st.JobsPerS <= 0 || st.DurationS <= 0 {
				t.Errorf("%s: latency %+v, %v jobs/s over %vs", name, l, st.JobsPerS, st.DurationS)
			}
			if st.Warm+st.Cold != 6 {
				t.Errorf("%s: %d warm + %d cold starts, want 6", name, st.Warm, st.Cold)
			}
		}
		if r.Baseline.Cold != 6 {
			t.Errorf("baseline: %d cold starts, want 6", r.Baseline.Cold)
		}
		if r.Ratio.P50 <= 0 || r.Ratio.JobsPerS <= 0 {
			t.Errorf("ratio %+v", *r.Ratio)
		}
		if r.Config.Concurrency != 2 || r.Config.Image == "" || r.Config.Limits.MemoryBytes <= 0 {
			t.Errorf("config %+v", r.Config)
		}
	})

	t.Run("human", func(t *testing.T) {
		out := bench(t, "--requests", "3", "--async")
		for _, h := range []string{"requests", "errors", "duration", "jobs/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "warm", "cold"} {
			if !strings.Contains(out, h) {
				t.Errorf("no %q column in\n%s", h, out)
			}
		}
		if !strings.Contains(out, "\ntako ") || strings.Contains(out, "baseline") || strings.Contains(out, "errors:") {
			t.Errorf("want one tako row without errors:\n%s", out)
		}
	})

	// docker run --rm removed every baseline container.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=tako.kind=bench-baseline").Output()
		if err != nil {
			t.Fatalf("docker ps: %v", err)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("baseline containers left behind: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBenchCompareEndToEnd measures two job types of a real server in one
// run. It checks the output, never the speed.
func TestBenchCompareEndToEnd(t *testing.T) {
	s := startServer(t)
	bench := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		args = append([]string{"tako", "bench", "--url", s.url}, args...)
		err := run(t.Context(), args, os.Environ(), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}

	t.Run("json", func(t *testing.T) {
		out, stderr, err := bench("--compare", "data", "--requests", "4", "--concurrency", "2", "--warmup", "1", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var r benchReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if len(r.Compare) != 1 || r.Compare[0].JobType != "data" || r.Config.JobType != "default" {
			t.Fatalf("want default compared with data:\n%s", out)
		}
		if r.Baseline != nil || r.Ratio != nil {
			t.Errorf("a baseline without --baseline:\n%s", out)
		}
		for name, st := range map[string]benchStats{"default": r.Tako, "data": r.Compare[0].benchStats} {
			if st.Requests != 4 || st.Errors != 0 {
				t.Errorf("%s: %d requests, %d errors %v; want 4 and 0:\n%s", name, st.Requests, st.Errors, st.ErrorKinds, out)
			}
			l := st.LatencyMS
			if l.P50 <= 0 || l.P99 < l.P50 || st.JobsPerS <= 0 || st.Warm+st.Cold != 4 {
				t.Errorf("%s: latency %+v, %v jobs/s, %d warm + %d cold", name, l, st.JobsPerS, st.Warm, st.Cold)
			}
		}
		c := r.Compare[0]
		if c.P50Ratio == nil || c.P99Ratio == nil ||
			*c.P50Ratio != round3(c.LatencyMS.P50/r.Tako.LatencyMS.P50) || *c.P99Ratio != round3(c.LatencyMS.P99/r.Tako.LatencyMS.P99) {
			t.Errorf("ratios %v %v for p50 %v/%v and p99 %v/%v", c.P50Ratio, c.P99Ratio,
				c.LatencyMS.P50, r.Tako.LatencyMS.P50, c.LatencyMS.P99, r.Tako.LatencyMS.P99)
		}
		// Each job type is measured in turn, the main one first.
		if i, j := strings.Index(stderr, "job type default"), strings.Index(stderr, "job type data"); i < 0 || j < i {
			t.Errorf("progress:\n%s", stderr)
		}
	})

	t.Run("human", func(t *testing.T) {
		out, stderr, err := bench("--compare", "data", "--requests", "2", "--async")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		lines := strings.Split(out, "\n")
		if len(lines) < 4 || !strings.Contains(lines[0], "job types default, data, async") ||
			!strings.HasPrefix(lines[1], "job type ") || !strings.Contains(lines[1], "p50 ×") || !strings.Contains(lines[1], "p99 ×") ||
			!strings.HasPrefix(lines[2], "default ") || !strings.Contains(lines[2], " 1.00 ") || !strings.HasPrefix(lines[3], "data ") {
			t.Errorf("want a default row and a data row:\n%s", out)
		}
		if strings.Contains(out, "errors:") {
			t.Errorf("errors:\n%s", out)
		}
	})

	t.Run("unknown job type", func(t *testing.T) {
		out, stderr, err := bench("--compare", "data,nosuch", "--requests", "1")
		if err == nil || !strings.Contains(err.Error(), `no job type "nosuch" (--compare)`) {
			t.Errorf("err %v", err)
		}
		if out != "" || strings.Contains(stderr, "bench:") {
			t.Errorf("measured before checking the job types:\n%s\n%s", out, stderr)
		}
	})
}
