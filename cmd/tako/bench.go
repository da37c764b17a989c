package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/tako-run/tako/bench"
	"github.com/tako-run/tako/jobtypes"
)

// benchUsage is the help text of tako bench.
const benchUsage = `usage: tako bench [flags]

Sends jobs to a running tako server from closed-loop workers and prints
latency (p50/p90/p99/max), jobs/s and errors. With --baseline it then runs
the original's model (one hardened "docker run --rm" per job) with the same
load and prints the ratio of the two. With --compare it then measures each
listed job type the same way and prints one row per job type, with each
row's p50 and p99 over the --job-type row's ("p50 ×", "p99 ×").

With --floors it measures, before and after tako's run, what no server can
go below on this machine at this hour, and prints tako's p50, p99 and jobs/s
over the mean of the two: the host's python3 -c pass; the round trip of a
trigger into a bare interpreter waiting in a container of the job type; the
database's insert and finish of one sync job's record (in a scratch schema,
dropped afterwards); the engine's create, start, wait and remove of true
with tako's container configuration, one at a time (cold) and at
--concurrency (churn); and the same container started with tako's
bootstrap until it is ready, one at a time and at --concurrency. It needs the Docker engine (DOCKER_HOST), the
database (--database-url, or database.url of the configuration --config
loads) and tako's work directory, and runs as tako server does.

With --db-cost it reads pg_stat_database of tako's database (--database-url,
or database.url of the configuration --config loads) before and after the
measured run, and over an idle interval just before it (--db-idle), and
prints the run's transactions, rows written, rows read and active statement
time per job, net of the idle background (heartbeats, queue polling). It
waits 11 s after the run for PostgreSQL to flush its counters.

With --burst it ends by leaving the server idle for --burst-idle, then
sending --burst-size POST /execute requests of --job-type at once, each on
its own connection (default: twice the job type's pool.max), and prints
their p50, p99 and max, how many started warm and cold, and whether all
succeeded with at least min(pool.max, size) of them warm.

Flags:
`

// benchFlags is tako bench's checked command line: the load, and with
// --floors the database the store floor uses, with --db-cost the database
// whose work is measured.
type benchFlags struct {
	cfg    bench.Config
	floors bool
	dbCost bool
	// databaseURL is --database-url; "" means the configuration's
	// database.url.
	databaseURL string
}

// defaultDBIdle is how long --db-cost measures the idle background in
// --requests mode when --db-idle is not given.
const defaultDBIdle = 10 * time.Second

// defaultFloorDuration is how long each churn floor runs in
// --requests mode when --floor-duration is not given.
const defaultFloorDuration = 10 * time.Second

// runBench is `tako bench`: it checks the flags and runs package bench, a
// load generator, against a running tako server. With --floors it first
// loads the configuration and connects to Docker, for the floors' probes.
func runBench(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("bench", environ, stderr)
	f, err := parseBenchFlags(c, args)
	if err != nil {
		return err
	}
	if f.floors {
		opener, err := newFloorOpener(ctx, c, f.databaseURL)
		if err != nil {
			return err
		}
		defer c.close()
		f.cfg.Floors = opener
	}
	if f.dbCost {
		url, err := benchDatabaseURL(c, f.databaseURL, "--db-cost", "the database whose work it measures")
		if err != nil {
			return err
		}
		f.cfg.Database = bench.NewPGStatReader(url)
	}
	return bench.Run(ctx, f.cfg, stdout, stderr)
}

