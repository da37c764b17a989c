package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Health statuses.
const (
	healthHealthy  = "healthy"
	healthDegraded = "degraded"
)

// /health answers from a snapshot that a background probe refreshes every
// healthInterval, each probe bounded by healthInterval too, so a snapshot
// is at most healthMaxAge old and a flood of health checks costs no
// database or Docker call.
const (
	healthInterval = time.Second
	healthMaxAge   = 2 * time.Second
)

// HealthResponse is the body of GET /health. Status is "degraded" when
// Docker or the database is unreachable or a job type cannot run, and
// Problems says why; the HTTP status stays 200, as in the original.
type HealthResponse struct {
	Status            string                       `json:"status"`
	Version           string                       `json:"version"`
	CheckedAt         string                       `json:"checked_at"` // when the checks ran (RFC 3339, UTC); at most 2 s ago
	DockerAvailable   bool                         `json:"docker_available"`
	GVisorAvailable   bool                         `json:"gvisor_available"`
	DatabaseAvailable bool                         `json:"database_available"`
	Runner            RunnerHealth                 `json:"runner"`
	QueueStats        QueueStats                   `json:"queue_stats"`
	JobTypes          map[string]JobTypeHealth     `json:"job_types"`
	Checks            map[string]HealthCheckResult `json:"checks"`
	Problems          []string                     `json:"problems"`
}

// RunnerHealth is the execution slots of this node.
type RunnerHealth struct {
	Running       int `json:"running"`
	MaxConcurrent int `json:"max_concurrent"`
}

// QueueStats keeps the original's health field for its clients. Pending is
// the durable queue's depth over all nodes; Running and MaxWorkers are this
// node's execution slots.
type QueueStats struct {
	Pending      int `json:"pending"`
	Running      int `json:"running"`
	MaxWorkers   int `json:"max_workers"`
	MaxQueueSize int `json:"max_queue_size"`
}

// JobTypeHealth says whether one job type can run here.
type JobTypeHealth struct {
	Available         bool   `json:"available"`
	UnavailableReason string `json:"unavailable_reason,omitempty"`
}

// HealthCheckResult is the outcome of one dependency check: "ok", "missing"
// (optional and absent) or "failing".
type HealthCheckResult struct {
	Status string `json:"status"`
}

// handleHealth is GET /health: the latest snapshot, encoded once when it
// was taken, never older than healthMaxAge. It waits for the next one when
// the latest is too old (at start-up, or when the probe falls behind),
// without probing anything itself.
func (s *Server) handleHealth(c *fiber.Ctx) error {
	snap := s.health.current()
	age := time.Since(snap.at)
	if age <= healthMaxAge && snap.body != nil {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(snap.body)
	}
	resp := snap.resp
	resp.Version, resp.CheckedAt = s.version, timestamp(snap.at)
	if age > healthMaxAge {
		resp.Problems = append(slices.Clone(resp.Problems), fmt.Sprintf("health checks are late: the last ran %.0f s ago", age.Seconds()))
		resp.Status = healthDegraded
	}
	return c.JSON(resp)
}

// probeHealth checks the runner and the database, at the same time, each
// within ctx, and the job types, and adds the server's warnings. CheckedAt
// is the monitor's to set.
func (s *Server) probeHealth(ctx context.Context) HealthResponse {
	type queue struct{ queued, limit int }
	dbErr, depth := make(chan error, 1), make(chan queue, 1)
	go func() {
		err := s.service.DatabaseHealth(ctx)
		var q queue
		if err == nil {
			q.queued, q.limit, _ = s.service.Queued(ctx)
		}
		dbErr <- err
		depth <- q
	}()
	h := s.runner.Health(ctx)
	dberr, q := <-dbErr, <-depth

	resp := HealthResponse{
		Status:            healthHealthy,
		Version:           s.version,
		DockerAvailable:   h.DockerAvailable,
		GVisorAvailable:   h.GVisorAvailable,
		DatabaseAvailable: dberr == nil,
		Runner:            RunnerHealth{Running: h.Running, MaxConcurrent: h.MaxConcurrent},
		QueueStats:        QueueStats{Pending: q.queued, Running: h.Running, MaxWorkers: h.MaxConcurrent, MaxQueueSize: q.limit},
		JobTypes:          map[string]JobTypeHealth{},
		Checks: map[string]HealthCheckResult{
			"database": {Status: "ok"},
			"docker":   {Status: "ok"},
			"gvisor":   {Status: "ok"},
		},
		Problems: []string{},
	}
	if dberr != nil {
		resp.Checks["database"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "database is not reachable")
		// The driver's error can name hosts and users; operators get it in
		// the log.
		s.logger.LogAttrs(ctx, slog.LevelWarn, "database unavailable", slog.String("error", dberr.Error()))
	}
	if !h.DockerAvailable {
		resp.Checks["docker"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "docker engine is not reachable")
		// The engine's error can name host paths; operators get it in the log.
		s.logger.LogAttrs(ctx, slog.LevelWarn, "docker unavailable", slog.String("error", h.DockerError))
	}
	if !h.GVisorAvailable {
		// Permissive job types fall back to runc; strict ones show up below.
		resp.Checks["gvisor"] = HealthCheckResult{Status: "missing"}
	}
	for _, jt := range s.registry.All() {
		av := s.runner.Availability(jt)
		resp.JobTypes[jt.Name] = JobTypeHealth{Available: av.Available, UnavailableReason: av.Reason}
		if !av.Available {
			p := "job type " + jt.Name + " is unavailable"
			if av.Reason != "" {
				p += ": " + av.Reason
			}
			resp.Problems = append(resp.Problems, p)
		}
	}
	resp.Problems = append(resp.Problems, s.warnings...)
	if len(resp.Problems) > 0 {
		resp.Status = healthDegraded
	}
	return resp
}

