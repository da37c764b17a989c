package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The parts of a job's path the floors time, one call each. Each is a
// small interface so that the statistics can be tested with fakes;
// cmd/tako wires them to the host, the runner and the store.
type (
	// HostInterpreter starts the host's Python once: python3 -c pass.
	HostInterpreter interface {
		StartInterpreter(ctx context.Context) error
	}
	// Trigger is a started container of the job type whose bare
	// interpreter waits on the trigger FIFO: RoundTrip writes one trigger
	// and reads the marker it answers with (*runner.TriggerFloor).
	Trigger interface {
		RoundTrip(ctx context.Context) error
	}
	// JobRecorder writes to the database what one sync job costs there:
	// the insert and the finish of its record (see NewStoreFloor).
	JobRecorder interface {
		RecordJob(ctx context.Context) error
	}
	// Engine creates, starts, waits for and removes one container of
	// `true` with tako's configuration for the job type
	// (*runner.FloorProbe). It is called from several goroutines at once.
	Engine interface {
		RunTrue(ctx context.Context) error
	}
	// Bootstrap creates and starts one container with tako's
	// configuration and command for the job type, and returns once its
	// bootstrap is ready for a trigger; remove removes the container and
	// returns once it is gone, and is nil on failure
	// (*runner.FloorProbe). It is called from several goroutines at once.
	Bootstrap interface {
		StartBootstrap(ctx context.Context) (remove func(), err error)
	}
)

// FloorProbes are what the floors time. Host is nil when the host has no
// python3: that floor, and its ratios, are then left out.
type FloorProbes struct {
	Host      HostInterpreter
	Trigger   Trigger
	Store     JobRecorder
	Engine    Engine
	Bootstrap Bootstrap
}

// FloorTarget is the job type the floors imitate, as the server describes
// it.
type FloorTarget struct {
	JobType string
	Image   string
	Runtime string // "runc" or "runsc"
}

// FloorOpener makes the probes of the floors for a job type; cmd/tako's
// reaches the host, the Docker engine and the database.
type FloorOpener interface {
	// OpenFloors returns the probes for target, the trigger floor's
	// container started, and a function that releases them all.
	OpenFloors(ctx context.Context, target FloorTarget) (FloorProbes, func(), error)
}

// FloorLatency is a latency floor's p50 and p99 over its runs, in
// milliseconds.
type FloorLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// FloorSet is one measurement of every floor.
type FloorSet struct {
	// HostInterpreter is `python3 -c pass` on the host; absent (null)
	// without python3.
	HostInterpreter *FloorLatency `json:"host_interpreter_ms"`
	// Trigger is the trigger FIFO's write to the end marker's read, into a
	// bare interpreter waiting in a container of the job type.
	Trigger FloorLatency `json:"trigger_ms"`
	// Store is the database's insert and finish of one sync job's record.
	Store FloorLatency `json:"store_ms"`
	// EngineCold is the create, start, wait and remove of one container
	// of `true` with tako's configuration, one at a time.
	EngineCold FloorLatency `json:"engine_cold_ms"`
	// EngineChurn is how many of those containers per second the engine
	// gets through at the run's concurrency.
	EngineChurn float64 `json:"engine_churn_per_s"`
	// BootstrapCold is the create and start of one container with tako's
	// configuration and bootstrap, to both of the bootstrap's ready
	// markers, one at a time: a cold job's floor. Its removal follows,
	// untimed, before the next.
	BootstrapCold FloorLatency `json:"bootstrap_cold_ms"`
	// BootstrapChurn is how many of those containers per second, each
	// started, ready and removed, the engine gets through at the run's
	// concurrency: a saturated run's floor.
	BootstrapChurn float64 `json:"bootstrap_churn_per_s"`
}

