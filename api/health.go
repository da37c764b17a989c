package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/runner"
)

// Health statuses.
const (
	healthHealthy  = "healthy"
	healthDegraded = "degraded"
)

// /health answers from a snapshot that a background probe assembles every
// healthInterval, so a snapshot is at most healthMaxAge old and a flood of
// health checks costs no database or Docker call. The checks of Docker and
// the database run in loops of their own, each given dependencyTimeout to
// answer before it counts as failing: a busy machine is not an outage.
const (
	healthInterval    = time.Second
	healthMaxAge      = 2 * time.Second
	dependencyTimeout = 5 * time.Second
)

// HealthResponse is the body of GET /health. Status is "degraded" when
// Docker or the database is unreachable or a job type cannot run, and
// Problems says why; the HTTP status stays 200, as in the original.
type HealthResponse struct {
	Status            string                       `json:"status"`
	Role              string                       `json:"role"` // server.role: all, api or worker
	Node              string                       `json:"node"` // this node's id, as executions' node names it
	Version           string                       `json:"version"`
	CheckedAt         string                       `json:"checked_at"` // when the checks ran (RFC 3339, UTC); at most 2 s ago
	DockerAvailable   bool                         `json:"docker_available"`
	GVisorAvailable   bool                         `json:"gvisor_available"`
	GVisorReason      string                       `json:"gvisor_reason"` // why gVisor is not usable; "" when it is
	DatabaseAvailable bool                         `json:"database_available"`
	Runner            RunnerHealth                 `json:"runner"`
	QueueStats        QueueStats                   `json:"queue_stats"`
	JobTypes          map[string]JobTypeHealth     `json:"job_types"`
	Checks            map[string]HealthCheckResult `json:"checks"`
	Problems          []string                     `json:"problems"`
	// ProductionMode is the original's "strict mode requiring pre-built
	// images": true when requests may not bring ad-hoc requirements.
	ProductionMode bool `json:"production_mode"`
	// CircuitBreaker is always null: tako has no circuit breaker in front
	// of Docker. It checks the engine every second and answers 503 while
	// the engine is down (see checks.docker).
	CircuitBreaker *struct{} `json:"circuit_breaker"`
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

// probeHealth assembles a snapshot from what the dependency checks last
// said (see dependencies) and the job types, and adds the server's
// warnings. It does no I/O. CheckedAt is the monitor's to set.
func (s *Server) probeHealth(ctx context.Context) HealthResponse {
	s.deps.start(s.base, s)
	d := s.deps.latest(ctx)
	h, dberr, q := d.runner, d.dbErr, d.queue

	resp := HealthResponse{
		Status:            healthHealthy,
		Role:              cmp.Or(s.role, "all"),
		Node:              s.node,
		Version:           s.version,
		DockerAvailable:   h.DockerAvailable,
		GVisorAvailable:   h.GVisorAvailable,
		GVisorReason:      h.GVisorReason,
		DatabaseAvailable: dberr == nil,
		Runner:            RunnerHealth{Running: h.Running, MaxConcurrent: h.MaxConcurrent},
		QueueStats:        QueueStats{Pending: q.queued, Running: h.Running, MaxWorkers: h.MaxConcurrent, MaxQueueSize: q.limit},
		JobTypes:          map[string]JobTypeHealth{},
		Checks: map[string]HealthCheckResult{
			"database": {Status: "ok"},
			"docker":   {Status: "ok"},
			"gvisor":   {Status: "ok"},
		},
		Problems:       []string{},
		ProductionMode: s.limits.AdHocDisabled,
	}
	if dberr != nil {
		resp.Checks["database"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "database is not reachable")
	}
	switch {
	case !h.DockerAvailable && s.role == RoleAPI:
		// An api node has no engine: the workers' are its.
		resp.Checks["docker"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "no live worker runs jobs: start one (tako server --role worker)")
	case !h.DockerAvailable:
		resp.Checks["docker"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "docker engine is not reachable")
	}
	switch {
	case h.GVisorAvailable:
	case h.GVisorInstalled:
		// Registered but failing its probe: an operator's mistake to fix,
		// whatever the job types' modes.
		resp.Checks["gvisor"] = HealthCheckResult{Status: "failing"}
		resp.Problems = append(resp.Problems, "gVisor runtime "+h.GVisorRuntime+" is unusable: "+h.GVisorReason+"; "+h.GVisorFix)
	default:
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
		if av.Pool.Failures >= runner.FailingPool {
			resp.Problems = append(resp.Problems, fmt.Sprintf("job type %s: its pool failed to start %d containers in a row (%s) and backs off", jt.Name, av.Pool.Failures, av.Pool.LastError))
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

// dependencies keeps the last answers of the slow health checks, Docker's
// and the database's, each refreshed in a loop of its own every
// healthInterval. A check that has not answered within dependencyTimeout
// counts as failing until it does.
type dependencies struct {
	runner atomic.Pointer[depAnswer[runner.Health]]
	db     atomic.Pointer[depAnswer[dbHealth]]
	once   sync.Once
	done   sync.WaitGroup
	began  time.Time
}

// dbHealth is the database check's answer.
type dbHealth struct {
	err   error
	queue struct{ queued, limit int }
}

// depAnswer is one check's last answer and when it came.
type depAnswer[T any] struct {
	at    time.Time
	value T
}

// dependencyState is what probeHealth reads.
type dependencyState struct {
	runner runner.Health
	dbErr  error
	queue  struct{ queued, limit int }
}

// errNoAnswer is a check that has not answered within dependencyTimeout.
var errNoAnswer = fmt.Errorf("no answer within %s", dependencyTimeout)

// start runs the checks until ctx ends, once.
func (d *dependencies) start(ctx context.Context, s *Server) {
	d.once.Do(func() {
		d.began = time.Now()
		d.done.Go(func() {
			watch(ctx, &d.runner, func(ctx context.Context) runner.Health {
				h := s.runner.Health(ctx)
				if !h.DockerAvailable {
					// The engine's error can name host paths; operators get
					// it in the log.
					s.logger.LogAttrs(ctx, slog.LevelWarn, "docker unavailable", slog.String("error", h.DockerError))
				}
				return h
			})
		})
		d.done.Go(func() {
			watch(ctx, &d.db, func(ctx context.Context) dbHealth {
				var h dbHealth
				if h.err = s.service.DatabaseHealth(ctx); h.err == nil {
					h.queue.queued, h.queue.limit, _ = s.service.Queued(ctx)
				} else {
					// The driver's error can name hosts and users; operators
					// get it in the log.
					s.logger.LogAttrs(ctx, slog.LevelWarn, "database unavailable", slog.String("error", h.err.Error()))
				}
				return h
			})
		})
	})
}

// watch stores check's answer in last every healthInterval until ctx ends.
func watch[T any](ctx context.Context, last *atomic.Pointer[depAnswer[T]], check func(context.Context) T) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, dependencyTimeout)
		v := check(cctx)
		cancel()
		last.Store(&depAnswer[T]{at: time.Now(), value: v})
		select {
		case <-ctx.Done():
		case <-time.After(healthInterval):
		}
	}
}

// latest returns what the checks last said; a check that has been silent
// for longer than dependencyTimeout (or never answered) is failing. Right
// after the start it waits, within ctx, for their first answers.
func (d *dependencies) latest(ctx context.Context) dependencyState {
	for d.runner.Load() == nil || d.db.Load() == nil {
		if ctx.Err() != nil || time.Since(d.began) > dependencyTimeout {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var st dependencyState
	stale := func(at time.Time) bool { return time.Since(at) > dependencyTimeout+healthInterval }
	if a := d.runner.Load(); a != nil && !stale(a.at) {
		st.runner = a.value
	} else {
		st.runner.DockerError = errNoAnswer.Error()
	}
	if a := d.db.Load(); a != nil && !stale(a.at) {
		st.dbErr, st.queue = a.value.err, a.value.queue
	} else {
		st.dbErr = errNoAnswer
	}
	return st
}
