package postgres_test

import (
	"context"
	"testing"

	"github.com/tako-run/tako/jobs"
)

// TestIdempotencyKeyPerAPIKey: an idempotency key belongs to the caller
// that used it. Another API key with the same idempotency key gets its own
// execution and cannot reach the first one through it.
func TestIdempotencyKeyPerAPIKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	insert := func(apiKey string) (*jobs.Execution, *jobs.Execution) {
		e := newExecution("default")
		e.APIKey, e.IdempotencyKey, e.Fingerprint = apiKey, "shared-key", "fp"
		existing, err := s.Insert(ctx, nil, e)
		if err != nil {
			t.Fatal(err)
		}
		return e, existing
	}
	ci, existing := insert("ci")
	if existing != nil {
		t.Fatal("the first insert found an existing execution")
	}
	ops, existing := insert("ops")
	if existing != nil {
		t.Fatalf("ops reached ci's execution %s through the idempotency key", existing.ID)
	}
	open, existing := insert("") // a server without keys
	if existing != nil {
		t.Fatalf("a keyless caller reached %s", existing.ID)
	}
	_, existing = insert("ci")
	if existing == nil || existing.ID != ci.ID {
		t.Fatalf("ci's second insert: %+v, want its first execution", existing)
	}
	for _, e := range []*jobs.Execution{ci, ops, open} {
		got, err := s.Get(ctx, jobs.System, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.APIKey != e.APIKey {
			t.Errorf("execution %s records API key %q, want %q", e.ID, got.APIKey, e.APIKey)
		}
	}

	page, err := s.List(ctx, jobs.System, jobs.ExecutionFilter{APIKey: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != ops.ID {
		t.Errorf("history filtered by ops: %d items", len(page.Items))
	}
}