// Floors are the physical limits of a job measured in the same run as
// tako's own figures (--floors): Before and After them, and their Mean,
// which FloorRatios compares tako with.
type Floors struct {
	Runs             int      `json:"runs"`              // timed runs of each latency floor, after one untimed
	ChurnConcurrency int      `json:"churn_concurrency"` // the churn floors' workers
	ChurnDurationS   float64  `json:"churn_duration_s"`  // how long each churn floor runs each time, and then its last containers finish
	Runtime          string   `json:"runtime"`           // the OCI runtime of the floors' containers
	Before           FloorSet `json:"before"`
	After            FloorSet `json:"after"`
	Mean             FloorSet `json:"mean"`
}

// LatencyFloorRatios are one of tako's latency figures over the same
// figure of each latency floor: how many times the floor tako's latency is.
type LatencyFloorRatios struct {
	HostInterpreter *float64 `json:"host_interpreter"` // null without python3 on the host
	Trigger         float64  `json:"trigger"`
	Store           float64  `json:"store"`
	TriggerStore    float64  `json:"trigger_plus_store"` // over the sum of the two: a warm job's floor
	EngineCold      float64  `json:"engine_cold"`
	BootstrapCold   float64  `json:"bootstrap_cold"`
}

// FloorRatios are tako's figures (the --job-type row) over the floors'
// mean: P50 compares its p50 with each floor's p50, P99 its p99 with each
// p99, JobsPerS its jobs/s with the engine churn floor's containers/s, and
// JobsPerSOverBootstrap with the bootstrap churn floor's.
type FloorRatios struct {
	P50                   LatencyFloorRatios `json:"p50"`
	P99                   LatencyFloorRatios `json:"p99"`
	JobsPerS              float64            `json:"jobs_per_s_over_engine_churn"`
	JobsPerSOverBootstrap float64            `json:"jobs_per_s_over_bootstrap_churn"`
}

// floorLoad is how the floors are measured: runs timed round trips of each
// latency floor, and each churn floor with concurrency workers for
// duration.
type floorLoad struct {
	runs        int
	concurrency int
	duration    time.Duration
}

// measureAroundFloors measures the floors of cfg.JobType (jt, as the server
// describes it), then calls measure, tako's own run, then measures the
// floors again, with the probes cfg.Floors opens and releases. It fails
// when the probes cannot be opened or a floor fails, naming the floor, or
// with measure's error.
func measureAroundFloors(ctx context.Context, cfg Config, jt jobType, stderr io.Writer, measure func() error) (*Floors, error) {
	switch {
	case jt.Image == "":
		return nil, fmt.Errorf("--floors: the server names no image for job type %q", cfg.JobType)
	case jt.Runtime == "":
		return nil, fmt.Errorf("--floors: the server names no runtime for job type %q: is it available? (tako status)", cfg.JobType)
	}
	probes, release, err := cfg.Floors.OpenFloors(ctx, FloorTarget{JobType: cfg.JobType, Image: jt.Image, Runtime: jt.Runtime})
	if err != nil {
		return nil, fmt.Errorf("--floors: %w", err)
	}
	defer release()
	load := floorLoad{runs: cfg.FloorRuns, concurrency: cfg.Concurrency, duration: cfg.FloorDuration}
	return floorMeter{probes: probes, load: load, now: time.Now}.around(ctx, jt.Runtime, stderr, measure)
}

// around measures the floors, calls measure, and measures them again.
func (m floorMeter) around(ctx context.Context, runtime string, stderr io.Writer, measure func() error) (*Floors, error) {
	floorsProgress(stderr, m.load, "before tako")
	before, err := m.measure(ctx)
	if err != nil {
		return nil, fmt.Errorf("--floors: %w", err)
	}
	if err := measure(); err != nil {
		return nil, err
	}
	floorsProgress(stderr, m.load, "after tako")
	after, err := m.measure(ctx)
	if err != nil {
		return nil, fmt.Errorf("--floors: %w", err)
	}
	return &Floors{
		Runs:             m.load.runs,
		ChurnConcurrency: m.load.concurrency,
		ChurnDurationS:   round3(m.load.duration.Seconds()),
		Runtime:          runtime,
		Before:           before,
		After:            after,
		Mean:             meanFloorSet(before, after),
	}, nil
}

