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

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/bench"
	"github.com/tako-run/tako/runner/runnertest"
)

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	code := filepath.Join(t.TempDir(), "job.py")
	if err := os.WriteFile(code, []byte("print('from file')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, ok, err := parseBench(nil, io.Discard)
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
		cfg, _, err := parseBench([]string{"--file", code, "--duration", "30s", "--url", "http://h:1/"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Code != "print('from file')\n" || cfg.Duration != 30*time.Second || cfg.Requests != 0 || cfg.URL != "http://h:1" {
			t.Errorf("config %+v", cfg)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		_, ok, err := parseBench([]string{"-h"}, &out)
		if err != nil || ok || !strings.Contains(out.String(), "-baseline") || !strings.Contains(out.String(), "-floors") ||
			!strings.Contains(out.String(), "-burst-idle") {
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
			_, ok, err := parseBench(tt.args, &stderr)
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
			cfg, ok, err := parseBench(tt.args, io.Discard)
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
			_, ok, err := parseBench(tt.args, io.Discard)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
}

// parseBench is parseBenchFlags on a fresh command, with its results as
// the tests read them: the load, whether the command runs (false after
// -h), and the error.
func parseBench(args []string, stderr io.Writer) (bench.Config, bool, error) {
	f, err := parseBenchFlags(newCommand("bench", nil, stderr), args)
	if errors.Is(err, errHelp) {
		return f.cfg, false, nil
	}
	return f.cfg, err == nil, err
}

func TestBenchFloorFlags(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name     string
		args     []string
		runs     int
		duration time.Duration
		dbURL    string
	}{
		{"defaults", []string{"--floors"}, 20, 10 * time.Second, ""},
		{"churn for --duration", []string{"--floors", "--duration", "30s"}, 20, 30 * time.Second, ""},
		{"all given", []string{"--floors", "--floor-runs", "3", "--floor-duration", "2s", "--database-url", "postgres://h/db",
			"--config", "../../tako.yaml"}, 3, 2 * time.Second, "postgres://h/db"},
		{"--floor-duration over --duration", []string{"--floors", "--duration", "30s", "--floor-duration", "5s"}, 20, 5 * time.Second, ""},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBenchFlags(newCommand("bench", nil, io.Discard), tt.args)
			if err != nil || !f.floors || f.cfg.FloorRuns != tt.runs || f.cfg.FloorDuration != tt.duration || f.databaseURL != tt.dbURL {
				t.Errorf("parseBenchFlags(%q) = floors %v, %d runs, %s, %q, %v; want %d runs, %s, %q",
					tt.args, f.floors, f.cfg.FloorRuns, f.cfg.FloorDuration, f.databaseURL, err, tt.runs, tt.duration, tt.dbURL)
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"runs without --floors", []string{"--floor-runs", "3"}, "--floor-runs is used only with --floors"},
		{"duration without --floors", []string{"--floor-duration", "3s"}, "--floor-duration is used only with --floors"},
		{"database without --floors", []string{"--database-url", "postgres://h/db"}, "--database-url is used only with --floors"},
		{"config without --floors", []string{"--config", "../../tako.yaml"}, "--config is used only with --floors"},
		{"-c without --floors", []string{"-c", "../../tako.yaml"}, "-c is used only with --floors"},
		{"zero runs", []string{"--floors", "--floor-runs", "0"}, "--floor-runs must be at least 1, not 0"},
		{"zero duration", []string{"--floors", "--floor-duration", "0s"}, "--floor-duration must be positive"},
		{"empty database", []string{"--floors", "--database-url", ""}, "--database-url must not be empty"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseBench(tt.args, io.Discard)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
}

func TestBenchDBCostFlags(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name  string
		args  []string
		idle  time.Duration
		dbURL string
	}{
		{"defaults", []string{"--db-cost"}, 10 * time.Second, ""},
		{"idle for --duration", []string{"--db-cost", "--duration", "30s"}, 30 * time.Second, ""},
		{"all given", []string{"--db-cost", "--db-idle", "3s", "--database-url", "postgres://h/db", "--config", "../../tako.yaml"},
			3 * time.Second, "postgres://h/db"},
		{"off", []string{"--db-cost=false"}, 0, ""},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseBenchFlags(newCommand("bench", nil, io.Discard), tt.args)
			want := tt.name != "off"
			if err != nil || f.dbCost != want || f.cfg.DBIdle != tt.idle || f.databaseURL != tt.dbURL {
				t.Errorf("parseBenchFlags(%q) = db-cost %v, idle %s, %q, %v; want %v, %s, %q",
					tt.args, f.dbCost, f.cfg.DBIdle, f.databaseURL, err, want, tt.idle, tt.dbURL)
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"idle without --db-cost", []string{"--db-idle", "5s"}, "--db-idle is used only with --db-cost"},
		{"database without either", []string{"--database-url", "postgres://h/db"}, "--database-url is used only with --floors or --db-cost"},
		{"zero idle", []string{"--db-cost", "--db-idle", "0s"}, "--db-idle must be positive, not 0s"},
		{"empty database", []string{"--db-cost", "--database-url", ""}, "--database-url must not be empty"},
		{"with --floors", []string{"--db-cost", "--floors"}, "--db-cost and --floors cannot be used together"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseBench(tt.args, io.Discard)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
}

func TestBenchBurstFlags(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		args []string
		idle time.Duration
		size int
	}{
		{"defaults", []string{"--burst"}, time.Minute, 0},
		{"all given", []string{"--burst", "--burst-idle", "2s", "--burst-size", "5"}, 2 * time.Second, 5},
		{"no idle", []string{"--burst", "--burst-idle", "0s"}, 0, 0},
		{"size 0 is twice pool.max", []string{"--burst", "--burst-size", "0"}, time.Minute, 0},
		{"with the other modes", []string{"--burst", "--async", "--compare", "data", "--duration", "5s"}, time.Minute, 0},
		{"off", []string{"--burst=false"}, 0, 0},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			cfg, ok, err := parseBench(tt.args, io.Discard)
			wantBurst := tt.name != "off"
			if err != nil || !ok || cfg.Burst != wantBurst || cfg.BurstIdle != tt.idle || cfg.BurstSize != tt.size {
				t.Errorf("parseBenchFlags(%q) = burst %v, idle %s, size %d, %v; want burst %v, idle %s, size %d",
					tt.args, cfg.Burst, cfg.BurstIdle, cfg.BurstSize, err, wantBurst, tt.idle, tt.size)
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"idle without --burst", []string{"--burst-idle", "5s"}, "--burst-idle is used only with --burst"},
		{"size without --burst", []string{"--burst-size", "4"}, "--burst-size is used only with --burst"},
		{"negative idle", []string{"--burst", "--burst-idle", "-1s"}, "--burst-idle must be 0 or more, not -1s"},
		{"negative size", []string{"--burst", "--burst-size", "-2"}, "--burst-size must be 0 (twice the job type's pool.max) or more, not -2"},
		{"bad idle", []string{"--burst", "--burst-idle", "soon"}, `invalid value "soon" for flag -burst-idle`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseBench(tt.args, io.Discard)
			if ok || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBenchFlags(%q) = %v, %v; want a usage error containing %q", tt.args, ok, err, tt.want)
			}
		})
	}
}

// TestBenchFloorDatabaseMissing runs tako bench --floors with a
// configuration that names no database and no --database-url: it stops
// before it measures anything, naming the flag and the key.
func TestBenchFloorDatabaseMissing(t *testing.T) {
	t.Parallel()
	environ := []string{"HOME=" + t.TempDir()} // no TAKO_DATABASE_URL
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"tako", "bench", "--floors", "--config", "../../tako.yaml"}, environ, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--database-url") || !strings.Contains(err.Error(), "database.url") ||
		!strings.Contains(err.Error(), "tako.yaml") {
		t.Errorf("err %v", err)
	}
	if stdout.Len() > 0 || strings.Contains(stderr.String(), "bench:") {
		t.Errorf("measured without a database:\n%s\n%s", stdout.String(), stderr.String())
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
		out, stderr, err := benchCommand(t, s.url)(args...)
		if err != nil {
			t.Fatalf("%q: %v\n%s", args, err, stderr)
		}
		return out
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

// TestBenchDBCostDatabaseMissing runs tako bench --db-cost with a
// configuration that names no database and no --database-url: it stops
// before it measures anything, naming the flag and the key.
func TestBenchDBCostDatabaseMissing(t *testing.T) {
	t.Parallel()
	environ := []string{"HOME=" + t.TempDir()} // no TAKO_DATABASE_URL
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"tako", "bench", "--db-cost", "--config", "../../tako.yaml"}, environ, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--db-cost needs the database") ||
		!strings.Contains(err.Error(), "--database-url") || !strings.Contains(err.Error(), "database.url") {
		t.Errorf("err %v", err)
	}
	if stdout.Len() > 0 || strings.Contains(stderr.String(), "bench:") {
		t.Errorf("measured without a database:\n%s\n%s", stdout.String(), stderr.String())
	}
}

// TestBenchDBCostEndToEnd measures the database work of a short run
// against a real server of its own and its database. It checks the
// report's shape and that the interval shows the jobs' transactions and
// rows, never the figures: the background is noisy on a short run.
func TestBenchDBCostEndToEnd(t *testing.T) {
	runnertest.Docker(t)
	s := startOwnServer(t)
	var stdout, stderr bytes.Buffer
	args := []string{"tako", "bench", "--url", s.url, "--db-cost", "--db-idle", "2s", "--json", "--requests", "6",
		"--database-url", s.dbURL}
	if err := run(t.Context(), args, os.Environ(), &stdout, &stderr); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, stderr.String())
	}
	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("decode %s: %v", stdout.String(), err)
	}
	c := r.Database
	if c == nil || c.PerJob == nil {
		t.Fatalf("no database object or no per-job figures:\n%s", stdout.String())
	}
	if c.Requests != 6 || c.IdleS < 2 || c.SettleS != bench.DBSettle.Seconds() || c.IntervalS < c.SettleS || c.Note == "" ||
		!strings.HasPrefix(c.Database, "tako_") {
		t.Errorf("database object %+v", *c)
	}
	if c.Total.Transactions < 6 || c.Total.RowsWritten < 6 || c.Total.ActiveMS <= 0 {
		t.Errorf("6 jobs, and the interval shows %+v", c.Total)
	}
	for _, want := range []string{"bench: database: 2s idle for the background", "bench: database: waiting 11s for PostgreSQL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %q in\n%s", want, stderr.String())
		}
	}
}

