package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/tako-run/tako/jobs"
)

// The page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// The parts of List's query; the filters in use are joined with AND.
const (
	listSelectSQL   = `SELECT ` + executionColumns + ` FROM tako_executions e`
	listStatusSQL   = `e.status = $%d`
	listJobTypeSQL  = `e.job_type = $%d`
	listAPIKeySQL   = `e.api_key = $%d`
	listBeforeSQL   = `e.seq < $%d`
	listOrderBySQL  = ` ORDER BY e.seq DESC LIMIT $%d`
	listWhereSQL    = ` WHERE `
	listWhereJoiner = ` AND `
)

// List returns one page of history, newest first: the executions that
// match f's Status, JobType and APIKey (each ignored when empty) and are older
// than the cursor f.Before (0 for the newest). Limit defaults to
// DefaultListLimit and is capped at MaxListLimit. NextCursor, when not 0,
// is the f.Before of the next page. Paging is by seq, a keyset: inserts
// between pages cause no duplicates and hide no older execution. Ended
// executions carry their Result with artifact metadata, not bytes.
func (s *Store) List(ctx context.Context, f jobs.ExecutionFilter) (jobs.ExecutionPage, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	var (
		conds []string
		args  []any
	)
	add := func(format string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(format, len(args)))
	}
	if f.Status != "" {
		add(listStatusSQL, string(f.Status))
	}
	if f.JobType != "" {
		add(listJobTypeSQL, f.JobType)
	}
	if f.APIKey != "" {
		add(listAPIKeySQL, f.APIKey)
	}
	if f.Before > 0 {
		add(listBeforeSQL, f.Before)
	}
	query := listSelectSQL
	if len(conds) > 0 {
		query += listWhereSQL + strings.Join(conds, listWhereJoiner)
	}
	// One more than the page tells whether an older page exists.
	args = append(args, limit+1)
	query += fmt.Sprintf(listOrderBySQL, len(args))

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
	}
	defer rows.Close()
	var (
		page  jobs.ExecutionPage
		seqs  []int64
		ended []string
	)
	for rows.Next() {
		e, seq, err := scanExecution(rows)
		if err != nil {
			return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
		}
		page.Items = append(page.Items, e)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = seqs[limit-1]
	}
	for _, e := range page.Items {
		if e.Result != nil {
			ended = append(ended, e.ID)
		}
	}
	if len(ended) > 0 {
		byID, err := artifactMeta(ctx, s.pool, ended)
		if err != nil {
			return jobs.ExecutionPage{}, fmt.Errorf("list executions: %w", err)
		}
		for _, e := range page.Items {
			if e.Result != nil {
				e.Result.Artifacts = byID[e.ID]
			}
		}
	}
	if page.Items == nil {
		page.Items = []*jobs.Execution{}
	}
	return page, nil
}
