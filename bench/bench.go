// Package bench is tako bench's load generator: closed-loop workers send
// jobs to a running tako server, optionally run the original's model (one
// hardened "docker run --rm" per job) with the same load, or measure more
// job types side by side, and print latency, jobs/s and errors.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tako-run/tako/client"
)

// Config is one benchmark run: tako bench's command line once it has been
// checked. Run expects it valid: Concurrency at least 1; Requests at least
// 1, or Duration positive and Requests 0; Warmup and Rate not negative;
// Timeout positive; URL an http(s) base URL without a trailing slash; Code
// and JobType not empty; Compare without JobType and without Baseline;
// BurstIdle and BurstSize not negative; DBIdle positive with Database. Its JSON is the "config" of the
// report.
type Config struct {
	URL         string        `json:"url"`
	JobType     string        `json:"job_type"`
	Code        string        `json:"-"`
	File        string        `json:"file,omitempty"`
	Concurrency int           `json:"concurrency"`
	Rate        float64       `json:"rate,omitempty"`     // requests per second over all workers; 0 means as fast as answers come
	Requests    int           `json:"requests,omitempty"` // 0 in --duration mode
	Duration    time.Duration `json:"-"`                  // 0 in --requests mode
	Async       bool          `json:"async"`
	// Stream asks each POST /execute for its event stream (Accept:
	// text/event-stream) and reads it to its end: latency is to the done
	// event.
	Stream   bool          `json:"stream,omitempty"`
	Warmup   int           `json:"warmup"`
	JSON     bool          `json:"-"`
	Baseline bool          `json:"baseline"`
	Image    string        `json:"image,omitempty"`
	Timeout  time.Duration `json:"-"`
	APIKey   string        `json:"-"`                 // sent as a bearer token when set
	Compare  []string      `json:"compare,omitempty"` // job types measured after JobType, in order

	// Floors, when set, measures the floors of JobType before and after
	// its run with the probes it opens (--floors): FloorRuns timed runs of
	// each latency floor, at least 1, and each churn floor at
	// Concurrency for FloorDuration, positive. The report's floors object
	// says how they were measured.
	Floors        FloorOpener   `json:"-"`
	FloorRuns     int           `json:"-"`
	FloorDuration time.Duration `json:"-"`

	// Burst, when set, ends the run with a burst of JobType (--burst):
	// after BurstIdle without requests, BurstSize POST /execute requests at
	// once; BurstSize 0 means twice the job type's pool.max. The report's
	// burst object says how they fared.
	Burst     bool          `json:"-"`
	BurstIdle time.Duration `json:"-"`
	BurstSize int           `json:"-"`

	// Database, when set, measures the database work of JobType's run
	// with the counters it reads (--db-cost): over DBIdle, positive,
	// without load just before the run (after the warm-up), then over the
	// run and DBSettle after it. The report's database object holds it.
	Database DatabaseCounterReader `json:"-"`
	DBIdle   time.Duration         `json:"-"`
}

// Run benchmarks the server at cfg.URL with cfg's load and prints the
// report to stdout: a table, or with cfg.JSON one JSON object (Report).
// Progress goes to stderr. It fails when the server cannot be reached or
// lacks a job type, when --baseline or a floor cannot run, when --burst has
// no size, or when ctx ends; failed jobs are counted in the report, not
// returned.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if cfg.Baseline {
		if _, err := exec.LookPath("docker"); err != nil {
			return errors.New("--baseline needs the docker CLI, and no docker command was found on PATH")
		}
	}
	tc, closeIdle, err := newClient(cfg, cfg.Concurrency)
	if err != nil {
		return err
	}
	defer closeIdle()

	jt, err := checkJobTypes(ctx, cfg, tc)
	if err != nil {
		return err
	}
	burst := 0
	if cfg.Burst {
		if burst, err = burstSize(cfg, jt); err != nil {
			return err
		}
	}
	if cfg.Image == "" {
		cfg.Image = jt.Image
	}
	report, err := measure(ctx, cfg, tc, jt, stderr)
	if err != nil {
		return err
	}
	if cfg.Burst {
		// Last, so that what the burst leaves in the pool changes no
		// other figure.
		if report.Burst, err = runBurst(ctx, cfg, burst, jt.Pool.Max, stderr); err != nil {
			return err
		}
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	writeTable(stdout, report)
	return nil
}

