package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// benchUsage is the help text of tako bench.
const benchUsage = `usage: tako bench [flags]

Sends jobs to a running tako server from closed-loop workers and prints
latency (p50/p90/p99/max), jobs/s and errors. With --baseline it then runs
the original's model (one hardened "docker run --rm" per job) with the same
load and prints the ratio of the two. With --compare it then measures each
listed job type the same way and prints one row per job type, with each
row's p50 and p99 over the --job-type row's ("p50 ×", "p99 ×").

Flags:
`

// asyncWait is the long-poll timeout of GET /jobs/{id}/result in --async
// mode: the server's maximum.
const asyncWait = 300

// benchConfig is tako bench's validated command line.
type benchConfig struct {
	URL         string        `json:"url"`
	JobType     string        `json:"job_type"`
	Code        string        `json:"-"`
	File        string        `json:"file,omitempty"`
	Concurrency int           `json:"concurrency"`
	Rate        float64       `json:"rate,omitempty"`     // requests per second over all workers; 0 means as fast as answers come
	Requests    int           `json:"requests,omitempty"` // 0 in --duration mode
	Duration    time.Duration `json:"-"`                  // 0 in --requests mode
	Async       bool          `json:"async"`
	Warmup      int           `json:"warmup"`
	JSON        bool          `json:"-"`
	Baseline    bool          `json:"baseline"`
	Image       string        `json:"image,omitempty"`
	Timeout     time.Duration `json:"-"`
	APIKey      string        `json:"-"`                 // sent as a bearer token when set
	Compare     []string      `json:"compare,omitempty"` // job types measured after JobType, in order
}

