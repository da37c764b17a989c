package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when a fake probe runs.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeProbe is every kind of probe: call n takes steps[n] on the clock
// (the last step once they run out), and call failAt (counting from 1)
// fails with err. The removal StartBootstrap returns takes removeStep.
type fakeProbe struct {
	clock      *fakeClock
	steps      []time.Duration
	removeStep time.Duration
	failAt     int
	err        error

	mu      sync.Mutex
	calls   int
	removed int
}

func (p *fakeProbe) call() error {
	p.mu.Lock()
	n := p.calls
	p.calls++
	p.mu.Unlock()
	p.clock.advance(p.steps[min(n, len(p.steps)-1)])
	if n+1 == p.failAt {
		return p.err
	}
	return nil
}

func (p *fakeProbe) StartInterpreter(context.Context) error { return p.call() }
func (p *fakeProbe) RoundTrip(context.Context) error        { return p.call() }
func (p *fakeProbe) RecordJob(context.Context) error        { return p.call() }
func (p *fakeProbe) RunTrue(context.Context) error          { return p.call() }

func (p *fakeProbe) StartBootstrap(context.Context) (func(), error) {
	if err := p.call(); err != nil {
		return nil, err
	}
	return func() {
		p.clock.advance(p.removeStep)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.removed++
	}, nil
}

// millis is a sample of the given milliseconds.
func millis(ms ...float64) []time.Duration {
	d := make([]time.Duration, len(ms))
	for i, m := range ms {
		d[i] = time.Duration(m * float64(time.Millisecond))
	}
	return d
}

// seq is 1, 2, ... n milliseconds.
func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

// fakeProbes returns probes on clock whose first call (the untimed one)
// takes far longer than the others.
func fakeProbes(clock *fakeClock) (FloorProbes, map[string]*fakeProbe) {
	p := map[string]*fakeProbe{
		"host":    {clock: clock, steps: millis(append([]float64{900}, 20, 18, 22, 19, 21, 20, 20, 19, 21, 30)...)},
		"trigger": {clock: clock, steps: millis(append([]float64{900}, seq(10)...)...)},
		"store":   {clock: clock, steps: millis(append([]float64{900}, 2, 2, 2, 2, 2, 3, 3, 3, 3, 8)...)},
		"engine":  {clock: clock, steps: millis(append([]float64{900}, 300, 300, 300, 300, 300, 300, 300, 300, 300, 400, 250)...)},
		// Each bootstrap container's removal takes 50 ms more.
		"bootstrap": {clock: clock, steps: millis(append([]float64{900}, 150, 150, 150, 150, 150, 150, 150, 150, 150, 200, 200)...),
			removeStep: 50 * time.Millisecond},
	}
	return FloorProbes{Host: p["host"], Trigger: p["trigger"], Store: p["store"], Engine: p["engine"], Bootstrap: p["bootstrap"]}, p
}

func TestFloorMeasure(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	probes, fakes := fakeProbes(clock)
	m := floorMeter{probes: probes, load: floorLoad{runs: 10, concurrency: 1, duration: time.Second}, now: clock.now}
	set, err := m.measure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The untimed first call of 900 ms counts nowhere.
	want := FloorSet{
		HostInterpreter: &FloorLatency{P50: 20, P99: 30},
		Trigger:         FloorLatency{P50: 5, P99: 10},
		Store:           FloorLatency{P50: 2, P99: 8},
		EngineCold:      FloorLatency{P50: 300, P99: 400},
		// After its 11 cold calls, the engine's calls take 250 ms: four in
		// one second.
		EngineChurn: 4,
		// The removal of 50 ms after each start is not timed.
		BootstrapCold: FloorLatency{P50: 150, P99: 200},
		// But it counts in the churn: 200 ms and 50 ms, four in a second.
		BootstrapChurn: 4,
	}
	if got, _ := json.Marshal(set); string(got) != string(mustJSON(t, want)) {
		t.Errorf("floors %s, want %s", got, mustJSON(t, want))
	}
	for name, n := range map[string]int{"host": 11, "trigger": 11, "store": 11, "engine": 11 + 4, "bootstrap": 11 + 4} {
		if fakes[name].calls != n {
			t.Errorf("%s: %d calls, want %d", name, fakes[name].calls, n)
		}
	}
	if b := fakes["bootstrap"]; b.removed != b.calls {
		t.Errorf("bootstrap: %d containers removed of %d started", b.removed, b.calls)
	}
}