// parseBenchFlags reads and checks tako bench's arguments, on c's flag set
// (which has --config). Every error names the flag at fault and wraps
// errUsage; -h prints the help and returns errHelp.
func parseBenchFlags(c *command, args []string) (f benchFlags, err error) {
	cfg := &f.cfg
	fs := c.flags.fs
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8000", "tako server `URL`")
	fs.StringVar(&cfg.JobType, "job-type", "default", "job type to run")
	fs.StringVar(&cfg.Code, "code", "print(1+1)", "Python `code` each job runs")
	fs.StringVar(&cfg.File, "file", "", "read the job's code from `PATH` instead of --code")
	fs.IntVar(&cfg.Concurrency, "concurrency", 1, "closed-loop workers, each with one request in flight")
	fs.Float64Var(&cfg.Rate, "rate", 0, "pace the requests to this many per second over all workers (0: none)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measure for this long (e.g. 30s) instead of a number of requests")
	fs.IntVar(&cfg.Requests, "requests", 100, "measured requests, shared by all workers")
	fs.BoolVar(&cfg.Async, "async", false, "submit to /execute/async and long-poll /jobs/{id}/result; latency is submit to result")
	fs.BoolVar(&cfg.Stream, "stream", false, "ask each POST /execute for its event stream and read it to its end; latency is to the done event")
	fs.IntVar(&cfg.Warmup, "warmup", 0, "requests sent and discarded before measuring")
	fs.BoolVar(&cfg.JSON, "json", false, "print one JSON object instead of a table")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "then run the original's model (one hardened docker run --rm per job) and compare")
	fs.StringVar(&cfg.Image, "image", "", "image `REF` for --baseline (default: the job type's image, from the server)")
	fs.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "per-request timeout")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API `KEY` for a server that has keys (sent as Authorization: Bearer)")
	compare := fs.String("compare", "", "then measure each of these comma-separated `JOBTYPES` with the same load and print them side by side with --job-type")
	fs.BoolVar(&f.floors, "floors", false, "also measure the floors before and after, and print tako's figures over them (needs Docker and the database)")
	fs.IntVar(&cfg.FloorRuns, "floor-runs", 20, "with --floors: timed runs of each latency floor")
	fs.DurationVar(&cfg.FloorDuration, "floor-duration", 0, "with --floors: how long each churn floor runs (default: --duration, or 10s)")
	fs.StringVar(&f.databaseURL, "database-url", "", "with --floors or --db-cost: the `URL` of tako's PostgreSQL (default: database.url of the configuration)")
	fs.BoolVar(&f.dbCost, "db-cost", false, "also measure the run's work in tako's database (pg_stat_database), per job and net of the idle background")
	fs.DurationVar(&cfg.DBIdle, "db-idle", 0, "with --db-cost: how long the background is measured, idle, before the run (default: --duration, or 10s)")
	fs.BoolVar(&cfg.Burst, "burst", false, "then, after --burst-idle without requests, send --burst-size requests at once and report how they fared")
	fs.DurationVar(&cfg.BurstIdle, "burst-idle", time.Minute, "with --burst: how long the server is left idle before the burst")
	fs.IntVar(&cfg.BurstSize, "burst-size", 0, "with --burst: requests in the burst (0: twice the job type's pool.max)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, errHelp
		}
		return f, fmt.Errorf("%w: %v", errUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	bad := func(format string, a ...any) (benchFlags, error) {
		return f, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (tako bench takes only flags)", fs.Arg(0))
	case set["code"] && set["file"]:
		return bad("--code and --file cannot be used together")
	case set["duration"] && set["requests"]:
		return bad("--duration and --requests cannot be used together")
	case cfg.Stream && cfg.Async:
		return bad("--stream and --async cannot be used together (--stream follows POST /execute)")
	case cfg.Concurrency < 1:
		return bad("--concurrency must be at least 1, not %d", cfg.Concurrency)
	case set["duration"] && cfg.Duration <= 0:
		return bad("--duration must be positive, not %s", cfg.Duration)
	case !set["duration"] && cfg.Requests < 1:
		return bad("--requests must be at least 1, not %d", cfg.Requests)
	case cfg.Rate < 0:
		return bad("--rate must be 0 or more, not %g", cfg.Rate)
	case cfg.Warmup < 0:
		return bad("--warmup must be 0 or more, not %d", cfg.Warmup)
	case cfg.Timeout <= 0:
		return bad("--timeout must be positive, not %s", cfg.Timeout)
	case cfg.JobType == "":
		return bad("--job-type must not be empty")
	case set["image"] && cfg.Image == "":
		return bad("--image must not be empty")
	case set["compare"] && cfg.Baseline:
		return bad("--compare and --baseline cannot be used together (the baseline is measured against one job type; run them separately)")
	}
	if err := checkFloorFlags(f, set); err != nil {
		return f, err
	}
	if err := checkBurstFlags(f.cfg, set); err != nil {
		return f, err
	}
	if err := checkDBCostFlags(f, set); err != nil {
		return f, err
	}
	if set["compare"] {
		if cfg.Compare, err = parseCompare(*compare, cfg.JobType); err != nil {
			return f, fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	if set["duration"] {
		cfg.Requests = 0
	}
	if !cfg.Burst {
		cfg.BurstIdle = 0
	}
	if !f.floors {
		cfg.FloorRuns = 0
	} else if !set["floor-duration"] {
		cfg.FloorDuration = defaultFloorDuration
		if cfg.Duration > 0 {
			cfg.FloorDuration = cfg.Duration
		}
	}
	if f.dbCost && !set["db-idle"] {
		cfg.DBIdle = defaultDBIdle
		if cfg.Duration > 0 {
			cfg.DBIdle = cfg.Duration
		}
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("--url must be an http:// or https:// URL, not %q", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.File != "" {
		b, err := os.ReadFile(cfg.File)
		if err != nil {
			return bad("--file: %v", err)
		}
		cfg.Code = string(b)
	}
	if strings.TrimSpace(cfg.Code) == "" {
		if cfg.File != "" {
			return bad("--file %s is empty", cfg.File)
		}
		return bad("--code must not be empty")
	}
	return f, nil
}

// checkFloorFlags checks the flags of --floors: set are the flags given.
// They mean nothing without --floors; --database-url and --config, read
// only for the database, mean something with --db-cost too.
func checkFloorFlags(f benchFlags, set map[string]bool) error {
	if !f.floors {
		for _, name := range []string{"floor-runs", "floor-duration", "database-url", "config", "c"} {
			if !set[name] {
				continue
			}
			dashes := "--"
			if len(name) == 1 {
				dashes = "-"
			}
			switch {
			case name == "floor-runs" || name == "floor-duration":
				return fmt.Errorf("%w: %s%s is used only with --floors", errUsage, dashes, name)
			case !f.dbCost:
				return fmt.Errorf("%w: %s%s is used only with --floors or --db-cost", errUsage, dashes, name)
			}
		}
		return nil
	}
	switch {
	case f.cfg.FloorRuns < 1:
		return fmt.Errorf("%w: --floor-runs must be at least 1, not %d", errUsage, f.cfg.FloorRuns)
	case set["floor-duration"] && f.cfg.FloorDuration <= 0:
		return fmt.Errorf("%w: --floor-duration must be positive, not %s", errUsage, f.cfg.FloorDuration)
	case set["database-url"] && f.databaseURL == "":
		return fmt.Errorf("%w: --database-url must not be empty", errUsage)
	}
	return nil
}

// checkDBCostFlags checks the flags of --db-cost: set are the flags given.
// --db-idle means nothing without it, and it cannot run with --floors,
// whose store floor writes to the same database.
func checkDBCostFlags(f benchFlags, set map[string]bool) error {
	switch {
	case !f.dbCost && set["db-idle"]:
		return fmt.Errorf("%w: --db-idle is used only with --db-cost", errUsage)
	case !f.dbCost:
		return nil
	case f.floors:
		return fmt.Errorf("%w: --db-cost and --floors cannot be used together (the store floor writes to the database whose work --db-cost measures)", errUsage)
	case set["db-idle"] && f.cfg.DBIdle <= 0:
		return fmt.Errorf("%w: --db-idle must be positive, not %s", errUsage, f.cfg.DBIdle)
	case set["database-url"] && f.databaseURL == "":
		return fmt.Errorf("%w: --database-url must not be empty", errUsage)
	}
	return nil
}

// checkBurstFlags checks the flags of --burst in cfg: set are the flags
// given. They mean nothing without --burst. Whether the job type has a
// pool to size the burst by is for bench.Run to check, with the server.
func checkBurstFlags(cfg bench.Config, set map[string]bool) error {
	if !cfg.Burst {
		for _, name := range []string{"burst-idle", "burst-size"} {
			if set[name] {
				return fmt.Errorf("%w: --%s is used only with --burst", errUsage, name)
			}
		}
		return nil
	}
	switch {
	case cfg.BurstIdle < 0:
		return fmt.Errorf("%w: --burst-idle must be 0 or more, not %s", errUsage, cfg.BurstIdle)
	case cfg.BurstSize < 0:
		return fmt.Errorf("%w: --burst-size must be 0 (twice the job type's pool.max) or more, not %d", errUsage, cfg.BurstSize)
	}
	return nil
}

// parseCompare reads the value of --compare: comma-separated job type
// names, each valid, none repeated and none the --job-type main, in the
// order given. Space around a name is ignored.
func parseCompare(list, main string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, fmt.Errorf("--compare must name at least one job type")
	}
	var names []string
	seen := map[string]bool{}
	for i, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			return nil, fmt.Errorf("--compare: job type %d of %q is empty", i+1, list)
		case !jobtypes.ValidName(name):
			return nil, fmt.Errorf("--compare: %q is not a valid job type name "+
				"(lowercase letters, digits, - and _, starting with a letter or digit, at most 63 characters)", name)
		case name == main:
			return nil, fmt.Errorf("--compare: %q is the --job-type every row is compared with; list only other job types", name)
		case seen[name]:
			return nil, fmt.Errorf("--compare: %q is listed twice", name)
		}
		seen[name] = true
		names = append(names, name)
	}
	return names, nil
}