// parseBenchFlags reads and checks tako bench's arguments. Every error names
// the flag at fault and wraps errUsage; ok is false (with a nil error) when
// the user asked for help.
func parseBenchFlags(args []string, stderr io.Writer) (cfg benchConfig, ok bool, err error) {
	fs := flag.NewFlagSet("tako bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	fs.IntVar(&cfg.Warmup, "warmup", 0, "requests sent and discarded before measuring")
	fs.BoolVar(&cfg.JSON, "json", false, "print one JSON object instead of a table")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "then run the original's model (one hardened docker run --rm per job) and compare")
	fs.StringVar(&cfg.Image, "image", "", "image `REF` for --baseline (default: the job type's image, from the server)")
	fs.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "per-request timeout")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API `KEY` for a server that has keys (sent as Authorization: Bearer)")
	compare := fs.String("compare", "", "then measure each of these comma-separated `JOBTYPES` with the same load and print them side by side with --job-type")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	bad := func(format string, a ...any) (benchConfig, bool, error) {
		return cfg, false, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (tako bench takes only flags)", fs.Arg(0))
	case set["code"] && set["file"]:
		return bad("--code and --file cannot be used together")
	case set["duration"] && set["requests"]:
		return bad("--duration and --requests cannot be used together")
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
	if set["compare"] {
		if cfg.Compare, err = parseCompare(*compare, cfg.JobType); err != nil {
			return cfg, false, fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	if set["duration"] {
		cfg.Requests = 0
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
	return cfg, true, nil
}

// runBench is `tako bench`: a load generator for a running tako server.
func runBench(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, ok, err := parseBenchFlags(args, stderr)
	if err != nil || !ok {
		return err
	}
	if cfg.Baseline {
		if _, err := exec.LookPath("docker"); err != nil {
			return errors.New("--baseline needs the docker CLI, and no docker command was found on PATH")
		}
	}
	client := newBenchClient(cfg.Concurrency, cfg.APIKey)
	defer client.CloseIdleConnections()

	// Ask for the job types first: it fails fast with a clear message when
	// the server is not there or lacks one, and gives the baseline its
	// image and limits.
	jt, err := fetchJobType(ctx, client, cfg.URL, cfg.JobType, "--job-type")
	if err != nil {
		return err
	}
	for _, name := range cfg.Compare {
		if _, err := fetchJobType(ctx, client, cfg.URL, name, "--compare"); err != nil {
			return err
		}
	}
	if cfg.Image == "" {
		cfg.Image = jt.Image
	}

	report := benchReport{Config: newReportConfig(cfg, jt)}
	report.Tako, err = measureJobType(ctx, cfg, client, cfg.JobType, stderr)
	if err != nil {
		return err
	}
	if cfg.Baseline {
		if report.Baseline, err = runBaseline(ctx, cfg, jt.Limits, stderr); err != nil {
			return err
		}
		report.Ratio = newRatio(report.Tako, *report.Baseline)
	}
	if report.Compare, err = measureCompare(ctx, cfg, client, report.Tako, stderr); err != nil {
		return err
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	writeBenchTable(stdout, report)
	return nil
}

// measureJobType runs cfg's load (warm-up included) through the server for
// job type name and returns its statistics. It fails only when ctx ends.
func measureJobType(ctx context.Context, cfg benchConfig, client *http.Client, name string, stderr io.Writer) (benchStats, error) {
	cfg.JobType = name
	model := "tako"
	if len(cfg.Compare) > 0 {
		model = "tako, job type " + name
	}
	progress(stderr, cfg, model)
	return takoBenchmark(cfg, client).run(ctx, cfg)
}

// runBaseline measures the original's model with cfg's load and the job
// type's limits lim.
func runBaseline(ctx context.Context, cfg benchConfig, lim benchLimits, stderr io.Writer) (*benchStats, error) {
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

func progress(stderr io.Writer, cfg benchConfig, model string) {
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

// benchmark is one model of running a job. do runs one job and returns its
// latency and how it started ("warm", "cold" or ""); a failed job returns a
// *benchError. do is called from several goroutines at once.
type benchmark struct {
	name string
	do   func(ctx context.Context) (time.Duration, string, error)
}

// benchError is a failed request: kind is its class for the error breakdown
// ("http 503", "status failed", "exit 125", "timeout"), detail a sample.
type benchError struct {
	kind   string
	detail string
}

func (e *benchError) Error() string { return e.kind + ": " + e.detail }

// sample is the outcome of one request.
type sample struct {
	latency time.Duration
	start   string
	err     error
}

// run sends cfg.Warmup discarded requests, then measures cfg.Requests
// requests (or cfg.Duration) from cfg.Concurrency closed-loop workers: each
// sends its next request when the previous one has answered. It returns an
// error only when ctx ends.
func (b benchmark) run(ctx context.Context, cfg benchConfig) (benchStats, error) {
	if cfg.Warmup > 0 {
		if _, _, err := b.loop(ctx, cfg, cfg.Warmup, 0); err != nil {
			return benchStats{}, err
		}
	}
	samples, elapsed, err := b.loop(ctx, cfg, cfg.Requests, cfg.Duration)
	if err != nil {
		return benchStats{}, err
	}
	return newBenchStats(samples, elapsed), nil
}

// loop runs the workers for n requests, or until duration has passed when
// it is set; requests in flight at the deadline finish and count.
func (b benchmark) loop(ctx context.Context, cfg benchConfig, n int, duration time.Duration) ([]sample, time.Duration, error) {
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
				rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				lat, start, err := b.do(rctx)
				if err != nil && rctx.Err() != nil && ctx.Err() == nil {
					err = &benchError{kind: "timeout", detail: fmt.Sprintf("no answer within --timeout %s", cfg.Timeout)}
				}
				cancel()
				if ctx.Err() != nil {
					return // interrupted: not a sample
				}
				perWork[w] = append(perWork[w], sample{latency: lat, start: start, err: err})
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

// newLatencyStats returns the percentiles of sample, which it sorts.
func newLatencyStats(sample []time.Duration) latencyStats {
	slices.Sort(sample)
	return latencyStats{
		P50: ms(percentile(sample, 50)),
		P90: ms(percentile(sample, 90)),
		P99: ms(percentile(sample, 99)),
		Max: ms(percentile(sample, 100)),
	}
}

// latencyStats are latency percentiles in milliseconds.
type latencyStats struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// benchStats are the statistics of one model's measured run. Latencies are
// those of the successful requests; JobsPerS counts successful jobs.
type benchStats struct {
	Requests     int               `json:"requests"`
	Errors       int               `json:"errors"`
	ErrorKinds   map[string]int    `json:"error_kinds"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // the first detail of each kind
	DurationS    float64           `json:"duration_s"`
	JobsPerS     float64           `json:"jobs_per_s"`
	LatencyMS    latencyStats      `json:"latency_ms"`
	WarmMS       *latencyStats     `json:"warm_latency_ms"` // successful warm starts only; null when none
	Warm         int               `json:"warm"`
	Cold         int               `json:"cold"`
}

func newBenchStats(samples []sample, elapsed time.Duration) benchStats {
	st := benchStats{Requests: len(samples), ErrorKinds: map[string]int{}, DurationS: round3(elapsed.Seconds())}
	var ok, warm []time.Duration
	for _, s := range samples {
		if s.err == nil && s.start == "warm" {
			warm = append(warm, s.latency)
		}
		switch s.start {
		case "warm":
			st.Warm++
		case "cold":
			st.Cold++
		}
		if s.err == nil {
			ok = append(ok, s.latency)
			continue
		}
		st.Errors++
		kind, detail := "error", s.err.Error()
		var be *benchError
		if errors.As(s.err, &be) {
			kind, detail = be.kind, be.detail
		}
		st.ErrorKinds[kind]++
		if st.ErrorSamples == nil {
			st.ErrorSamples = map[string]string{}
		}
		if _, seen := st.ErrorSamples[kind]; !seen {
			st.ErrorSamples[kind] = clip(detail, 200)
		}
	}
	if elapsed > 0 {
		st.JobsPerS = round3(float64(len(ok)) / elapsed.Seconds())
	}
	st.LatencyMS = newLatencyStats(ok)
	if len(warm) > 0 {
		w := newLatencyStats(warm)
		st.WarmMS = &w
	}
	return st
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of the
// ascending sample sorted: the smallest value with at least p% of the
// sample at or below it. It is 0 for an empty sample.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// benchRatio compares tako with the baseline: P50 is baseline p50 / tako
// p50 (how many times faster tako is), JobsPerS is tako's jobs/s over the
// baseline's. There is none (nil) when either model had no successful job.
type benchRatio struct {
	P50      float64 `json:"p50"`
	JobsPerS float64 `json:"jobs_per_s"`
}

func newRatio(tako, base benchStats) *benchRatio {
	if tako.LatencyMS.P50 <= 0 || base.LatencyMS.P50 <= 0 || tako.JobsPerS <= 0 || base.JobsPerS <= 0 {
		return nil // a model without a successful job has nothing to compare
	}
	return &benchRatio{
		P50:      round3(base.LatencyMS.P50 / tako.LatencyMS.P50),
		JobsPerS: round3(tako.JobsPerS / base.JobsPerS),
	}
}

// reportConfig is the run's configuration as reported.
type reportConfig struct {
	benchConfig
	Mode     string      `json:"mode"`               // "sync" or "async"
	Duration string      `json:"duration,omitempty"` // --duration mode only
	Timeout  string      `json:"timeout"`
	CodeLen  int         `json:"code_bytes"`
	Limits   benchLimits `json:"limits"`
}

func newReportConfig(cfg benchConfig, jt benchJobType) reportConfig {
	rc := reportConfig{benchConfig: cfg, Mode: "sync", Timeout: cfg.Timeout.String(), CodeLen: len(cfg.Code), Limits: jt.Limits}
	if cfg.Async {
		rc.Mode = "async"
	}
	if cfg.Duration > 0 {
		rc.Duration = cfg.Duration.String()
	}
	if rc.Image == "" {
		rc.Image = jt.Image
	}
	return rc
}

// benchReport is the whole result; --json prints it as is. Tako is the
// --job-type row; Compare, with --compare only, holds the other job types.
type benchReport struct {
	Tako     benchStats   `json:"tako"`
	Baseline *benchStats  `json:"baseline"`
	Ratio    *benchRatio  `json:"ratio"`
	Config   reportConfig `json:"config"`
	Compare  []compareRow `json:"compare,omitempty"`
}

// writeBenchTable prints r as an aligned table, then the ratios and the
// error breakdown. A report with compared job types gets the side-by-side
// table of writeCompareTable instead.
func writeBenchTable(w io.Writer, r benchReport) {
	if len(r.Compare) > 0 {
		writeCompareTable(w, r)
		return
	}
	writeHeadline(w, r.Config, "job type "+r.Config.JobType)
	rows := [][]string{{"", "requests", "errors", "duration", "jobs/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "warm", "cold"}}
	row := func(name string, s benchStats) []string {
		return []string{name, strconv.Itoa(s.Requests), strconv.Itoa(s.Errors), fmt.Sprintf("%.2fs", s.DurationS),
			fmt.Sprintf("%.1f", s.JobsPerS), latCell(s, s.LatencyMS.P50), latCell(s, s.LatencyMS.P90),
			latCell(s, s.LatencyMS.P99), latCell(s, s.LatencyMS.Max), strconv.Itoa(s.Warm), strconv.Itoa(s.Cold)}
	}
	rows = append(rows, row("tako", r.Tako))
	if w := r.Tako.WarmMS; w != nil {
		rows = append(rows, []string{"  warm only", strconv.Itoa(r.Tako.Warm), "", "", "",
			fmt.Sprintf("%.1f", w.P50), fmt.Sprintf("%.1f", w.P90), fmt.Sprintf("%.1f", w.P99), fmt.Sprintf("%.1f", w.Max), "", ""})
	}
	if r.Baseline != nil {
		rows = append(rows, row("baseline", *r.Baseline))
	}
	writeRows(w, rows)
	switch {
	case r.Baseline == nil:
	case r.Ratio == nil:
		fmt.Fprintln(w, "\nno ratio: tako or the baseline had no successful job")
	default:
		fmt.Fprintf(w, "\ntako is %.1fx faster (p50 %.1f ms vs the baseline's %.1f ms) and does %.1fx the baseline's jobs/s\n",
			r.Ratio.P50, r.Tako.LatencyMS.P50, r.Baseline.LatencyMS.P50, r.Ratio.JobsPerS)
	}
	writeErrors(w, "tako", r.Tako)
	if r.Baseline != nil {
		writeErrors(w, "baseline", *r.Baseline)
	}
}

// writeHeadline prints the line above a table: the server, what was
// measured (jobTypes) and the load.
func writeHeadline(w io.Writer, c reportConfig, jobTypes string) {
	load := fmt.Sprintf("%d requests", c.Requests)
	if c.Duration != "" {
		load = c.Duration
	}
	fmt.Fprintf(w, "tako bench: %s, %s, %s, concurrency %d, %s", c.URL, jobTypes, c.Mode, c.Concurrency, load)
	if c.Warmup > 0 {
		fmt.Fprintf(w, ", warm-up %d", c.Warmup)
	}
	fmt.Fprintln(w)
}

// latCell is latency v of s as a table cell: "-" when s had no successful
// job, and so no latency.
func latCell(s benchStats, v float64) string {
	if s.Requests == s.Errors {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}

// writeRows prints rows aligned: the first column to the left, the others
// to the right.
func writeRows(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, rw := range rows {
		for i, cell := range rw {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell)) // fmt pads to runes too
		}
	}
	for _, rw := range rows {
		var b strings.Builder
		for i, cell := range rw {
			if i == 0 {
				fmt.Fprintf(&b, "%-*s", widths[i], cell)
			} else {
				fmt.Fprintf(&b, "  %*s", widths[i], cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func writeErrors(w io.Writer, name string, s benchStats) {
	if s.Errors == 0 {
		return
	}
	kinds := make([]string, 0, len(s.ErrorKinds))
	for k := range s.ErrorKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintf(w, "\n%s errors:\n", name)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-16s %6d  %s\n", k, s.ErrorKinds[k], s.ErrorSamples[k])
	}
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// --- tako over HTTP ---

// newBenchClient returns an HTTP client that keeps one idle connection per
// worker, so every worker reuses its connection.
func newBenchClient(concurrency int, apiKey string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the server is usually on loopback; never route it through a proxy
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if apiKey == "" {
		return &http.Client{Transport: tr}
	}
	return &http.Client{Transport: bearer{key: apiKey, next: tr}}
}

// bearer adds an API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(req)
}

// benchJobType is what bench reads from GET /job-types/{name}.
type benchJobType struct {
	Image  string      `json:"image"`
	Limits benchLimits `json:"limits"`
}

// benchLimits are a job type's limits, as the baseline applies them.
type benchLimits struct {
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	Pids        int64   `json:"pids"`
}

// fetchJobType reads job type name from the server at base; flagName is
// the flag that named it, for the error when the server has no such job type.
func fetchJobType(ctx context.Context, client *http.Client, base, name, flagName string) (benchJobType, error) {
	var jt benchJobType
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status, body, err := httpDo(ctx, client, http.MethodGet, base+"/job-types/"+url.PathEscape(name), nil)
	switch {
	case err != nil:
		return jt, fmt.Errorf("cannot reach tako at %s (--url): %w", base, err)
	case status == http.StatusNotFound:
		return jt, fmt.Errorf("the server at %s has no job type %q (%s)", base, name, flagName)
	case status != http.StatusOK:
		return jt, fmt.Errorf("GET /job-types/%s: HTTP %d: %s", name, status, errorDetail(body))
	}
	if err := json.Unmarshal(body, &jt); err != nil {
		return jt, fmt.Errorf("GET /job-types/%s: %w", name, err)
	}
	return jt, nil
}

// httpDo sends one request and reads the whole answer, so the connection
// goes back to the pool.
func httpDo(ctx context.Context, client *http.Client, method, u string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// errorDetail is the "detail" of an error body, or the body itself.
func errorDetail(body []byte) string {
	var e struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Detail) > 0 {
		var s string
		if json.Unmarshal(e.Detail, &s) == nil {
			return clip(s, 200)
		}
		return clip(string(e.Detail), 200)
	}
	return clip(string(body), 200)
}

// jobAnswer is what bench reads from an execution's JSON.
type jobAnswer struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	Start  string `json:"start"`
	Error  *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Stderr string `json:"stderr"`
}

// takoBenchmark runs jobs through the server: POST /execute, or with
// --async POST /execute/async and a long poll of /jobs/{id}/result.
func takoBenchmark(cfg benchConfig, client *http.Client) benchmark {
	body, _ := json.Marshal(map[string]string{"code": cfg.Code, "job_type": cfg.JobType})
	post := func(ctx context.Context, path string, want ...int) (jobAnswer, error) {
		return call(ctx, client, http.MethodPost, cfg.URL+path, body, want...)
	}
	if !cfg.Async {
		return benchmark{name: "tako", do: func(ctx context.Context) (time.Duration, string, error) {
			t0 := time.Now()
			a, err := post(ctx, "/execute", http.StatusOK)
			lat := time.Since(t0)
			if err != nil {
				return lat, "", err
			}
			return lat, a.Start, jobStatusError(a)
		}}
	}
	return benchmark{name: "tako", do: func(ctx context.Context) (time.Duration, string, error) {
		t0 := time.Now()
		sub, err := post(ctx, "/execute/async", http.StatusAccepted, http.StatusOK)
		if err != nil {
			return time.Since(t0), "", err
		}
		if sub.JobID == "" {
			return time.Since(t0), "", &benchError{kind: "bad answer", detail: "POST /execute/async answered without a job_id"}
		}
		u := fmt.Sprintf("%s/jobs/%s/result?wait=true&timeout=%d", cfg.URL, url.PathEscape(sub.JobID), asyncWait)
		for {
			a, err := call(ctx, client, http.MethodGet, u, nil, http.StatusOK)
			if err != nil {
				return time.Since(t0), "", err
			}
			if a.Status == "queued" || a.Status == "running" {
				continue // the long poll ended before the job did
			}
			return time.Since(t0), a.Start, jobStatusError(a)
		}
	}}
}

// call sends one request and decodes the job in its answer; a status other
// than want is an "http NNN" error.
func call(ctx context.Context, client *http.Client, method, u string, body []byte, want ...int) (jobAnswer, error) {
	var a jobAnswer
	status, b, err := httpDo(ctx, client, method, u, body)
	if err != nil {
		return a, &benchError{kind: "connection", detail: err.Error()}
	}
	if !slices.Contains(want, status) {
		return a, &benchError{kind: fmt.Sprintf("http %d", status), detail: errorDetail(b)}
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, &benchError{kind: "bad answer", detail: err.Error()}
	}
	return a, nil
}

// jobStatusError is nil for a succeeded job and a "status X" error else.
func jobStatusError(a jobAnswer) error {
	if a.Status == "succeeded" {
		return nil
	}
	detail := clip(a.Stderr, 200)
	if a.Error != nil {
		detail = a.Error.Type + ": " + a.Error.Message
	}
	return &benchError{kind: "status " + a.Status, detail: detail}
}

// --- the original's model: one hardened docker run --rm per job ---

// baselineBenchmark runs each job as the original does: a fresh workspace
// output directory and one `docker run --rm` with the original's hardening
// flags and the job type's limits. The code and the input are written once,
// to a temporary directory that cleanup removes.
func baselineBenchmark(cfg benchConfig, lim benchLimits) (benchmark, func(), error) {
	dir, err := os.MkdirTemp("", "tako-bench-")
	if err != nil {
		return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	// The container runs as uid 1000, and tako may run as root with a
	// private umask: the workspace must be readable by anyone.
	files := []struct {
		path, content string
	}{{"code/main.py", cfg.Code}, {"input/data.json", "{}"}}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, []byte(f.content), 0o444)
		}
		if err == nil {
			err = os.Chmod(filepath.Dir(p), 0o755)
		}
		if err == nil {
			err = os.Chmod(p, 0o444)
		}
		if err != nil {
			cleanup()
			return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
	}
	var seq atomic.Int64
	do := func(ctx context.Context) (time.Duration, string, error) {
		t0 := time.Now()
		out := filepath.Join(dir, fmt.Sprintf("output-%d", seq.Add(1)))
		if err := os.Mkdir(out, 0o777); err != nil {
			return time.Since(t0), "", &benchError{kind: "workspace", detail: err.Error()}
		}
		defer os.RemoveAll(out)
		os.Chmod(out, 0o777) // past the umask: uid 1000 writes here
		name := "tako-bench-" + randHex(6)
		args := baselineArgs(name, cfg.Image, dir, out, lim)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		lat := time.Since(t0)
		if ctx.Err() != nil {
			// Killing the CLI does not stop the container: remove it.
			rmCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			exec.CommandContext(rmCtx, "docker", "rm", "-f", name).Run()
			cancel()
			return lat, "cold", ctx.Err()
		}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			return lat, "cold", &benchError{kind: fmt.Sprintf("exit %d", exitErr.ExitCode()), detail: stderr.String()}
		case err != nil:
			return lat, "cold", &benchError{kind: "docker", detail: err.Error()}
		case strings.TrimSpace(stdout.String()) == "":
			return lat, "cold", &benchError{kind: "empty stdout", detail: stderr.String()}
		}
		return lat, "cold", nil
	}
	return benchmark{name: "baseline", do: do}, cleanup, nil
}

// baselineArgs is the docker CLI argv of one baseline job: the original's
// hardening flags, the job type's limits, the workspace in dir (code and
// input, read-only) and out (output), then python3 -u /code/main.py.
func baselineArgs(name, image, dir, out string, lim benchLimits) []string {
	args := []string{"run", "--rm", "--name", name,
		"--network=none", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"}
	if lim.MemoryBytes > 0 {
		mem := strconv.FormatInt(lim.MemoryBytes, 10)
		args = append(args, "--memory="+mem, "--memory-swap="+mem)
	}
	if lim.CPUs > 0 {
		args = append(args, "--cpus="+strconv.FormatFloat(lim.CPUs, 'f', -1, 64))
	}
	if lim.Pids > 0 {
		args = append(args, "--pids-limit="+strconv.FormatInt(lim.Pids, 10))
	}
	return append(args,
		"--ulimit", "nofile=256:256",
		"--ulimit", "fsize=104857600",
		"--tmpfs", "/tmp:rw,noexec,nosuid,size=64m",
		"--user", "1000:1000",
		"--init",
		"--label", "tako.managed=true",
		"--label", "tako.kind=bench-baseline",
		"-v", filepath.Join(dir, "code")+":/code:ro",
		"-v", filepath.Join(dir, "input")+":/input:ro",
		"-v", out+":/output:rw",
		image, "python3", "-u", "/code/main.py")
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