func TestFloorChurn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		concurrency int
		duration    time.Duration
		step        time.Duration
		want        func(float64) bool
	}{
		// One worker: containers of 100 ms until a second has passed.
		{"one worker", 1, time.Second, 100 * time.Millisecond, func(r float64) bool { return r == 10 }},
		// A run shorter than one container still runs one per worker.
		{"shorter than a container", 1, time.Millisecond, 500 * time.Millisecond, func(r float64) bool { return r == 2 }},
		// Four workers on one clock that only their containers move: the
		// rate counts all of them, and each ran at least one.
		{"four workers", 4, time.Second, 100 * time.Millisecond, func(r float64) bool { return r == 10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{}
			engine := &fakeProbe{clock: clock, steps: []time.Duration{tt.step}}
			m := floorMeter{load: floorLoad{concurrency: tt.concurrency, duration: tt.duration}, now: clock.now}
			rate, err := m.churn(t.Context(), "engine churn", engine.RunTrue)
			if err != nil || !tt.want(rate) || engine.calls < tt.concurrency {
				t.Errorf("churn = %v, %v after %d calls", rate, err, engine.calls)
			}
		})
	}

	// The bootstrap churn counts a container once it is removed: starts of
	// 60 ms and removals of 40 ms, ten in a second.
	t.Run("bootstrap", func(t *testing.T) {
		t.Parallel()
		clock := &fakeClock{}
		b := &fakeProbe{clock: clock, steps: millis(60), removeStep: 40 * time.Millisecond}
		m := floorMeter{load: floorLoad{concurrency: 1, duration: time.Second}, now: clock.now}
		rate, err := m.churn(t.Context(), "bootstrap churn", wholeLife(b.StartBootstrap))
		if err != nil || rate != 10 || b.removed != b.calls {
			t.Errorf("churn = %v, %v; %d removed of %d started", rate, err, b.removed, b.calls)
		}
	})
}

func TestFloorErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		probe  string
		failAt int
		want   string
	}{
		{"host", 1, "host interpreter floor: boom"},
		{"trigger", 4, "trigger floor: boom"},
		{"store", 1, "store floor: boom"},
		{"engine", 2, "engine cold floor: boom"},
		{"engine", 13, "engine churn floor: boom"},
		{"bootstrap", 2, "bootstrap cold floor: boom"},
		{"bootstrap", 13, "bootstrap churn floor: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{}
			probes, fakes := fakeProbes(clock)
			fakes[tt.probe].failAt, fakes[tt.probe].err = tt.failAt, boom
			m := floorMeter{probes: probes, load: floorLoad{runs: 10, concurrency: 2, duration: time.Second}, now: clock.now}
			measured := false
			_, err := m.around(t.Context(), "runc", &bytes.Buffer{}, func() error { measured = true; return nil })
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "--floors: "+tt.want) {
				t.Errorf("err %v, want one that says %q", err, tt.want)
			}
			if measured {
				t.Error("tako was measured after the floors before it failed")
			}
		})
	}
}

