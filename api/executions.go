package api

import (
	"github.com/gofiber/fiber/v2"
)

// ExecutionListResponse is the body of GET /executions: one page of the
// history, newest first. NextCursor, when not null, is the cursor of the
// next (older) page; it is stable under concurrent inserts.
type ExecutionListResponse struct {
	Items      []ExecutionResponse `json:"items"`
	Limit      int                 `json:"limit"`
	NextCursor *int64              `json:"next_cursor"`
}

// handleExecutions is GET /executions.
func (s *Server) handleExecutions(c *fiber.Ctx) error {
	f, err := parseListQuery(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	page, err := s.service.List(ctx, f)
	if err != nil {
		return err
	}
	resp := ExecutionListResponse{Items: make([]ExecutionResponse, 0, len(page.Items)), Limit: f.Limit}
	for _, exec := range page.Items {
		if exec != nil {
			resp.Items = append(resp.Items, newExecutionResponse(exec))
		}
	}
	if page.NextCursor > 0 {
		next := page.NextCursor
		resp.NextCursor = &next
	}
	return c.JSON(resp)
}
