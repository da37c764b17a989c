package api

import "github.com/gofiber/fiber/v2"

// PoolStatsResponse is the body of GET /pool/stats: the original's worker
// pool statistics (the same numbers as /health's queue_stats: pending over
// all nodes, running and max_workers on this node, max_queue_size the
// queue's bound), plus the prewarmed pool of each job type on this node.
type PoolStatsResponse struct {
	QueueStats
	JobTypes map[string]JobTypePoolStats `json:"job_types"`
}

// JobTypePoolStats is one job type's pool on this node: ready containers,
// executions of the job type running now and the ready containers it aims
// for. All are 0 for a job type without a pool.
type JobTypePoolStats struct {
	Warm   int `json:"warm"`
	Busy   int `json:"busy"`
	Target int `json:"target"`
}

// handlePoolStats is GET /pool/stats. Like /health, it answers from the
// latest health snapshot, at most two seconds old, and the pools' own
// counters: it does no I/O.
func (s *Server) handlePoolStats(c *fiber.Ctx) error {
	resp := PoolStatsResponse{
		QueueStats: s.health.current().resp.QueueStats,
		JobTypes:   map[string]JobTypePoolStats{},
	}
	for _, jt := range s.registry.All() {
		p := s.runner.Availability(jt).Pool
		resp.JobTypes[jt.Name] = JobTypePoolStats{Warm: p.Warm, Busy: p.Busy, Target: p.Target}
	}
	return c.JSON(resp)
}