func TestFloorsAround(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	probes, fakes := fakeProbes(clock)
	// The second measurement's calls all take twice as long. The churn
	// floors run four containers in the first.
	for name, f := range fakes {
		second := slices.Clone(f.steps)
		for i := range second {
			second[i] *= 2
		}
		if name == "engine" || name == "bootstrap" {
			churn := f.steps[len(f.steps)-1]
			f.steps = append(f.steps, churn, churn, churn)
		}
		f.steps = append(f.steps, second...)
	}
	m := floorMeter{probes: probes, load: floorLoad{runs: 10, concurrency: 1, duration: time.Second}, now: clock.now}
	var stderr bytes.Buffer
	var order []string
	f, err := m.around(t.Context(), "runsc", &stderr, func() error {
		order = append(order, "tako")
		progress := stderr.String()
		if !strings.Contains(progress, "floors before tako") || strings.Contains(progress, "floors after tako") {
			t.Errorf("progress when tako ran:\n%s", progress)
		}
		return nil
	})
	if err != nil || len(order) != 1 {
		t.Fatalf("around: %v, tako measured %d times", err, len(order))
	}
	if f.Runs != 10 || f.ChurnConcurrency != 1 || f.ChurnDurationS != 1 || f.Runtime != "runsc" {
		t.Errorf("floors %+v", f)
	}
	if f.Before.Trigger != (FloorLatency{P50: 5, P99: 10}) || f.After.Trigger != (FloorLatency{P50: 10, P99: 20}) ||
		f.Mean.Trigger != (FloorLatency{P50: 7.5, P99: 15}) {
		t.Errorf("trigger before %v, after %v, mean %v", f.Before.Trigger, f.After.Trigger, f.Mean.Trigger)
	}
	if f.Before.EngineChurn != 4 || f.After.EngineChurn != 2 || f.Mean.EngineChurn != 3 {
		t.Errorf("churn before %v, after %v, mean %v", f.Before.EngineChurn, f.After.EngineChurn, f.Mean.EngineChurn)
	}
	if f.Before.BootstrapCold != (FloorLatency{P50: 150, P99: 200}) || f.After.BootstrapCold != (FloorLatency{P50: 300, P99: 400}) ||
		f.Mean.BootstrapCold != (FloorLatency{P50: 225, P99: 300}) {
		t.Errorf("bootstrap cold before %v, after %v, mean %v", f.Before.BootstrapCold, f.After.BootstrapCold, f.Mean.BootstrapCold)
	}
	// After tako, a bootstrap container takes 400 ms and its removal still
	// 50: three in 1.35 s.
	if f.Before.BootstrapChurn != 4 || f.After.BootstrapChurn != 2.222 || f.Mean.BootstrapChurn != 3.111 {
		t.Errorf("bootstrap churn before %v, after %v, mean %v", f.Before.BootstrapChurn, f.After.BootstrapChurn, f.Mean.BootstrapChurn)
	}
	if h := f.Mean.HostInterpreter; h == nil || *h != (FloorLatency{P50: 30, P99: 45}) {
		t.Errorf("host interpreter mean %v", h)
	}
	if !strings.Contains(stderr.String(), "floors after tako") {
		t.Errorf("progress:\n%s", stderr.String())
	}

	// The opener is asked for the job type the server describes, and a job
	// type it cannot describe stops the run before anything is measured.
	for _, tt := range []struct {
		jt   jobType
		want string
	}{
		{jobType{Runtime: "runc"}, "no image"},
		{jobType{Image: "tako-executor:abc"}, "no runtime"},
	} {
		cfg := Config{JobType: "default", Floors: openerFunc(func(context.Context, FloorTarget) (FloorProbes, func(), error) {
			t.Error("opened the floors of a job type without an image or runtime")
			return FloorProbes{}, func() {}, nil
		})}
		if _, err := measureAroundFloors(t.Context(), cfg, tt.jt, &stderr, func() error { return nil }); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.jt, err, tt.want)
		}
	}
	var target FloorTarget
	released := false
	cfg := Config{JobType: "data", Concurrency: 1, FloorRuns: 1, FloorDuration: time.Nanosecond,
		Floors: openerFunc(func(_ context.Context, tg FloorTarget) (FloorProbes, func(), error) {
			target = tg
			return FloorProbes{}, func() { released = true }, errors.New("no engine")
		})}
	_, err = measureAroundFloors(t.Context(), cfg, jobType{Image: "img", Runtime: "runsc"}, &stderr, func() error { return nil })
	if err == nil || err.Error() != "--floors: no engine" || target != (FloorTarget{JobType: "data", Image: "img", Runtime: "runsc"}) || released {
		t.Errorf("err %v, target %+v, released %v", err, target, released)
	}
}

// openerFunc is a FloorOpener made of a function.
type openerFunc func(context.Context, FloorTarget) (FloorProbes, func(), error)

func (f openerFunc) OpenFloors(ctx context.Context, t FloorTarget) (FloorProbes, func(), error) {
	return f(ctx, t)
}