// floorMeter times the probes' calls on its clock: time.Now, or a fake in
// tests.
type floorMeter struct {
	probes FloorProbes
	load   floorLoad
	now    func() time.Time
}

// measure measures every floor once: the host's interpreter, the trigger,
// the store, the engine cold, the engine churn, the bootstrap cold and the
// bootstrap churn, in that order. It fails when a probe fails, naming the
// floor, or when ctx ends.
func (m floorMeter) measure(ctx context.Context) (FloorSet, error) {
	var set FloorSet
	if m.probes.Host != nil {
		lat, err := m.latency(ctx, "host interpreter", m.probes.Host.StartInterpreter)
		if err != nil {
			return set, err
		}
		set.HostInterpreter = &lat
	}
	var err error
	if set.Trigger, err = m.latency(ctx, "trigger", m.probes.Trigger.RoundTrip); err != nil {
		return set, err
	}
	if set.Store, err = m.latency(ctx, "store", m.probes.Store.RecordJob); err != nil {
		return set, err
	}
	if set.EngineCold, err = m.latency(ctx, "engine cold", m.probes.Engine.RunTrue); err != nil {
		return set, err
	}
	if set.EngineChurn, err = m.churn(ctx, "engine churn", m.probes.Engine.RunTrue); err != nil {
		return set, err
	}
	if set.BootstrapCold, err = m.latencyUntil(ctx, "bootstrap cold", m.probes.Bootstrap.StartBootstrap); err != nil {
		return set, err
	}
	if set.BootstrapChurn, err = m.churn(ctx, "bootstrap churn", wholeLife(m.probes.Bootstrap.StartBootstrap)); err != nil {
		return set, err
	}
	return set, nil
}

// latency calls op once untimed (the first call pays for caches filling
// and connections opening), then times m.load.runs calls one after the
// other and returns their p50 and p99.
func (m floorMeter) latency(ctx context.Context, floor string, op func(context.Context) error) (FloorLatency, error) {
	return m.latencyUntil(ctx, floor, func(ctx context.Context) (func(), error) {
		return func() {}, op(ctx)
	})
}

// latencyUntil is latency for an op that returns before its work is
// done: each call is timed until op returns, and the rest of its work,
// the function op returned, then runs untimed before the next call. op
// returns no function when it fails.
func (m floorMeter) latencyUntil(ctx context.Context, floor string, op func(context.Context) (func(), error)) (FloorLatency, error) {
	rest, err := op(ctx)
	if err != nil {
		return FloorLatency{}, fmt.Errorf("%s floor: %w", floor, err)
	}
	rest()
	sample := make([]time.Duration, 0, m.load.runs)
	for range m.load.runs {
		t0 := m.now()
		rest, err := op(ctx)
		d := m.now().Sub(t0)
		if err != nil {
			return FloorLatency{}, fmt.Errorf("%s floor: %w", floor, err)
		}
		rest()
		sample = append(sample, d)
	}
	return newFloorLatency(sample), nil
}

// wholeLife is one container's whole life from a start that returns its
// removal: the start, then the removal, as a churn floor counts it.
func wholeLife(start func(context.Context) (func(), error)) func(context.Context) error {
	return func(ctx context.Context) error {
		remove, err := start(ctx)
		if err != nil {
			return err
		}
		remove()
		return nil
	}
}

