package postgres

import (
	"context"
	"fmt"
)

// orphansSQL finds async executions that can no longer end by themselves:
// not terminal, but their River job is finalized or gone (River discarded it
// after its last attempt, for example when a node died running it).
const orphansSQL = `
SELECT e.id::text
FROM tako_executions e
LEFT JOIN river_job j ON j.id = e.river_job_id
WHERE e.mode = 'async'
  AND e.status IN ('queued', 'running')
  AND e.river_job_id IS NOT NULL
  AND (j.id IS NULL OR j.state IN ('completed', 'cancelled', 'discarded'))
LIMIT 1000`

// Orphans returns the ids of async executions that are not terminal while
// their queue job has ended, so that the caller can end them.
func (s *Store) Orphans(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, orphansSQL)
	if err != nil {
		return nil, fmt.Errorf("find orphaned executions: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find orphaned executions: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