// fixedFloors are floors as a run would measure them.
func fixedFloors() Floors {
	before := FloorSet{
		HostInterpreter: &FloorLatency{P50: 20, P99: 30},
		Trigger:         FloorLatency{P50: 1, P99: 2},
		Store:           FloorLatency{P50: 1.5, P99: 4},
		EngineCold:      FloorLatency{P50: 250, P99: 350},
		EngineChurn:     10,
		BootstrapCold:   FloorLatency{P50: 400, P99: 500},
		BootstrapChurn:  5,
	}
	after := FloorSet{
		HostInterpreter: &FloorLatency{P50: 30, P99: 50},
		Trigger:         FloorLatency{P50: 3, P99: 6},
		Store:           FloorLatency{P50: 2.5, P99: 4},
		EngineCold:      FloorLatency{P50: 350, P99: 450},
		EngineChurn:     6,
		BootstrapCold:   FloorLatency{P50: 600, P99: 700},
		BootstrapChurn:  3,
	}
	return Floors{Runs: 20, ChurnConcurrency: 2, ChurnDurationS: 10, Runtime: "runc",
		Before: before, After: after, Mean: meanFloorSet(before, after)}
}

func TestFloorRatios(t *testing.T) {
	t.Parallel()
	f := fixedFloors()
	tako := Stats{Requests: 10, Errors: 1, JobsPerS: 4, LatencyMS: LatencyStats{P50: 10, P90: 20, P99: 40, Max: 50}}
	// The mean: host 25/40, trigger 2/4, store 2/4, engine cold 300/400,
	// engine churn 8, bootstrap cold 500/600, bootstrap churn 4.
	got := newFloorRatios(tako, f)
	host50, host99 := 0.4, 1.0
	want := &FloorRatios{
		P50:                   LatencyFloorRatios{HostInterpreter: &host50, Trigger: 5, Store: 5, TriggerStore: 2.5, EngineCold: 0.03333, BootstrapCold: 0.02},
		P99:                   LatencyFloorRatios{HostInterpreter: &host99, Trigger: 10, Store: 10, TriggerStore: 5, EngineCold: 0.1, BootstrapCold: 0.06667},
		JobsPerS:              0.5,
		JobsPerSOverBootstrap: 1,
	}
	if string(mustJSON(t, got)) != string(mustJSON(t, want)) {
		t.Errorf("ratios %s, want %s", mustJSON(t, got), mustJSON(t, want))
	}

	// Without python3 on the host: no host floor, no host ratio.
	f.Before.HostInterpreter = nil
	f.Mean = meanFloorSet(f.Before, f.After)
	if r := newFloorRatios(tako, f); f.Mean.HostInterpreter != nil || r == nil || r.P50.HostInterpreter != nil || r.P99.HostInterpreter != nil {
		t.Errorf("without a host interpreter: mean %v, ratios %s", f.Mean.HostInterpreter, mustJSON(t, r))
	}
	// A warm job far below the engine's cold floor keeps a positive ratio.
	fast := Stats{Requests: 1, JobsPerS: 0.001, LatencyMS: LatencyStats{P50: 0.1, P99: 0.1}}
	if r := newFloorRatios(fast, fixedFloors()); r == nil || r.P50.EngineCold != 0.0003333 || r.JobsPerS != 0.000125 ||
		r.P50.BootstrapCold != 0.0002 || r.JobsPerSOverBootstrap != 0.00025 {
		t.Errorf("ratios %s, want p50 over the engine cold floor 0.0003333 and the bootstrap cold floor 0.0002, jobs/s over churn 0.000125 and over bootstrap churn 0.00025", mustJSON(t, r))
	}
	// A bootstrap floor of zero leaves nothing to divide by.
	zero := fixedFloors()
	zero.Mean.BootstrapChurn = 0
	if r := newFloorRatios(tako, zero); r != nil {
		t.Errorf("ratios %s over a bootstrap churn of 0", mustJSON(t, r))
	}
	// Without a successful job there is nothing to compare.
	if r := newFloorRatios(Stats{Requests: 3, Errors: 3}, fixedFloors()); r != nil {
		t.Errorf("ratios %s without a successful job", mustJSON(t, r))
	}
}

