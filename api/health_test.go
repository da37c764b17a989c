package api

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-run/tako/runner"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	up := runner.Health{DockerAvailable: true, GVisorAvailable: false, MaxConcurrent: 4, Running: 1}
	tests := []struct {
		name     string
		health   runner.Health
		avail    map[string]runner.Availability
		dbErr    error
		status   string
		problems []any
	}{
		{"healthy without gVisor in permissive mode", up, nil, nil, "healthy", []any{}},
		{"docker down", runner.Health{DockerError: "dial unix /var/run/docker.sock: connect: refused", MaxConcurrent: 4}, nil, nil, "degraded", []any{"docker engine is not reachable"}},
		{"job type unavailable", up, map[string]runner.Availability{"data": {Reason: "image tako-data:abc is missing; run tako setup"}}, nil, "degraded",
			[]any{"job type data is unavailable: image tako-data:abc is missing; run tako setup"}},
		{"database down", up, nil, errors.New("dial tcp 10.0.0.5:5432: connect: connection refused (user=secret)"), "degraded", []any{"database is not reachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, &fakeService{dbErr: tt.dbErr}, &fakeRunner{health: tt.health, avail: tt.avail}, Limits{})
			r := do(t, s, "GET", "/health", "", nil)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.object(t)
			if m["status"] != tt.status || !reflect.DeepEqual(m["problems"], tt.problems) {
				t.Errorf("status %v problems %v; want %v %v", m["status"], m["problems"], tt.status, tt.problems)
			}
			for _, k := range []string{"version", "docker_available", "gvisor_available", "database_available", "runner", "job_types", "checks", "queue_stats"} {
				if _, ok := m[k]; !ok {
					t.Errorf("field %q missing: %s", k, r.body)
				}
			}
			if m["docker_available"] != tt.health.DockerAvailable || m["database_available"] != (tt.dbErr == nil) || m["version"] != "test" {
				t.Errorf("got %v", m)
			}
			checks, _ := m["checks"].(map[string]any)
			wantDB := map[string]any{"status": "ok"}
			if tt.dbErr != nil {
				wantDB["status"] = "failing"
			}
			if !reflect.DeepEqual(checks["database"], wantDB) {
				t.Errorf("checks.database %v, want %v", checks["database"], wantDB)
			}
			rn, _ := m["runner"].(map[string]any)
			if rn["running"] != float64(tt.health.Running) || rn["max_concurrent"] != float64(tt.health.MaxConcurrent) {
				t.Errorf("runner %v", rn)
			}
			if q, _ := m["queue_stats"].(map[string]any); tt.dbErr == nil && (q["pending"] != 3.0 || q["max_queue_size"] != 1000.0) {
				t.Errorf("queue_stats %v, want the service's 3 of 1000", q)
			}
			jts, _ := m["job_types"].(map[string]any)
			if len(jts) != 2 {
				t.Errorf("job_types %v", jts)
			}
			if containsBytes(r.body, "docker.sock") || containsBytes(r.body, "secret") || containsBytes(r.body, "10.0.0.5") {
				t.Errorf("docker error text leaked: %s", r.body)
			}
		})
	}
}

// TestHealthFromSnapshot: a flood of health checks is answered from the
// background snapshot: the database is probed about once a second, not
// once a request.
func TestHealthFromSnapshot(t *testing.T) {
	t.Parallel()
	var probes atomic.Int64
	fs := &fakeService{health: func(context.Context) error { probes.Add(1); return nil }}
	s := newTestServer(t, fs, nil, Limits{})
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 10 {
				r := do(t, s, "GET", "/health", "", nil)
				if r.status != http.StatusOK {
					t.Errorf("status %d", r.status)
					return
				}
				m := r.object(t)
				if at, err := time.Parse(time.RFC3339Nano, m["checked_at"].(string)); err != nil || at.Before(start.Add(-time.Second)) {
					t.Errorf("checked_at %v: %v", m["checked_at"], err)
				}
			}
		})
	}
	wg.Wait()
	// One probe per healthInterval at most, plus the one under way.
	if n, most := probes.Load(), int64(time.Since(start)/healthInterval)+2; n > most {
		t.Errorf("200 health checks probed the database %d times, want at most %d", n, most)
	}
}

// TestHealthFollowsChanges: the snapshot is refreshed in the background,
// so /health sees the database go away and come back.
func TestHealthFollowsChanges(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	fs := &fakeService{health: func(context.Context) error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	}}
	s := newTestServer(t, fs, nil, Limits{})
	waitFor := func(available bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			m := do(t, s, "GET", "/health", "", nil).object(t)
			if m["database_available"] == available {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health never showed database_available %v: %v", available, m)
			}
		}
	}
	waitFor(true)
	down.Store(true)
	waitFor(false)
	down.Store(false)
	waitFor(true)
}

// TestHealthLate: when a dependency check stops answering, /health says
// it is failing (after dependencyTimeout) instead of passing its old answer
// off as fresh; before any check has finished it says that.
func TestHealthLate(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	stuck := make(chan struct{})
	defer close(stuck)
	fs := &fakeService{health: func(context.Context) error {
		if calls.Add(1) > 1 {
			<-stuck // deaf to its context: the probe never finishes
		}
		return nil
	}}
	s := newTestServer(t, fs, &fakeRunner{health: runner.Health{DockerAvailable: true, GVisorAvailable: true}}, Limits{})
	first := do(t, s, "GET", "/health", "", nil).object(t)
	if first["status"] != "healthy" {
		t.Fatalf("first answer: %v", first)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		m := do(t, s, "GET", "/health", "", nil).object(t)
		problems, _ := m["problems"].([]any)
		if m["status"] == "degraded" && m["database_available"] == false && len(problems) == 1 && problems[0] == "database is not reachable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stuck probe never showed: %v", m)
		}
	}

	idle := newTestServer(t, &fakeService{}, nil, Limits{})
	idle.health.stop()
	m := do(t, idle, "GET", "/health", "", nil).object(t)
	if m["status"] != "degraded" || !reflect.DeepEqual(m["problems"], []any{"health checks have not finished yet"}) || m["version"] != "test" {
		t.Errorf("before any check: %v", m)
	}
}