// checkJobTypes asks the server for cfg's job types before anything is
// measured: it fails fast with a clear message when the server is not
// there or lacks one, and returns the --job-type's description, which
// gives the baseline its image and limits and the burst its size.
func checkJobTypes(ctx context.Context, cfg Config, tc *client.Client) (jobType, error) {
	jt, err := fetchJobType(ctx, tc, cfg.URL, cfg.JobType, "--job-type")
	if err != nil {
		return jt, err
	}
	for _, name := range cfg.Compare {
		if _, err := fetchJobType(ctx, tc, cfg.URL, name, "--compare"); err != nil {
			return jt, err
		}
	}
	return jt, nil
}

// measure runs cfg's measurements but the burst, in order: tako (between
// the floors with --floors), the baseline, the compared job types.
func measure(ctx context.Context, cfg Config, tc *client.Client, jt jobType, stderr io.Writer) (Report, error) {
	report := Report{Config: newReportConfig(cfg, jt)}
	measureTako := func() (err error) {
		if cfg.Database != nil {
			report.Tako, report.Database, err = measureWithDatabase(ctx, cfg, tc, stderr)
			return err
		}
		report.Tako, err = measureJobType(ctx, cfg, tc, cfg.JobType, stderr)
		return err
	}
	var err error
	if cfg.Floors == nil {
		err = measureTako()
	} else if report.Floors, err = measureAroundFloors(ctx, cfg, jt, stderr, measureTako); err == nil {
		report.FloorRatios = newFloorRatios(report.Tako, *report.Floors)
	}
	if err != nil {
		return report, err
	}
	if cfg.Baseline {
		if report.Baseline, err = runBaseline(ctx, cfg, jt.Limits, stderr); err != nil {
			return report, err
		}
		report.Ratio = newRatio(report.Tako, *report.Baseline)
	}
	if report.Compare, err = measureCompare(ctx, cfg, tc, report.Tako, stderr); err != nil {
		return report, err
	}
	return report, nil
}

// measureJobType runs cfg's load (warm-up included) through the server for
// job type name and returns its statistics. It fails only when ctx ends.
func measureJobType(ctx context.Context, cfg Config, tc *client.Client, name string, stderr io.Writer) (Stats, error) {
	cfg.JobType = name
	model := "tako"
	if len(cfg.Compare) > 0 {
		model = "tako, job type " + name
	}
	progress(stderr, cfg, model)
	return takoBenchmark(cfg, tc).run(ctx, cfg)
}

// measureWithDatabase runs cfg's load through the server like
// measureJobType, and measures the database work of its measured requests
// with cfg.Database: the warm-up comes first, then the idle interval for
// the background, then the measured requests.
func measureWithDatabase(ctx context.Context, cfg Config, tc *client.Client, stderr io.Writer) (Stats, *DatabaseCost, error) {
	b := takoBenchmark(cfg, tc)
	if cfg.Warmup > 0 {
		fmt.Fprintf(stderr, "bench: tako: %d warm-up requests at concurrency %d\n", cfg.Warmup, cfg.Concurrency)
		if _, _, err := b.loop(ctx, cfg, cfg.Warmup, 0); err != nil {
			return Stats{}, nil, err
		}
		cfg.Warmup = 0
	}
	m := dbMeter{reader: cfg.Database, idle: cfg.DBIdle, settle: DBSettle, now: time.Now, sleep: idle}
	var st Stats
	cost, err := m.around(ctx, stderr, func() (n int, err error) {
		progress(stderr, cfg, "tako")
		st, err = b.run(ctx, cfg)
		return st.Requests, err
	})
	return st, cost, err
}

