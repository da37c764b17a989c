package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Health statuses.
const (
	healthHealthy  = "healthy"
	healthDegraded = "degraded"
)

// healthTimeout bounds the runner's health probe and databaseHealthTimeout
// the database's, so /health always answers.
const (
	healthTimeout         = 3 * time.Second
	databaseHealthTimeout = 2 * time.Second
)

// HealthResponse is the body of GET /health. Status is "degraded" when
// Docker or the database is unreachable or a job type cannot run, and
// Problems says why; the HTTP status stays 200, as in the original.
type HealthResponse struct {
	Status            string                       `json:"status"`
	Version           string                       `json:"version"`
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

// handleHealth is GET /health. The runner and the database are probed at
// the same time, each under its own timeout.
func (s *Server) handleHealth(c *fiber.Ctx) error {
	type queue struct{ queued, limit int }
	dbErr, depth := make(chan error, 1), make(chan queue, 1)
	go func() {
		ctx, cancel := context.WithTimeout(s.base, databaseHealthTimeout)
		defer cancel()
		err := s.service.DatabaseHealth(ctx)
		var q queue
		if err == nil {
			q.queued, q.limit, _ = s.service.Queued(ctx)
		}
		dbErr <- err
		depth <- q
	}()
	ctx, cancel := context.WithTimeout(s.base, healthTimeout)
	defer cancel()
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
	return c.JSON(resp)
}
