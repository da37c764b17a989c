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
// tako's history fields, without the artifacts and the hashes of what was
// submitted; GET /executions/{id} has those.
type ExecutionSummary struct {
	RunResponse
	HistoryResponse
}

// newExecutionSummary renders exec, a summary from the store, with the
// same rules as the full record.
func newExecutionSummary(exec *jobs.Execution) ExecutionSummary {
	r := newExecutionResponse(exec)
	return ExecutionSummary{RunResponse: r.RunResponse, HistoryResponse: r.HistoryResponse}
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
