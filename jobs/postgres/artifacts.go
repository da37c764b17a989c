package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tako-run/tako/jobs"
)

// insertArtifactsSQL writes all artifacts of one execution in one round
// trip. Names are unique per execution; a duplicate (two names that
// became equal when cleaned) keeps the first.
const insertArtifactsSQL = `
INSERT INTO tako_artifacts (execution_id, name, size_bytes, sha256, content)
SELECT $1, a.name, a.size_bytes, a.sha256, a.content
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bytea[]) AS a(name, size_bytes, sha256, content)
ON CONFLICT (execution_id, name) DO NOTHING`

// insertArtifacts stores artifacts of execution id, computing a missing
// size or SHA256 from the bytes.
func insertArtifacts(ctx context.Context, q DBTX, id string, artifacts []jobs.ArtifactContent) error {
	if len(artifacts) == 0 {
		return nil
	}
	n := len(artifacts)
	names, sums := make([]string, n), make([]string, n)
	sizes, contents := make([]int64, n), make([][]byte, n)
	for i, a := range artifacts {
		names[i] = CleanText(a.Name)
		sizes[i] = a.SizeBytes
		if sizes[i] == 0 {
			sizes[i] = int64(len(a.Content))
		}
		sums[i] = a.SHA256
		if sums[i] == "" {
			sum := sha256.Sum256(a.Content)
			sums[i] = hex.EncodeToString(sum[:])
		}
		contents[i] = a.Content
		if contents[i] == nil {
			contents[i] = []byte{} // content is NOT NULL; an empty file is still a file
		}
	}
	if _, err := q.Exec(ctx, insertArtifactsSQL, id, names, sizes, sums, contents); err != nil {
		return fmt.Errorf("insert artifacts: %w", err)
	}
	return nil
}

const artifactMetaSQL = `
SELECT execution_id::text, name, size_bytes, sha256 FROM tako_artifacts
WHERE execution_id = ANY($1::uuid[])
ORDER BY execution_id, name`

// artifactMeta returns the artifacts of the executions ids, without their
// bytes, by execution id, each list ordered by name.
func artifactMeta(ctx context.Context, q DBTX, ids []string) (map[string][]jobs.Artifact, error) {
	rows, err := q.Query(ctx, artifactMetaSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("read artifacts: %w", err)
	}
	byID := make(map[string][]jobs.Artifact, len(ids))
	var (
		id string
		a  jobs.Artifact
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &a.Name, &a.SizeBytes, &a.SHA256}, func() error {
		byID[id] = append(byID[id], a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read artifacts: %w", err)
	}
	return byID, nil
}

const artifactSQL = `
SELECT a.name, a.size_bytes, a.sha256, a.content
FROM tako_artifacts a JOIN tako_executions e ON e.id = a.execution_id`

// Artifact returns the artifact name of execution id with its bytes.
// ENOTFOUND when the execution does not exist for c, or has no such
// artifact.
func (s *Store) Artifact(ctx context.Context, c jobs.Caller, id, name string) (*jobs.ArtifactContent, error) {
	notFound := jobs.Errorf(jobs.ENOTFOUND, "Artifact not found")
	if !validID(id) {
		return nil, notFound
	}
	w := byID(c, id)
	w.add("a.name = $%d", CleanText(name))
	var a jobs.ArtifactContent
	err := s.pool.QueryRow(ctx, artifactSQL+w.String(), w.args...).Scan(&a.Name, &a.SizeBytes, &a.SHA256, &a.Content)
	if err != nil {
		return nil, notFoundIfNoRows(err, notFound, "read artifact")
	}
	return &a, nil
}
