package postgres

import (
	"context"
	"fmt"

	"github.com/tako-run/tako/jobs"
)

const insertDeliverySQL = `
INSERT INTO tako_webhook_deliveries
    (execution_id, attempt, url, attempted_at, duration_ms, status_code, outcome, error, response, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, nullif($6, 0), $7, nullif($8, ''), nullif($9, ''), $10)`

// AddDelivery records one attempt to deliver execution id's webhook.
func (s *Store) AddDelivery(ctx context.Context, id string, d jobs.Delivery) error {
	_, err := s.pool.Exec(ctx, insertDeliverySQL, id, d.Attempt, CleanText(d.URL), d.AttemptedAt,
		toMS(d.Duration), d.StatusCode, d.Outcome, CleanText(d.Error), CleanText(d.Response), d.NextAttemptAt)
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}

// DeliveryCount returns how many attempts to deliver execution id's
// webhook are recorded.
func (s *Store) DeliveryCount(ctx context.Context, id string) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tako_webhook_deliveries WHERE execution_id = $1`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("count deliveries: %w", err)
	}
	return n, nil
}

const deliveriesSQL = `
SELECT d.attempt, d.url, d.attempted_at, d.duration_ms, coalesce(d.status_code, 0), d.outcome,
       coalesce(d.error, ''), coalesce(d.response, ''), d.next_attempt_at
FROM tako_webhook_deliveries d JOIN tako_executions e ON e.id = d.execution_id`

// Deliveries returns the recorded attempts to deliver execution id's
// webhook, oldest first, at most 1000. ENOTFOUND when c may not see the
// execution.
func (s *Store) Deliveries(ctx context.Context, c jobs.Caller, id string) ([]jobs.Delivery, error) {
	if _, err := s.Status(ctx, c, id); err != nil {
		return nil, err
	}
	w := byID(c, id)
	rows, err := s.pool.Query(ctx, deliveriesSQL+w.String()+" ORDER BY d.attempt LIMIT 1000", w.args...)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	out := []jobs.Delivery{}
	for rows.Next() {
		var d jobs.Delivery
		var ms float64
		if err := rows.Scan(&d.Attempt, &d.URL, &d.AttemptedAt, &ms, &d.StatusCode, &d.Outcome, &d.Error, &d.Response, &d.NextAttemptAt); err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		d.Duration = fromMS(ms)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}