// TestBenchFloorsEndToEnd measures the floors around a short run against a
// real server, Docker engine and database, with the server's work
// directory. It checks the output, never the speed.
func TestBenchFloorsEndToEnd(t *testing.T) {
	s := startServer(t)
	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	var stdout, stderr bytes.Buffer
	args := []string{"tako", "bench", "--url", s.url, "--floors", "--json", "--requests", "10",
		"--floor-runs", "3", "--floor-duration", "1s", "--config", "../../tako.yaml", "--database-url", dbURL}
	environ := append(os.Environ(), "TAKO_RUNNER_WORK_DIR="+s.workDir)
	if err := run(t.Context(), args, environ, &stdout, &stderr); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, stderr.String())
	}
	out := stdout.String()
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if r.Tako.Requests != 10 || r.Tako.Errors != 0 {
		t.Errorf("tako: %d requests, %d errors %v; want 10 and 0", r.Tako.Requests, r.Tako.Errors, r.Tako.ErrorKinds)
	}
	f, ratios := r.Floors, r.FloorRatios
	if f == nil || ratios == nil {
		t.Fatalf("no floors or no floor ratios:\n%s", out)
	}
	if f.Runs != 3 || f.ChurnConcurrency != 1 || f.ChurnDurationS != 1 || (f.Runtime != "runc" && f.Runtime != "runsc") {
		t.Errorf("floors measured with %d runs, churn at %d for %vs, runtime %q", f.Runs, f.ChurnConcurrency, f.ChurnDurationS, f.Runtime)
	}
	_, pyErr := exec.LookPath("python3")
	hasPython := pyErr == nil
	positive := func(name string, v float64) {
		if v <= 0 {
			t.Errorf("%s = %v, want a positive number:\n%s", name, v, out)
		}
	}
	for when, set := range map[string]bench.FloorSet{"before": f.Before, "after": f.After, "mean": f.Mean} {
		lats := map[string]bench.FloorLatency{"trigger": set.Trigger, "store": set.Store, "engine cold": set.EngineCold,
			"bootstrap cold": set.BootstrapCold}
		if (set.HostInterpreter != nil) != hasPython {
			t.Errorf("%s: host interpreter floor %v with python3 on PATH %v", when, set.HostInterpreter, hasPython)
		} else if hasPython {
			lats["host interpreter"] = *set.HostInterpreter
		}
		for name, l := range lats {
			positive(when+" "+name+" p50", l.P50)
			if l.P99 < l.P50 {
				t.Errorf("%s %s: p99 %v below p50 %v", when, name, l.P99, l.P50)
			}
		}
		positive(when+" engine churn", set.EngineChurn)
		positive(when+" bootstrap churn", set.BootstrapChurn)
	}
	for side, lr := range map[string]bench.LatencyFloorRatios{"p50": ratios.P50, "p99": ratios.P99} {
		for name, v := range map[string]float64{"trigger": lr.Trigger, "store": lr.Store, "trigger + store": lr.TriggerStore,
			"engine cold": lr.EngineCold, "bootstrap cold": lr.BootstrapCold} {
			positive(side+" over "+name, v)
		}
		if (lr.HostInterpreter != nil) != hasPython {
			t.Errorf("%s over the host interpreter: %v with python3 on PATH %v", side, lr.HostInterpreter, hasPython)
		} else if hasPython {
			positive(side+" over the host interpreter", *lr.HostInterpreter)
		}
	}
	positive("jobs/s over the engine churn", ratios.JobsPerS)
	positive("jobs/s over the bootstrap churn", ratios.JobsPerSOverBootstrap)
	// The JSON's own names, as a script reads them.
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for key, fields := range map[string][]string{
		"floors":       {"runs", "churn_concurrency", "churn_duration_s", "runtime", "before", "after", "mean"},
		"floor_ratios": {"p50", "p99", "jobs_per_s_over_engine_churn", "jobs_per_s_over_bootstrap_churn"},
	} {
		for _, field := range fields {
			if _, ok := raw[key][field]; !ok {
				t.Errorf("%s has no %q:\n%s", key, field, out)
			}
		}
	}
	for _, when := range []string{"before", "after", "mean"} {
		var set map[string]json.RawMessage
		if err := json.Unmarshal(raw["floors"][when], &set); err != nil {
			t.Fatalf("floors.%s: %v", when, err)
		}
		for _, field := range []string{"bootstrap_cold_ms", "bootstrap_churn_per_s"} {
			if _, ok := set[field]; !ok {
				t.Errorf("floors.%s has no %q:\n%s", when, field, out)
			}
		}
	}
	t.Logf("bootstrap floors (%s), mean: cold p50 %.1f ms, p99 %.1f ms; churn %.2f containers/s at concurrency %d (engine cold p50 %.1f ms, churn %.2f/s)",
		f.Runtime, f.Mean.BootstrapCold.P50, f.Mean.BootstrapCold.P99, f.Mean.BootstrapChurn, f.ChurnConcurrency,
		f.Mean.EngineCold.P50, f.Mean.EngineChurn)
	if !strings.Contains(stderr.String(), "floors before tako") || !strings.Contains(stderr.String(), "floors after tako") {
		t.Errorf("progress:\n%s", stderr.String())
	}

	// Nothing is left behind: the floors' containers are removed before
	// the command returns, and so is the store floor's scratch schema.
	left, err := exec.Command("docker", "ps", "-aq", "--filter", "label=tako.kind=bench-floor").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	if len(bytes.TrimSpace(left)) > 0 {
		t.Errorf("floor containers left behind: %s", left)
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var schemas int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tako_scratch_%'`).Scan(&schemas); err != nil {
		t.Fatal(err)
	}
	if schemas != 0 {
		t.Errorf("%d scratch schemas left behind", schemas)
	}
}

