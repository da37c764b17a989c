package postgres

import (
	"context"
	"fmt"

	"github.com/tako-run/tako/jobs"
)

// The page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// The parts of List's query; the conditions in use are joined with AND.
const (
	listSelectSQL  = `SELECT ` + summaryColumns + ` FROM tako_executions e`
	listStatusSQL  = `e.status = $%d`
	listJobTypeSQL = `e.job_type = $%d`
	listAPIKeySQL  = `e.api_key = $%d`
	listStartSQL   = `e.start_kind = $%d`
	listParentSQL  = `e.parent_id = $%d::uuid`
	listBeforeSQL  = `e.seq < $%d`
	listOrderBySQL = ` ORDER BY e.seq DESC LIMIT $%d OFFSET $%d`
)

// List returns one page of the history c may see, newest first: the
// executions that match f's Status, JobType, APIKey, Start and ParentID
// (each ignored when empty) and are older than the cursor f.Before (0 for the newest), after
// skipping f.Offset of them (the original's paging). A
// caller who is not an admin sees only its own executions, whatever f
// says. Limit defaults to DefaultListLimit and is capped at MaxListLimit.
// NextCursor, when not 0, is the f.Before of the next page. Paging is by
// seq, a keyset: inserts between pages cause no duplicates and hide no
// older execution. Items are summaries (see jobs.ExecutionPage): no code,
// input or artifacts are read.
func (s *Store) List(ctx context.Context, c jobs.Caller, f jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	w := &where{}
	w.scope(c)
	if f.Status != "" {
		w.add(listStatusSQL, string(f.Status))
	}
	if f.JobType != "" {
		w.add(listJobTypeSQL, f.JobType)
	}
	if f.APIKey != "" {
		w.add(listAPIKeySQL, f.APIKey)
	}
	if f.Start != "" {
		w.add(listStartSQL, string(f.Start))
	}
	if f.ParentID != "" {
		w.add(listParentSQL, f.ParentID)
	}
	if f.Before > 0 {
		w.add(listBeforeSQL, f.Before)
	}
	// One more than the page tells whether an older page exists.
	args := append(w.args, limit+1, max(f.Offset, 0))
	query := listSelectSQL + w.String() + fmt.Sprintf(listOrderBySQL, len(args)-1, len(args))

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	page := jobs.ExecutionPage{Items: []*jobs.Execution{}}
	for rows.Next() {
		e, err := scanSummary(rows)
		if err != nil {
			return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
		}
		page.Items = append(page.Items, e)
	}
	if err := rows.Err(); err != nil {
		return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = page.Items[limit-1].Seq
	}
	return page, nil
}
