package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBurstSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int // --burst-size
		poolMax int
		want    int
		err     string
	}{
		{"twice pool.max", 0, 8, 16, ""},
		{"--burst-size over pool.max", 3, 8, 3, ""},
		{"--burst-size without a pool", 5, 0, 5, ""},
		{"no pool and no --burst-size", 0, 0, 0, `--burst: job type "default" has no pool (pool.max is 0), so the burst has no default size; pass --burst-size`},
	}
	for _, tt := range tests {
		got, err := burstSize(Config{JobType: "default", BurstSize: tt.size}, jobType{Pool: pool{Max: tt.poolMax}})
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

// TestBurstTogether checks that a burst's requests are all in flight at
// once: each fake job waits until every one of them has started.
func TestBurstTogether(t *testing.T) {
	t.Parallel()
	const n = 6
	var (
		arrived atomic.Int64
		all     = make(chan struct{})
	)
	b := benchmark{name: "fake", do: func(ctx context.Context) sample {
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return sample{latency: time.Millisecond, start: "warm"}
		case <-ctx.Done():
			return sample{err: ctx.Err()}
		}
	}}
	samples, err := b.burst(t.Context(), n, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != n {
		t.Fatalf("%d samples, want %d", len(samples), n)
	}
	for i, s := range samples {
		if s.err != nil {
			t.Errorf("request %d: %v (not all %d were in flight at once)", i, s.err, n)
		}
	}
}

func TestBurstTimeout(t *testing.T) {
	t.Parallel()
	b := benchmark{name: "fake", do: func(ctx context.Context) sample {
		<-ctx.Done()
		return sample{latency: 20 * time.Millisecond, err: ctx.Err()}
	}}
	samples, err := b.burst(t.Context(), 2, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		var re *requestError
		if !errors.As(s.err, &re) || re.kind != "timeout" {
			t.Errorf("err %v, want a timeout", s.err)
		}
	}
}

func TestBurstInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	began := time.Now()
	_, err := runBurst(ctx, Config{JobType: "default", BurstIdle: time.Hour, Timeout: time.Second}, 4, 2, &bytes.Buffer{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "--burst") {
		t.Errorf("err %v, want --burst ... context canceled", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("took %s to notice the end of its context", d)
	}
}

func TestBurstStats(t *testing.T) {
	t.Parallel()
	samples := []sample{
		{latency: 10 * time.Millisecond, start: "warm"},
		{latency: 12 * time.Millisecond, start: "warm"},
		{latency: 300 * time.Millisecond, start: "cold"},
		{latency: 40 * time.Millisecond, err: &requestError{kind: "http 503", detail: "no free slot"}},
	}
	b := newBurst(samples, 90*time.Second, 2)
	want := Burst{Size: 4, IdleS: 90, PoolMax: 2, OK: 3, Errors: 1, Warm: 2, Cold: 1, P50MS: 12, P99MS: 300, MaxMS: 300,
		ErrorKinds: map[string]int{"http 503": 1}, ErrorSamples: map[string]string{"http 503": "no free slot"}}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("burst %+v, want %+v", b, want)
	}

	t.Run("expectations", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			b    Burst
			want []string
		}{
			{"met", Burst{Size: 4, PoolMax: 2, OK: 4, Warm: 2, Cold: 2}, nil},
			{"more warm than the pool", Burst{Size: 4, PoolMax: 2, OK: 4, Warm: 4}, nil},
			{"a size below pool.max", Burst{Size: 3, PoolMax: 8, OK: 3, Warm: 3}, nil},
			{"no pool", Burst{Size: 3, OK: 3, Cold: 3}, nil},
			{"errors", Burst{Size: 4, PoolMax: 2, OK: 3, Errors: 1, Warm: 2}, []string{"1 of 4 requests failed"}},
			{"too few warm", Burst{Size: 4, PoolMax: 2, OK: 4, Warm: 1, Cold: 3},
				[]string{"1 started warm, fewer than min(pool.max, size) = 2"}},
		}
		for _, tt := range tests {
			if got := tt.b.shortfalls(); !slices.Equal(got, tt.want) {
				t.Errorf("%s: shortfalls %q, want %q", tt.name, got, tt.want)
			}
		}
	})

	t.Run("human", func(t *testing.T) {
		t.Parallel()
		r := fixedReport()
		r.Burst = &b
		var out bytes.Buffer
		writeTable(&out, r)
		want := strings.Join([]string{
			"",
			"burst: 4 simultaneous requests after 1m30s idle, pool.max 2",
			"       size  ok  errors  warm  cold  p50 ms  p99 ms  max ms",
			"burst     4   3       1     2     1    12.0   300.0   300.0",
			"not as the issue expects: 1 of 4 requests failed",
			"",
			"burst errors:",
			"  http 503              1  no free slot",
			"",
		}, "\n")
		if !strings.HasSuffix(out.String(), want) {
			t.Errorf("table:\n%s\nwant it to end with:\n%s", out.String(), want)
		}

		met := Burst{Size: 4, IdleS: 60, PoolMax: 2, OK: 4, Warm: 3, Cold: 1, P50MS: 20, P99MS: 30, MaxMS: 30}
		out.Reset()
		writeBurst(&out, met)
		if !strings.Contains(out.String(), "\nas the issue expects: all 4 succeeded, and 3 started warm (at least min(pool.max, size) = 2)\n") ||
			strings.Contains(out.String(), "errors:") {
			t.Errorf("table:\n%s", out.String())
		}

		failed := Burst{Size: 2, PoolMax: 2, Errors: 2, ErrorKinds: map[string]int{"timeout": 2}}
		out.Reset()
		writeBurst(&out, failed)
		if !strings.Contains(out.String(), "burst     2   0       2     0     0       -       -       -\n") {
			t.Errorf("a burst without a success has latencies:\n%s", out.String())
		}
	})
}