// benchCommand returns a function that runs tako bench against the server
// at url with more arguments, and returns its stdout, stderr and error.
func benchCommand(t *testing.T, url string) func(args ...string) (string, string, error) {
	return func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		args = append([]string{"tako", "bench", "--url", url}, args...)
		err := run(t.Context(), args, os.Environ(), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
}

// TestBenchCompareEndToEnd measures two job types of a real server in one
// run. It checks the output, never the speed.
func TestBenchCompareEndToEnd(t *testing.T) {
	s := startServer(t)
	takoBench := benchCommand(t, s.url)

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

// TestBenchBurstEndToEnd runs a burst of twice pool.max against a real
// server whose default job type keeps a full pool of 2, and reads the
// server's timing of each job. It checks what the issue expects of a
// burst (all succeed, the pool's containers are used), never the speed.
func TestBenchBurstEndToEnd(t *testing.T) {
	s := startOwnServer(t, "TAKO_JOB_TYPES_DEFAULT_POOL_MIN=2", "TAKO_JOB_TYPES_DEFAULT_POOL_MAX=2",
		"TAKO_JOB_TYPES_NOPOOL_POOL_MIN=0", "TAKO_JOB_TYPES_NOPOOL_POOL_MAX=0")
	takoBench := benchCommand(t, s.url)

	t.Run("json", func(t *testing.T) {
		// The idle time is the pool's time to refill after the run: a
		// gVisor start took 0.5 s here idle, and several seconds under a
		// parallel build on 2 cores.
		out, stderr, err := takoBench("--burst", "--burst-idle", "30s", "--requests", "4", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var r bench.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		if r.Tako.Requests != 4 || r.Tako.Errors != 0 {
			t.Errorf("tako: %d requests, %d errors %v; want 4 and 0", r.Tako.Requests, r.Tako.Errors, r.Tako.ErrorKinds)
		}
		b := r.Burst
		if b == nil {
			t.Fatalf("no burst:\n%s", out)
		}
		if b.Size != 4 || b.OK != 4 || b.Errors != 0 || b.PoolMax != 2 || b.IdleS != 30 {
			t.Errorf("burst of %d after %vs against pool.max %d: %d ok, %d errors %v; want 4 after 30s against 2, all ok",
				b.Size, b.IdleS, b.PoolMax, b.OK, b.Errors, b.ErrorSamples)
		}
		if b.Warm < 2 || b.Warm+b.Cold != 4 {
			t.Errorf("burst: %d warm and %d cold; want at least the pool's 2 warm, and 4 in all", b.Warm, b.Cold)
		}
		if b.P50MS <= 0 || b.P99MS < b.P50MS || b.MaxMS < b.P99MS {
			t.Errorf("burst latencies p50 %v, p99 %v, max %v", b.P50MS, b.P99MS, b.MaxMS)
		}
		if p := r.Tako.Phases; p == nil || p.RunMS <= 0 || p.TotalMS <= 0 || p.OutsideMS <= 0 || p.QueueMS < 0 || p.StartMS < 0 || p.CollectMS < 0 {
			t.Errorf("tako phases %+v: want the server's timing, and time outside the runner", p)
		}
		if !strings.Contains(stderr, "bench: burst: idle 30s, then 4 simultaneous requests\n") {
			t.Errorf("progress:\n%s", stderr)
		}
		// The JSON's own names, as a script reads them.
		var raw map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatal(err)
		}
		var phases map[string]json.RawMessage
		if err := json.Unmarshal(raw["tako"]["phases"], &phases); err != nil {
			t.Fatalf("tako.phases %s: %v", raw["tako"]["phases"], err)
		}
		for key, fields := range map[string]map[string]json.RawMessage{
			"burst":       raw["burst"],
			"tako.phases": phases,
		} {
			want := map[string][]string{
				"burst":       {"size", "idle_s", "pool_max", "ok", "errors", "warm", "cold", "p50_ms", "p99_ms", "max_ms"},
				"tako.phases": {"queue_ms", "start_ms", "run_ms", "collect_ms", "total_ms", "outside_ms"},
			}[key]
			for _, field := range want {
				if _, ok := fields[field]; !ok {
					t.Errorf("%s has no %q:\n%s", key, field, out)
				}
			}
		}
	})

	t.Run("human", func(t *testing.T) {
		out, stderr, err := takoBench("--burst", "--burst-idle", "0s", "--burst-size", "2", "--requests", "2")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		for _, want := range []string{"\nwhere the time goes (p50): queue ", "\nburst: 2 simultaneous requests after 0s idle, pool.max 2\n",
			"\nburst  ", "the issue expects"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
	})

	t.Run("no pool", func(t *testing.T) {
		out, stderr, err := takoBench("--burst", "--job-type", "nopool", "--requests", "1")
		if err == nil || !strings.Contains(err.Error(), `job type "nopool" has no pool`) || !strings.Contains(err.Error(), "--burst-size") {
			t.Errorf("err %v", err)
		}
		if out != "" || strings.Contains(stderr, "bench:") {
			t.Errorf("measured a job type without a pool:\n%s\n%s", out, stderr)
		}
	})
}

// round3 rounds x to three decimals, as bench rounds its ratios.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
