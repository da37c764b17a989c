package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Burst is the outcome of --burst: Size POST /execute requests of the
// --job-type sent at once after IdleS seconds without requests, against a
// job type whose pool keeps at most PoolMax ready containers. The issue's
// expectation (met) is that all succeed and at least min(PoolMax, Size)
// start warm, the rest waiting for a free slot or starting cold. OK and
// Errors count the requests; Warm and Cold those that said how they
// started. The latencies are those of the successful requests, 0 when none
// succeeded.
type Burst struct {
	Size         int               `json:"size"`
	IdleS        float64           `json:"idle_s"`
	PoolMax      int               `json:"pool_max"`
	OK           int               `json:"ok"`
	Errors       int               `json:"errors"`
	ErrorKinds   map[string]int    `json:"error_kinds,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // the first detail of each kind
	Warm         int               `json:"warm"`
	Cold         int               `json:"cold"`
	P50MS        float64           `json:"p50_ms"`
	P99MS        float64           `json:"p99_ms"`
	MaxMS        float64           `json:"max_ms"`
}

// burstSize is the number of requests in cfg's burst: --burst-size, or
// twice jt's pool.max. It fails for a job type without a pool when
// --burst-size is not given.
func burstSize(cfg Config, jt jobType) (int, error) {
	if cfg.BurstSize > 0 {
		return cfg.BurstSize, nil
	}
	if jt.Pool.Max <= 0 {
		return 0, fmt.Errorf("--burst: job type %q has no pool (pool.max is 0), so the burst has no default size; pass --burst-size", cfg.JobType)
	}
	return 2 * jt.Pool.Max, nil
}

// runBurst leaves the server idle for cfg.BurstIdle, then sends size
// POST /execute requests of cfg.JobType at once, each on its own
// connection, and returns how they fared against a pool of poolMax. Failed
// requests are counted, not returned; it fails only when ctx ends.
func runBurst(ctx context.Context, cfg Config, size, poolMax int, stderr io.Writer) (*Burst, error) {
	fmt.Fprintf(stderr, "bench: burst: idle %s, then %d simultaneous requests\n", cfg.BurstIdle, size)
	if err := idle(ctx, cfg.BurstIdle); err != nil {
		return nil, fmt.Errorf("--burst: interrupted while idle: %w", err)
	}
	tc, closeIdle, err := newClient(cfg, size)
	if err != nil {
		return nil, fmt.Errorf("--burst: %w", err)
	}
	defer closeIdle()
	cfg.Async, cfg.Stream = false, false // the burst is of synchronous executions, whatever the main run's mode
	samples, err := takoBenchmark(cfg, tc).burst(ctx, size, cfg.Timeout)
	if err != nil {
		return nil, fmt.Errorf("--burst: %w", err)
	}
	b := newBurst(samples, cfg.BurstIdle, poolMax)
	return &b, nil
}

// idle waits for d, or until ctx ends, which it returns.
func idle(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// burst runs n jobs at once, each with timeout: n goroutines of one
// request each wait until all of them are ready, then one channel close
// releases them together. It returns their samples, or an error when ctx
// ends.
func (b benchmark) burst(ctx context.Context, n int, timeout time.Duration) ([]sample, error) {
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	samples := make([]sample, n)
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-release
			samples[i], _ = b.one(ctx, timeout)
		})
	}
	ready.Wait()
	close(release)
	done.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s burst interrupted: %w", b.name, err)
	}
	return samples, nil
}

// newBurst is the Burst of samples, sent after idle against a pool of
// poolMax.
func newBurst(samples []sample, idle time.Duration, poolMax int) Burst {
	st := newStats(samples, 0)
	return Burst{
		Size:         len(samples),
		IdleS:        round3(idle.Seconds()),
		PoolMax:      poolMax,
		OK:           st.Requests - st.Errors,
		Errors:       st.Errors,
		ErrorKinds:   st.ErrorKinds,
		ErrorSamples: st.ErrorSamples,
		Warm:         st.Warm,
		Cold:         st.Cold,
		P50MS:        st.LatencyMS.P50,
		P99MS:        st.LatencyMS.P99,
		MaxMS:        st.LatencyMS.Max,
	}
}

// wantWarm is how many of b's requests the issue expects to start warm:
// one per ready container of a full pool, min(PoolMax, Size).
func (b Burst) wantWarm() int { return min(b.PoolMax, b.Size) }

// shortfalls says how b falls short of the expectation, one
// phrase per shortfall; none when it meets it. Speed is no part of it.
func (b Burst) shortfalls() []string {
	var short []string
	if b.Errors > 0 {
		short = append(short, fmt.Sprintf("%d of %d requests failed", b.Errors, b.Size))
	}
	if b.Warm < b.wantWarm() {
		short = append(short, fmt.Sprintf("%d started warm, fewer than min(pool.max, size) = %d", b.Warm, b.wantWarm()))
	}
	return short
}

// writeBurst prints b as a one-row table, whether it met the issue's
// expectation, and its error breakdown.
func writeBurst(w io.Writer, b Burst) {
	idleFor := time.Duration(b.IdleS * float64(time.Second))
	fmt.Fprintf(w, "\nburst: %d simultaneous requests after %s idle, pool.max %d\n", b.Size, idleFor, b.PoolMax)
	lat := func(v float64) string {
		if b.OK == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	writeRows(w, [][]string{
		{"", "size", "ok", "errors", "warm", "cold", "p50 ms", "p99 ms", "max ms"},
		{"burst", strconv.Itoa(b.Size), strconv.Itoa(b.OK), strconv.Itoa(b.Errors), strconv.Itoa(b.Warm), strconv.Itoa(b.Cold),
			lat(b.P50MS), lat(b.P99MS), lat(b.MaxMS)},
	})
	if short := b.shortfalls(); len(short) > 0 {
		fmt.Fprintf(w, "not as the issue expects: %s\n", strings.Join(short, "; "))
	} else {
		fmt.Fprintf(w, "as the issue expects: all %d succeeded, and %d started warm (at least min(pool.max, size) = %d)\n",
			b.Size, b.Warm, b.wantWarm())
	}
	writeErrors(w, "burst", Stats{Errors: b.Errors, ErrorKinds: b.ErrorKinds, ErrorSamples: b.ErrorSamples})
}