func TestFloorsOutput(t *testing.T) {
	t.Parallel()
	r := fixedReport()
	f := fixedFloors()
	r.Floors, r.FloorRatios = &f, newFloorRatios(r.Tako, f)

	t.Run("json", func(t *testing.T) {
		var m map[string]any
		if err := json.Unmarshal(mustJSON(t, r), &m); err != nil {
			t.Fatal(err)
		}
		floors, ok := m["floors"].(map[string]any)
		if !ok {
			t.Fatalf("no floors object in %s", mustJSON(t, r))
		}
		for _, k := range []string{"runs", "churn_concurrency", "churn_duration_s"} {
			if v, _ := floors[k].(float64); v <= 0 {
				t.Errorf("floors.%s = %v, want a positive number", k, floors[k])
			}
		}
		for _, when := range []string{"before", "after", "mean"} {
			set, _ := floors[when].(map[string]any)
			for _, k := range []string{"host_interpreter_ms", "trigger_ms", "store_ms", "engine_cold_ms", "bootstrap_cold_ms"} {
				lat, _ := set[k].(map[string]any)
				if p50, _ := lat["p50"].(float64); p50 <= 0 {
					t.Errorf("floors.%s.%s.p50 = %v", when, k, lat["p50"])
				}
				if p99, _ := lat["p99"].(float64); p99 <= 0 {
					t.Errorf("floors.%s.%s.p99 = %v", when, k, lat["p99"])
				}
			}
			for _, k := range []string{"engine_churn_per_s", "bootstrap_churn_per_s"} {
				if v, _ := set[k].(float64); v <= 0 {
					t.Errorf("floors.%s.%s = %v", when, k, set[k])
				}
			}
		}
		ratios, _ := m["floor_ratios"].(map[string]any)
		for _, side := range []string{"p50", "p99"} {
			rs, _ := ratios[side].(map[string]any)
			for _, k := range []string{"host_interpreter", "trigger", "store", "trigger_plus_store", "engine_cold", "bootstrap_cold"} {
				if v, _ := rs[k].(float64); v <= 0 {
					t.Errorf("floor_ratios.%s.%s = %v, want a positive number", side, k, rs[k])
				}
			}
		}
		for _, k := range []string{"jobs_per_s_over_engine_churn", "jobs_per_s_over_bootstrap_churn"} {
			if v, _ := ratios[k].(float64); v <= 0 {
				t.Errorf("floor_ratios.%s = %v", k, ratios[k])
			}
		}

		// Without --floors, neither key.
		plain := fixedReport()
		var n map[string]json.RawMessage
		json.Unmarshal(mustJSON(t, plain), &n)
		if _, ok := n["floors"]; ok {
			t.Errorf("floors without --floors: %s", mustJSON(t, plain))
		}
		if _, ok := n["floor_ratios"]; ok {
			t.Errorf("floor_ratios without --floors: %s", mustJSON(t, plain))
		}
	})

	t.Run("human", func(t *testing.T) {
		var out bytes.Buffer
		writeTable(&out, r)
		want := strings.Join([]string{
			"floors (runc): 20 runs each, before and after tako's; × is tako's figure over their mean",
			"floor                    before p50  before p99  after p50  after p99  tako p50 ×  tako p99 ×",
			"host python3 -c pass ms       20.00       30.00      30.00      50.00        0.46        0.95",
			"trigger ms                     1.00        2.00       3.00       6.00        5.75        9.50",
			"store ms                       1.50        4.00       2.50       4.00        5.75        9.50",
			"trigger + store ms             2.50        6.00       5.50      10.00        2.88        4.75",
			"engine cold ms               250.00      350.00     350.00     450.00       0.038       0.095",
			"bootstrap cold ms            400.00      500.00     600.00     700.00       0.023       0.063",
			"engine churn at concurrency 2 for 10.0s: 10.0 containers/s before, 6.0 after; tako's 78.4 jobs/s is 9.80x their mean",
			"bootstrap churn at concurrency 2 for 10.0s: 5.0 containers/s before, 3.0 after; tako's 78.4 jobs/s is 19.60x their mean",
			"",
		}, "\n")
		if !strings.HasSuffix(out.String(), "\n\n"+want) {
			t.Errorf("table:\n%s\nwant it to end with:\n%s", out.String(), want)
		}
		// Tako's own rows come first, as without --floors.
		var plain bytes.Buffer
		writeTable(&plain, fixedReport())
		if !strings.HasPrefix(out.String(), plain.String()) {
			t.Errorf("the floors changed the rows above them:\n%s", out.String())
		}
	})
}

// mustJSON is v as JSON.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
