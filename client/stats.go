package client

import (
	"context"
	"net/http"
)

// PoolStats is GET /pool/stats: the original's worker pool statistics and
// the prewarmed pool of each job type on the node that answered.
type PoolStats struct {
	QueueStats
	JobTypes map[string]JobTypePool `json:"job_types"`
}

// JobTypePool is one job type's prewarmed pool on a node: ready
// containers, executions of the job type running now and the ready
// containers it aims for. All are 0 for a job type without a pool.
type JobTypePool struct {
	Warm   int `json:"warm"`
	Busy   int `json:"busy"`
	Target int `json:"target"`
}

// PoolStats returns the queue and the prewarmed pools of the node that
// answers. A server with API keys wants one.
func (c *Client) PoolStats(ctx context.Context) (*PoolStats, error) {
	var out PoolStats
	if err := c.do(ctx, call{method: http.MethodGet, path: "/pool/stats", retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeadLetterStats is GET /dlq/stats: how many async jobs are in the
// dead-letter queue (their attempts all failed on tako's own failures), in
// all and by error type.
type DeadLetterStats struct {
	Total       int            `json:"total"`
	ByErrorType map[string]int `json:"by_error_type"`
}

// DeadLetterStats counts the dead-letter queue the caller may see (with
// API keys, its own key's entries; an admin's, all).
func (c *Client) DeadLetterStats(ctx context.Context) (*DeadLetterStats, error) {
	var out DeadLetterStats
	if err := c.do(ctx, call{method: http.MethodGet, path: "/dlq/stats", retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
