package postgres

import (
	"context"
	"fmt"
	"time"
)

const heartbeatSQL = `
INSERT INTO tako_nodes (id) VALUES ($1)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`

// Heartbeat records that node is alive now.
func (s *Store) Heartbeat(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, heartbeatSQL, node); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// RemoveNode forgets node: it stopped cleanly.
func (s *Store) RemoveNode(ctx context.Context, node string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM tako_nodes WHERE id = $1`, node); err != nil {
		return fmt.Errorf("remove node: %w", err)
	}
	return nil
}

// strandedSQL finds sync executions still running on a node that has not
// been heard from within the timeout (or ever).
const strandedSQL = `
SELECT e.id::text
FROM tako_executions e
WHERE e.status = 'running' AND e.mode = 'sync'
  AND NOT EXISTS (
    SELECT 1 FROM tako_nodes n
    WHERE n.id = e.node AND n.heartbeat_at > now() - make_interval(secs => $1)
  )
LIMIT 1000`

// Stranded returns the ids of sync executions running on nodes that have
// not sent a heartbeat for timeout: nobody will finish them.
func (s *Store) Stranded(ctx context.Context, timeout time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, strandedSQL, timeout.Seconds())
	if err != nil {
		return nil, fmt.Errorf("find stranded executions: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find stranded executions: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