// churn runs op, one container's whole life, from m.load.concurrency
// workers, each starting its next container when the last one is gone,
// for m.load.duration, and returns the containers per second. Every worker
// runs at least one container, and the containers under way at the end
// finish and count, as tako's own requests do. Its errors name floor.
func (m floorMeter) churn(ctx context.Context, floor string, op func(context.Context) error) (float64, error) {
	var (
		done     atomic.Int64
		wg       sync.WaitGroup
		failOnce sync.Once
		failed   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	began := m.now()
	deadline := began.Add(m.load.duration)
	for range m.load.concurrency {
		wg.Go(func() {
			for {
				if err := op(ctx); err != nil {
					failOnce.Do(func() { failed = err; cancel() })
					return
				}
				done.Add(1)
				if !m.now().Before(deadline) || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := m.now().Sub(began)
	if failed != nil {
		return 0, fmt.Errorf("%s floor: %w", floor, failed)
	}
	if elapsed <= 0 {
		return 0, fmt.Errorf("%s floor: no time passed over %d containers", floor, done.Load())
	}
	return round3(float64(done.Load()) / elapsed.Seconds()), nil
}

// newFloorLatency is the p50 and p99 of sample, which it sorts.
func newFloorLatency(sample []time.Duration) FloorLatency {
	st := newLatencyStats(sample)
	return FloorLatency{P50: st.P50, P99: st.P99}
}

// meanFloorSet is the mean of a and b, floor by floor; the host
// interpreter's only when both have it.
func meanFloorSet(a, b FloorSet) FloorSet {
	mean := func(x, y float64) float64 { return round3((x + y) / 2) }
	lat := func(x, y FloorLatency) FloorLatency {
		return FloorLatency{P50: mean(x.P50, y.P50), P99: mean(x.P99, y.P99)}
	}
	m := FloorSet{
		Trigger:        lat(a.Trigger, b.Trigger),
		Store:          lat(a.Store, b.Store),
		EngineCold:     lat(a.EngineCold, b.EngineCold),
		EngineChurn:    mean(a.EngineChurn, b.EngineChurn),
		BootstrapCold:  lat(a.BootstrapCold, b.BootstrapCold),
		BootstrapChurn: mean(a.BootstrapChurn, b.BootstrapChurn),
	}
	if a.HostInterpreter != nil && b.HostInterpreter != nil {
		h := lat(*a.HostInterpreter, *b.HostInterpreter)
		m.HostInterpreter = &h
	}
	return m
}

// newFloorRatios compares tako's figures st with the floors f: each over
// f.Mean. It is nil when tako had no successful job, or when a floor the
// ratios divide by is not positive.
func newFloorRatios(st Stats, f Floors) *FloorRatios {
	m := f.Mean
	if st.Requests == st.Errors || st.LatencyMS.P50 <= 0 || st.JobsPerS <= 0 {
		return nil
	}
	for _, v := range []float64{m.Trigger.P50, m.Trigger.P99, m.Store.P50, m.Store.P99,
		m.EngineCold.P50, m.EngineCold.P99, m.EngineChurn,
		m.BootstrapCold.P50, m.BootstrapCold.P99, m.BootstrapChurn} {
		if v <= 0 {
			return nil
		}
	}
	side := func(v float64, pick func(FloorLatency) float64) LatencyFloorRatios {
		r := LatencyFloorRatios{
			Trigger:       roundSig(v / pick(m.Trigger)),
			Store:         roundSig(v / pick(m.Store)),
			TriggerStore:  roundSig(v / (pick(m.Trigger) + pick(m.Store))),
			EngineCold:    roundSig(v / pick(m.EngineCold)),
			BootstrapCold: roundSig(v / pick(m.BootstrapCold)),
		}
		if h := m.HostInterpreter; h != nil && pick(*h) > 0 {
			x := roundSig(v / pick(*h))
			r.HostInterpreter = &x
		}
		return r
	}
	return &FloorRatios{
		P50:                   side(st.LatencyMS.P50, func(l FloorLatency) float64 { return l.P50 }),
		P99:                   side(st.LatencyMS.P99, func(l FloorLatency) float64 { return l.P99 }),
		JobsPerS:              roundSig(st.JobsPerS / m.EngineChurn),
		JobsPerSOverBootstrap: roundSig(st.JobsPerS / m.BootstrapChurn),
	}
}

// roundSig rounds x, a positive ratio, to four significant digits: a warm
// job over the engine's cold floor stays a positive number, however small.
func roundSig(x float64) float64 {
	if x <= 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	scale := math.Pow(10, 3-math.Floor(math.Log10(x)))
	return math.Round(x*scale) / scale
}

// floorRatioCell is a floor ratio as a table cell: two decimals, or two
// significant digits below 0.1.
func floorRatioCell(v float64) string {
	if v < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// floorsProgress prints the line that says which floors are being
// measured, and when.
func floorsProgress(stderr io.Writer, load floorLoad, when string) {
	fmt.Fprintf(stderr, "bench: floors %s: host interpreter, trigger, store, engine cold and bootstrap cold, %d runs each; engine churn and bootstrap churn at concurrency %d for %s each\n",
		when, load.runs, load.concurrency, load.duration)
}

// writeFloors prints the floors before and after tako's run and tako's
// figures over their mean, then each churn floor in a sentence.
func writeFloors(w io.Writer, f Floors, ratios *FloorRatios, tako Stats) {
	fmt.Fprintf(w, "\nfloors (%s): %d runs each, before and after tako's; × is tako's figure over their mean\n", f.Runtime, f.Runs)
	rows := [][]string{{"floor", "before p50", "before p99", "after p50", "after p99", "tako p50 ×", "tako p99 ×"}}
	cell := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	ratio := func(pick func(LatencyFloorRatios) float64) [2]string {
		if ratios == nil {
			return [2]string{"-", "-"}
		}
		return [2]string{floorRatioCell(pick(ratios.P50)), floorRatioCell(pick(ratios.P99))}
	}
	row := func(name string, before, after FloorLatency, r [2]string) {
		rows = append(rows, []string{name + " ms", cell(before.P50), cell(before.P99), cell(after.P50), cell(after.P99), r[0], r[1]})
	}
	if f.Before.HostInterpreter != nil && f.After.HostInterpreter != nil {
		row("host python3 -c pass", *f.Before.HostInterpreter, *f.After.HostInterpreter, ratio(func(r LatencyFloorRatios) float64 {
			if r.HostInterpreter == nil {
				return 0
			}
			return *r.HostInterpreter
		}))
	}
	row("trigger", f.Before.Trigger, f.After.Trigger, ratio(func(r LatencyFloorRatios) float64 { return r.Trigger }))
	row("store", f.Before.Store, f.After.Store, ratio(func(r LatencyFloorRatios) float64 { return r.Store }))
	sum := func(s FloorSet) FloorLatency {
		return FloorLatency{P50: s.Trigger.P50 + s.Store.P50, P99: s.Trigger.P99 + s.Store.P99}
	}
	row("trigger + store", sum(f.Before), sum(f.After), ratio(func(r LatencyFloorRatios) float64 { return r.TriggerStore }))
	row("engine cold", f.Before.EngineCold, f.After.EngineCold, ratio(func(r LatencyFloorRatios) float64 { return r.EngineCold }))
	row("bootstrap cold", f.Before.BootstrapCold, f.After.BootstrapCold, ratio(func(r LatencyFloorRatios) float64 { return r.BootstrapCold }))
	writeRows(w, rows)
	churn := func(name string, before, after float64, pick func(*FloorRatios) float64) {
		fmt.Fprintf(w, "%s churn at concurrency %d for %.1fs: %.1f containers/s before, %.1f after",
			name, f.ChurnConcurrency, f.ChurnDurationS, before, after)
		if ratios != nil {
			fmt.Fprintf(w, "; tako's %.1f jobs/s is %.2fx their mean", tako.JobsPerS, pick(ratios))
		}
		fmt.Fprintln(w)
	}
	churn("engine", f.Before.EngineChurn, f.After.EngineChurn, func(r *FloorRatios) float64 { return r.JobsPerS })
	churn("bootstrap", f.Before.BootstrapChurn, f.After.BootstrapChurn, func(r *FloorRatios) float64 { return r.JobsPerSOverBootstrap })
}