// runBaseline measures the original's model with cfg's load and the job
// type's limits lim.
func runBaseline(ctx context.Context, cfg Config, lim Limits, stderr io.Writer) (*Stats, error) {
	if cfg.Image == "" {
		return nil, fmt.Errorf("--baseline: the server names no image for job type %q; pass --image", cfg.JobType)
	}
	base, cleanup, err := baselineBenchmark(cfg, lim)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	progress(stderr, cfg, "baseline")
	st, err := base.run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// progress prints the line that says which model is being measured, and
// with what load.
func progress(stderr io.Writer, cfg Config, model string) {
	load := fmt.Sprintf("%d requests", cfg.Requests)
	if cfg.Duration > 0 {
		load = cfg.Duration.String()
	}
	fmt.Fprintf(stderr, "bench: %s: %s at concurrency %d", model, load, cfg.Concurrency)
	if cfg.Warmup > 0 {
		fmt.Fprintf(stderr, " after %d warm-up requests", cfg.Warmup)
	}
	fmt.Fprintln(stderr)
}

// benchmark is one model of running a job. do runs one job and returns
// its sample: latency, how it started ("warm", "cold" or ""), the server's
// timing when it sent one, and for a failed job a *requestError. do is
// called from several goroutines at once.
type benchmark struct {
	name string
	do   func(ctx context.Context) sample
}

// requestError is a failed request: kind is its class for the error
// breakdown ("http 503", "status failed", "exit 125", "timeout"), detail a
// sample.
type requestError struct {
	kind   string
	detail string
}

func (e *requestError) Error() string { return e.kind + ": " + e.detail }

// sample is the outcome of one request. timing is the server's account of
// the job, nil when it gave none (the baseline, a failed request).
type sample struct {
	latency time.Duration
	start   string
	timing  *serverTiming
	err     error
}

// run sends cfg.Warmup discarded requests, then measures cfg.Requests
// requests (or cfg.Duration) from cfg.Concurrency closed-loop workers: each
// sends its next request when the previous one has answered. It returns an
// error only when ctx ends.
func (b benchmark) run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Warmup > 0 {
		if _, _, err := b.loop(ctx, cfg, cfg.Warmup, 0); err != nil {
			return Stats{}, err
		}
	}
	samples, elapsed, err := b.loop(ctx, cfg, cfg.Requests, cfg.Duration)
	if err != nil {
		return Stats{}, err
	}
	return newStats(samples, elapsed), nil
}

// loop runs the workers for n requests, or until duration has passed when
// it is set; requests in flight at the deadline finish and count.
func (b benchmark) loop(ctx context.Context, cfg Config, n int, duration time.Duration) ([]sample, time.Duration, error) {
	var (
		claimed  atomic.Int64
		wg       sync.WaitGroup
		perWork  = make([][]sample, cfg.Concurrency)
		began    = time.Now()
		deadline = began.Add(duration)
		pace     <-chan time.Time // with --rate, one tick per request
	)
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer t.Stop()
		pace = t.C
	}
	for w := range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				if duration > 0 {
					if !time.Now().Before(deadline) {
						return
					}
				} else if claimed.Add(1) > int64(n) {
					return
				}
				s, ok := b.one(ctx, cfg.Timeout)
				if !ok {
					return // interrupted: not a sample
				}
				perWork[w] = append(perWork[w], s)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s benchmark interrupted: %w", b.name, err)
	}
	return slices.Concat(perWork...), elapsed, nil
}

// one runs one job with timeout; a job that does not answer in time is a
// "timeout" error. ok is false when ctx ended meanwhile: the sample is then
// an interruption, not a measurement.
func (b benchmark) one(ctx context.Context, timeout time.Duration) (s sample, ok bool) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s = b.do(rctx)
	if s.err != nil && rctx.Err() != nil && ctx.Err() == nil {
		s.err = &requestError{kind: "timeout", detail: fmt.Sprintf("no answer within --timeout %s", timeout)}
	}
	return s, ctx.Err() == nil
}
