package postgres

import (
	"context"
	"fmt"
)

// orphansSQL finds async executions that can no longer end by themselves:
// not terminal, but their River job is finalized or gone (River discarded it
// after its last attempt, for example when a node died running it, or
// cancelled it before its worker recorded the cancel).
const orphansSQL = `
SELECT e.id::text, coalesce(j.state::text, '') = 'cancelled'
FROM tako_executions e
LEFT JOIN river_job j ON j.id = e.river_job_id
WHERE e.mode = 'async'
  AND e.status IN ('queued', 'running')
  AND e.river_job_id IS NOT NULL
  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded'))
LIMIT 1000`

// Orphan is an async execution that is not terminal while its queue job
// has ended.
type Orphan struct {
	ID string
	// Cancelled says the queue job was cancelled: the execution was
	// cancelled, not abandoned.
	Cancelled bool
}

// Orphans returns the async executions that are not terminal while their
// queue job has ended, so that the caller can end them.
func (s *Store) Orphans(ctx context.Context) ([]Orphan, error) {
	rows, err := s.pool.Query(ctx, orphansSQL)
	if err != nil {
		return nil, fmt.Errorf("find orphaned executions: %w", err)
	}
	defer rows.Close()
	var out []Orphan
	for rows.Next() {
		var o Orphan
		if err := rows.Scan(&o.ID, &o.Cancelled); err != nil {
			return nil, fmt.Errorf("find orphaned executions: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
