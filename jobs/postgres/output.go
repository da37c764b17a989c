package postgres

import (
	"context"
	"fmt"

	"github.com/tako-run/tako/jobs"
)

// OutputChannel is the PostgreSQL notification channel on which a node
// announces, with the execution id as payload, that it appended to a
// running execution's output log. Event streams on any node LISTEN on it.
const OutputChannel = "tako_execution_output"

// appendOutputSQL inserts a batch of rows, given as parallel arrays, and
// notifies OutputChannel in the same statement: one round trip per flush.
const appendOutputSQL = `
WITH ins AS (
    INSERT INTO tako_output_chunks (execution_id, seq, kind, "offset", data)
    SELECT $1, s, k, o, d FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[]) AS t(s, k, o, d)
    RETURNING 1
)
SELECT pg_notify($6, $1::text) FROM (SELECT count(*) FROM ins) c`

// AppendOutput adds chunks to the output log of execution id, which this
// node is running, and announces them on OutputChannel. Data must already
// be storable (CleanText).
func (s *Store) AppendOutput(ctx context.Context, id string, chunks []jobs.Chunk) error {
	if len(chunks) == 0 {
		return nil
	}
	seqs := make([]int32, len(chunks))
	kinds := make([]string, len(chunks))
	offsets := make([]int64, len(chunks))
	data := make([]string, len(chunks))
	for i, c := range chunks {
		seqs[i], kinds[i], offsets[i], data[i] = int32(c.Seq), string(c.Kind), c.Offset, c.Data
	}
	if _, err := s.pool.Exec(ctx, appendOutputSQL, id, seqs, kinds, offsets, data, OutputChannel); err != nil {
		return fmt.Errorf("append output: %w", err)
	}
	return nil
}

// outputSQL reads the rows of one execution's output log after a seq,
// through the execution's scope.
const outputSQL = `
SELECT o.seq, o.kind, o."offset", o.data FROM tako_output_chunks o
JOIN tako_executions e ON e.id = o.execution_id`

// Output returns the rows of execution id's output log after seq, in
// order, at most limit of them. ENOTFOUND is never returned: an execution
// c may not see simply has no rows.
func (s *Store) Output(ctx context.Context, c jobs.Caller, id string, after, limit int) ([]jobs.Chunk, error) {
	if !validID(id) {
		return nil, nil
	}
	w := byID(c, id)
	w.add("o.seq > $%d", after)
	rows, err := s.pool.Query(ctx, outputSQL+w.String()+fmt.Sprintf(" ORDER BY o.seq LIMIT %d", max(limit, 1)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("read output: %w", err)
	}
	defer rows.Close()
	var out []jobs.Chunk
	for rows.Next() {
		var ch jobs.Chunk
		var kind string
		if err := rows.Scan(&ch.Seq, &kind, &ch.Offset, &ch.Data); err != nil {
			return nil, fmt.Errorf("read output: %w", err)
		}
		ch.Kind = jobs.ChunkKind(kind)
		out = append(out, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read output: %w", err)
	}
	return out, nil
}

// DeleteOutput deletes execution id's output log: its record holds the
// whole output once it has ended, or it is about to run again.
func (s *Store) DeleteOutput(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM tako_output_chunks WHERE execution_id = $1`, id); err != nil {
		return fmt.Errorf("delete output: %w", err)
	}
	return nil
}