// healthSnapshot is the outcome of one probe, and body its JSON. next is
// closed when a newer snapshot replaces it, which is what a reader waits
// on.
type healthSnapshot struct {
	at   time.Time // when the probe started
	resp HealthResponse
	body []byte
	next chan struct{}
}

// healthMonitor keeps the latest health snapshot, refreshed every
// healthInterval by one background goroutine. It starts with the first
// reader, so a server nobody asks probes nothing, and stops with ctx or
// stop. Its methods are safe for concurrent use.
type healthMonitor struct {
	ctx     context.Context
	cancel  context.CancelFunc
	probe   func(context.Context) HealthResponse
	latest  atomic.Pointer[healthSnapshot]
	once    sync.Once
	started bool // set by once: the probe goroutine was started
	done    chan struct{}
}

func newHealthMonitor(ctx context.Context, probe func(context.Context) HealthResponse) *healthMonitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &healthMonitor{ctx: ctx, cancel: cancel, probe: probe, done: make(chan struct{})}
	// A placeholder from the beginning of time: too old to answer with.
	m.latest.Store(&healthSnapshot{next: make(chan struct{})})
	return m
}

// current returns the latest snapshot when it is at most healthMaxAge
// old; otherwise it waits up to healthMaxAge for the next one and returns
// whatever is latest then.
func (m *healthMonitor) current() *healthSnapshot {
	m.once.Do(func() {
		if m.ctx.Err() == nil {
			m.started = true
			go m.loop()
		}
	})
	snap := m.latest.Load()
	if time.Since(snap.at) <= healthMaxAge {
		return snap
	}
	wait := time.NewTimer(healthMaxAge)
	defer wait.Stop()
	select {
	case <-snap.next:
	case <-wait.C:
	case <-m.ctx.Done():
	}
	if snap = m.latest.Load(); snap.at.IsZero() {
		// Never probed (the server is stopping, or the first probe is
		// stuck): say so rather than nothing.
		snap = &healthSnapshot{at: time.Now(), resp: HealthResponse{
			Status: healthDegraded, JobTypes: map[string]JobTypeHealth{}, Checks: map[string]HealthCheckResult{},
			Problems: []string{"health checks have not finished yet"},
		}}
	}
	return snap
}

// loop probes every healthInterval until the monitor stops. Each probe gets
// at most healthInterval, so the latest snapshot is never older than
// healthMaxAge while the probe keeps up.
func (m *healthMonitor) loop() {
	defer close(m.done)
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	for {
		at := time.Now()
		ctx, cancel := context.WithTimeout(m.ctx, healthInterval)
		resp := m.probe(ctx)
		cancel()
		if m.ctx.Err() != nil {
			return
		}
		resp.CheckedAt = timestamp(at)
		body, err := json.Marshal(resp)
		if err != nil {
			body = nil // the handler encodes it itself, and fails there
		}
		prev := m.latest.Swap(&healthSnapshot{at: at, resp: resp, body: body, next: make(chan struct{})})
		close(prev.next)
		select {
		case <-tick.C:
		case <-m.ctx.Done():
			return
		}
	}
}

// stop ends the probe and waits for it. It is idempotent; after it, the
// probe never starts.
func (m *healthMonitor) stop() {
	m.cancel()
	m.once.Do(func() {}) // a later reader must not start it
	if m.started {
		<-m.done
	}
}
