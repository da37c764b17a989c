package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/bench"
)

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
		want := bench.Config{URL: "http://127.0.0.1:8000", JobType: "default", Code: "print(1+1)", Concurrency: 1,
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

// TestBenchEndToEnd runs short benchmarks against a real server and a real
// Docker engine. It checks the output, never the speed.
func TestBenchEndToEnd(t *testing.T) {
	s := startServer(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the baseline needs the docker CLI: %v", err)
	}
	takoBench := func(t *testing.T, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append([]string{"tako", "bench", "--url", s.url}, args...)
		if err := run(t.Context(), args, os.Environ(), &stdout, &stderr); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}

	t.Run("baseline json", func(t *testing.T) {
		out := takoBench(t, "--baseline", "--requests", "6", "--concurrency", "2", "--json")
		var r bench.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if r.Baseline == nil || r.Ratio == nil {
			t.Fatalf("no baseline row or ratio:\n%s", out)
		}
		for name, st := range map[string]bench.Stats{"tako": r.Tako, "baseline": *r.Baseline} {
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
		out := takoBench(t, "--requests", "3", "--async")
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
	takoBench := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		args = append([]string{"tako", "bench", "--url", s.url}, args...)
		err := run(t.Context(), args, os.Environ(), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}

	t.Run("json", func(t *testing.T) {
		out, stderr, err := takoBench("--compare", "data", "--requests", "4", "--concurrency", "2", "--warmup", "1", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var r bench.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if len(r.Compare) != 1 || r.Compare[0].JobType != "data" || r.Config.JobType != "default" {
			t.Fatalf("want default compared with data:\n%s", out)
		}
		if r.Baseline != nil || r.Ratio != nil {
			t.Errorf("a baseline without --baseline:\n%s", out)
		}
		for name, st := range map[string]bench.Stats{"default": r.Tako, "data": r.Compare[0].Stats} {
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
		out, stderr, err := takoBench("--compare", "data", "--requests", "2", "--async")
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
		out, stderr, err := takoBench("--compare", "data,nosuch", "--requests", "1")
		if err == nil || !strings.Contains(err.Error(), `no job type "nosuch" (--compare)`) {
			t.Errorf("err %v", err)
		}
		if out != "" || strings.Contains(stderr, "bench:") {
			t.Errorf("measured before checking the job types:\n%s\n%s", out, stderr)
		}
	})
}

// round3 rounds x to three decimals, as bench rounds its ratios.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