// fakeTako is a tako server for Run: job type default with a pool of
// poolMax, and POST /execute answering each job succeeded with a fixed
// timing. The first mainRequests jobs are the main run's, one at a time;
// every later one is the burst's and waits until burstSize of them have
// arrived, each on its own connection, then the first poolMax of them
// start warm.
type fakeTako struct {
	poolMax, mainRequests, burstSize int

	executes   atomic.Int64
	mu         sync.Mutex
	burstSeen  int
	burstAll   chan struct{}
	burstConns map[string]bool // the client addresses of the burst's requests
}

func newFakeTako(poolMax, mainRequests, burstSize int) *fakeTako {
	return &fakeTako{poolMax: poolMax, mainRequests: mainRequests, burstSize: burstSize,
		burstAll: make(chan struct{}), burstConns: map[string]bool{}}
}

// connections is how many connections the burst's requests came on.
func (f *fakeTako) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.burstConns)
}

func (f *fakeTako) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/job-types/default":
		fmt.Fprintf(w, `{"name":"default","image":"tako-executor:abc","runtime":"runc","limits":{"memory_bytes":536870912,"cpus":1,"pids":128},
			"pool":{"warm":%d,"busy":0,"target":%d,"min":%d,"max":%d,"idle_ttl_seconds":300}}`, f.poolMax, f.poolMax, f.poolMax, f.poolMax)
	case r.Method == http.MethodPost && r.URL.Path == "/execute":
		start := "warm"
		if n := int(f.executes.Add(1)); n > f.mainRequests {
			var ok bool
			if start, ok = f.burstArrival(r.RemoteAddr); !ok {
				http.Error(w, `{"detail":"the burst's requests did not all arrive"}`, http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintf(w, `{"success":true,"status":"succeeded","start":%q,"job_id":"j","stdout":"2\n",
			"timing":{"queue_ms":0.25,"start_ms":0.5,"run_ms":4,"collect_ms":1,"total_ms":6,"startup_ms":0.5}}`, start)
	default:
		http.NotFound(w, r)
	}
}

// burstArrival counts one of the burst's requests, from addr, and waits
// for all of them; ok is false when they do not all arrive in time.
func (f *fakeTako) burstArrival(addr string) (start string, ok bool) {
	f.mu.Lock()
	f.burstSeen++
	f.burstConns[addr] = true
	start = "cold"
	if f.burstSeen <= f.poolMax {
		start = "warm"
	}
	if f.burstSeen == f.burstSize {
		close(f.burstAll)
	}
	f.mu.Unlock()
	select {
	case <-f.burstAll:
		return start, true
	case <-time.After(10 * time.Second):
		return start, false
	}
}

// TestBurstRun runs bench.Run with --burst against a fake server: the
// burst comes after the main run, its requests arrive together on their
// own connections, and the report carries it, and tako's phases.
func TestBurstRun(t *testing.T) {
	t.Parallel()
	fake := newFakeTako(2, 3, 4)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := Config{URL: srv.URL, JobType: "default", Code: "print(1+1)", Concurrency: 1, Requests: 3, Timeout: 30 * time.Second,
		JSON: true, Burst: true, BurstIdle: 10 * time.Millisecond}
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("decode %s: %v", stdout.String(), err)
	}
	if r.Tako.Requests != 3 || r.Tako.Errors != 0 {
		t.Errorf("tako %+v", r.Tako)
	}
	// The fake's total is made up: the time outside it can be anything.
	if p := r.Tako.Phases; p == nil || p.QueueMS != 0.25 || p.StartMS != 0.5 || p.RunMS != 4 || p.CollectMS != 1 || p.TotalMS != 6 {
		t.Errorf("tako phases %+v, want the fake's timing", p)
	}
	b := r.Burst
	if b == nil {
		t.Fatalf("no burst:\n%s", stdout.String())
	}
	if b.Size != 4 || b.OK != 4 || b.Errors != 0 || b.Warm != 2 || b.Cold != 2 || b.PoolMax != 2 || b.IdleS != 0.01 ||
		b.P50MS <= 0 || b.P99MS < b.P50MS || b.MaxMS < b.P99MS || len(b.ErrorKinds) != 0 {
		t.Errorf("burst %+v:\n%s", *b, stdout.String())
	}
	if conns := fake.connections(); conns != 4 {
		t.Errorf("the burst came on %d connections, want 4", conns)
	}
	if !strings.Contains(stderr.String(), "bench: burst: idle 10ms, then 4 simultaneous requests\n") {
		t.Errorf("progress:\n%s", stderr.String())
	}

	// Without a pool and without --burst-size, nothing is measured.
	fake = newFakeTako(0, 3, 0)
	srv0 := httptest.NewServer(fake)
	defer srv0.Close()
	cfg.URL = srv0.URL
	stdout.Reset()
	stderr.Reset()
	err := Run(t.Context(), cfg, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "has no pool") || !strings.Contains(err.Error(), "--burst-size") {
		t.Errorf("err %v", err)
	}
	if fake.executes.Load() != 0 || stdout.Len() > 0 {
		t.Errorf("measured %d jobs before finding no pool:\n%s", fake.executes.Load(), stdout.String())
	}
}
