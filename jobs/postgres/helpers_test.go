package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobs/postgres/pgtest"
)

// newStore returns a Store on a fresh database.
func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	return postgres.NewStore(pgtest.DB(t))
}

// newExecution returns a queued async execution of jobType, ready to insert.
func newExecution(jobType string) *jobs.Execution {
	return &jobs.Execution{
		ID:           uuid.NewString(),
		Status:       jobs.StatusQueued,
		Mode:         jobs.ModeAsync,
		JobType:      jobType,
		Code:         "print(1+1)",
		InputJSON:    []byte(`{}`),
		Requirements: []string{},
		Timeout:      30 * time.Second,
	}
}

// mustInsert inserts e, failing the test when it cannot or when e's
// idempotency key was taken.
func mustInsert(t *testing.T, s *postgres.Store, e *jobs.Execution) {
	t.Helper()
	existing, err := s.Insert(context.Background(), nil, e)
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if existing != nil {
		t.Fatalf("Insert returned existing execution %s, want a new row", existing.ID)
	}
}

// mustFinish ends id with status, failing the test unless it was recorded.
func mustFinish(t *testing.T, s *postgres.Store, id string, status jobs.Status, artifacts ...jobs.ArtifactContent) {
	t.Helper()
	ok, err := s.Finish(context.Background(), nil, jobs.System, id, &jobs.Result{Status: status}, artifacts)
	if err != nil || !ok {
		t.Fatalf("Finish(%s) = %v, %v; want true, nil", status, ok, err)
	}
}

// mustGet returns execution id.
func mustGet(t *testing.T, s *postgres.Store, id string) *jobs.Execution {
	t.Helper()
	e, err := s.Get(context.Background(), jobs.System, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return e
}

// assertNotFound fails unless err is an ENOTFOUND *jobs.Error.
func assertNotFound(t *testing.T, err error) {
	t.Helper()
	var de *jobs.Error
	if !errors.As(err, &de) || de.Code != jobs.ENOTFOUND {
		t.Fatalf("error = %v, want an ENOTFOUND *jobs.Error", err)
	}
}

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
