package api

import (
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// maxListBytes caps the body of GET /executions. A page that would grow
// past it ends early, and next_cursor continues after its last item.
const maxListBytes = 1 << 20

// ExecutionListResponse is the body of GET /executions: one page of the
// history the caller may see, newest first, in the original's paginated
// shape (items, limit, offset, has_more, count). Count is the number of
// items in this page: a page holds fewer than limit items when the next
// one would take the body past 1 MiB, so a client that pages by offset
// advances it by count. NextCursor, when not null, is tako's steadier way
// on: the cursor of the next (older) page, stable under concurrent inserts.
type ExecutionListResponse struct {
	Items      []ExecutionSummary `json:"items"`
	Limit      int                `json:"limit"`
	Offset     int                `json:"offset"`
	HasMore    bool               `json:"has_more"`
	Count      int                `json:"count"`
	NextCursor *int64             `json:"next_cursor"`
}

// ExecutionSummary is one execution in the history: the original's
// ExecutionRecordResponse (what the job printed and returned included) and
// tako's fields of the full record, without the artifacts and the hashes
// of what was submitted; GET /executions/{id} has those.
type ExecutionSummary struct {
	Success            bool               `json:"success"`
	Output             json.RawMessage    `json:"output"`
	Stdout             string             `json:"stdout"`
	Stderr             string             `json:"stderr"`
	ExitCode           *int               `json:"exit_code"`
	ExecutionTime      float64            `json:"execution_time"`
	JobType            string             `json:"job_type"`
	ExecutionID        string             `json:"execution_id"`
	JobID              string             `json:"job_id"`
	Status             jobs.Status        `json:"status"`
	Error              *jobs.ExecError    `json:"error"`
	Runtime            string             `json:"runtime"`
	Start              jobs.Start         `json:"start"`
	StdoutTruncated    bool               `json:"stdout_truncated"`
	StderrTruncated    bool               `json:"stderr_truncated"`
	ArtifactsTruncated bool               `json:"artifacts_truncated"`
	Timing             TimingResponse     `json:"timing"`
	CreatedAt          string             `json:"created_at"`
	StartedAt          *string            `json:"started_at"`
	FinishedAt         *string            `json:"finished_at"`
	EndedAt            *string            `json:"ended_at"`
	DurationMS         *int64             `json:"duration_ms"`
	JobVersion         string             `json:"job_version"`
	Attempt            int                `json:"attempt"`
	Node               string             `json:"node"`
	Image              string             `json:"image"`
	Requirements       []string           `json:"requirements"`
	ParentID           *string            `json:"parent_id"`
	ParentExecutionID  *string            `json:"parent_execution_id"`
	Relationship       *jobs.Relationship `json:"relationship"`
	IdempotencyKey     *string            `json:"idempotency_key"`
	CorrelationID      string             `json:"correlation_id"`
	APIKey             *string            `json:"api_key"`
}

// newExecutionSummary renders exec, a summary from the store, with the
// same rules as the full record.
func newExecutionSummary(exec *jobs.Execution) ExecutionSummary {
	r := newExecutionResponse(exec)
	return ExecutionSummary{
		Success:            r.Success,
		Output:             r.Output,
		Stdout:             r.Stdout,
		Stderr:             r.Stderr,
		ExitCode:           r.ExitCode,
		ExecutionTime:      r.ExecutionTime,
		JobType:            r.JobType,
		ExecutionID:        r.ExecutionID,
		JobID:              r.JobID,
		Status:             r.Status,
		Error:              r.Error,
		Runtime:            r.Runtime,
		Start:              r.Start,
		StdoutTruncated:    r.StdoutTruncated,
		StderrTruncated:    r.StderrTruncated,
		ArtifactsTruncated: r.ArtifactsTruncated,
		Timing:             r.Timing,
		CreatedAt:          r.CreatedAt,
		StartedAt:          r.StartedAt,
		FinishedAt:         r.FinishedAt,
		EndedAt:            r.EndedAt,
		DurationMS:         r.DurationMS,
		JobVersion:         r.JobVersion,
		Attempt:            r.Attempt,
		Node:               r.Node,
		Image:              r.Image,
		Requirements:       r.Requirements,
		ParentID:           r.ParentID,
		ParentExecutionID:  r.ParentExecutionID,
		Relationship:       r.Relationship,
		IdempotencyKey:     r.IdempotencyKey,
		CorrelationID:      r.CorrelationID,
		APIKey:             r.APIKey,
	}
}

// handleExecutions is GET /executions: the history the caller may see.
// A caller who is not an admin sees its own executions only; its api_key
// filter can narrow that (to nothing, when it names another key), never
// widen it.
func (s *Server) handleExecutions(c *fiber.Ctx) error {
	f, err := parseListQuery(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	page, err := s.service.List(ctx, callerOf(c), f)
	if err != nil {
		return err
	}
	resp := ExecutionListResponse{Items: make([]ExecutionSummary, 0, len(page.Items)), Limit: f.Limit, Offset: f.Offset}
	next, last := page.NextCursor, int64(0)
	size := 0
	for _, exec := range page.Items {
		if exec == nil {
			continue
		}
		item := newExecutionSummary(exec)
		b, err := json.Marshal(item)
		if err != nil {
			return fmt.Errorf("encode execution %s: %w", exec.ID, err)
		}
		// The first item always goes in: a page never comes back empty
		// while older executions exist.
		if len(resp.Items) > 0 && size+len(b)+1 > maxListBytes-listEnvelope {
			next = last // the page ends here; the next one starts after it
			break
		}
		size += len(b) + 1 // and a comma
		resp.Items = append(resp.Items, item)
		last = exec.Seq
	}
	if next > 0 {
		resp.NextCursor = &next
	}
	resp.Count, resp.HasMore = len(resp.Items), next > 0
	return c.JSON(resp)
}

// listEnvelope is room for the rest of the list body: the brackets, limit,
// offset, has_more, count and next_cursor.
const listEnvelope = 192
