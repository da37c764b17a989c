package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// ExecutionFilter narrows Executions. Zero fields do not filter.
type ExecutionFilter struct {
	Status  Status // only executions in this status
	JobType string // only this job type
	APIKey  string // only this key's (by name); admins see every key's
	// PageSize is how many executions each request fetches (1 to 1000);
	// 0 is the server's default (100). It does not bound the total.
	PageSize int
}

// ExecutionSummary is one execution in the history: how it ran and its
// record, without its artifacts (Execution has those, through Wait).
type ExecutionSummary struct {
	Run
	History
}

// executionPage is the body of GET /executions.
type executionPage struct {
	Items      []ExecutionSummary `json:"items"`
	HasMore    bool               `json:"has_more"`
	NextCursor *int64             `json:"next_cursor"`
}

// Executions iterates over the history the caller may see, newest first
// (GET /executions), fetching page after page with the server's cursor,
// which is stable while new jobs arrive. An error is yielded last. Breaking
// out of the loop stops the fetching.
func (c *Client) Executions(ctx context.Context, f ExecutionFilter) iter.Seq2[ExecutionSummary, error] {
	return func(yield func(ExecutionSummary, error) bool) {
		q := url.Values{}
		if f.Status != "" {
			q.Set("status", string(f.Status))
		}
		if f.JobType != "" {
			q.Set("job_type", f.JobType)
		}
		if f.APIKey != "" {
			q.Set("api_key", f.APIKey)
		}
		if f.PageSize > 0 {
			q.Set("limit", strconv.Itoa(f.PageSize))
		}
		for {
			var page executionPage
			if err := c.do(ctx, call{method: http.MethodGet, path: "/executions", query: q, retry: retrySafe}, &page); err != nil {
				yield(ExecutionSummary{}, err)
				return
			}
			for _, item := range page.Items {
				if !yield(item, nil) {
					return
				}
			}
			if page.NextCursor == nil || len(page.Items) == 0 {
				return
			}
			q.Set("cursor", strconv.FormatInt(*page.NextCursor, 10))
		}
	}
}
