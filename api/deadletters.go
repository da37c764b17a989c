package api

import (
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// dlqNotFound is the original's detail for an unknown dead-letter entry.
const dlqNotFound = "DLQ entry not found"

// maxErrorTypeLen bounds the error_type filter of GET /dlq.
const maxErrorTypeLen = 64

// DeadLetterResponse is one entry of GET /dlq: the original's
// DeadLetterEntry plus tako's fields. CreatedAt is when the entry was
// made, that is when the queue gave up on the job; SubmittedAt is when the
// job was submitted. RetryCount is the attempts after the first. ClientIP
// is always null: tako does not record callers' addresses.
type DeadLetterResponse struct {
	ID            int64         `json:"id"`
	JobID         string        `json:"job_id"`
	JobData       DeadLetterJob `json:"job_data"`
	ErrorType     string        `json:"error_type"`
	ErrorMessage  *string       `json:"error_message"`
	RetryCount    int           `json:"retry_count"`
	CreatedAt     string        `json:"created_at"`
	ClientIP      *string       `json:"client_ip"`
	CorrelationID *string       `json:"correlation_id"`
	ExecutionID   string        `json:"execution_id"`
	JobType       string        `json:"job_type"`
	Attempts      int           `json:"attempts"`
	SubmittedAt   string        `json:"submitted_at"`
	APIKey        *string       `json:"api_key"`
}

// DeadLetterJob is what the dead-lettered job was asked to do, the
// original's job_data.
type DeadLetterJob struct {
	Code      string          `json:"code"`
	InputData json.RawMessage `json:"input_data"`
	JobType   string          `json:"job_type"`
}

// DeadLetterListResponse is the body of GET /dlq, in the original's
// paginated shape.
type DeadLetterListResponse struct {
	Items   []DeadLetterResponse `json:"items"`
	Limit   int                  `json:"limit"`
	Offset  int                  `json:"offset"`
	HasMore bool                 `json:"has_more"`
	Count   int                  `json:"count"`
}

// DeadLetterStatsResponse is the body of GET /dlq/stats.
type DeadLetterStatsResponse struct {
	Total       int            `json:"total"`
	ByErrorType map[string]int `json:"by_error_type"`
}

// DeadLetterRemoveResponse is the body of DELETE /dlq/:id, the original's.
type DeadLetterRemoveResponse struct {
	Status  string `json:"status"` // "removed"
	EntryID int64  `json:"entry_id"`
}

// DeadLetterRetryResponse is the body of POST /dlq/:id/retry, tako's own
// route: the entry's job is queued again, under the same job id.
type DeadLetterRetryResponse struct {
	Status  jobs.Status `json:"status"` // "queued"
	EntryID int64       `json:"entry_id"`
	JobID   string      `json:"job_id"`
}

// handleDeadLetters is GET /dlq: the dead-lettered jobs the caller may
// see, newest first.
func (s *Server) handleDeadLetters(c *fiber.Ctx) error {
	f, err := parseDeadLetterQuery(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	page, err := s.service.DeadLetters(ctx, callerOf(c), f)
	if err != nil {
		return err
	}
	resp := DeadLetterListResponse{Items: make([]DeadLetterResponse, 0, len(page.Items)), Limit: f.Limit, Offset: f.Offset, HasMore: page.HasMore}
	for _, d := range page.Items {
		resp.Items = append(resp.Items, newDeadLetterResponse(d))
	}
	resp.Count = len(resp.Items)
	return c.JSON(resp)
}

// handleDeadLetterStats is GET /dlq/stats.
func (s *Server) handleDeadLetterStats(c *fiber.Ctx) error {
	ctx, cancel := s.opContext()
	defer cancel()
	st, err := s.service.DeadLetterStats(ctx, callerOf(c))
	if err != nil {
		return err
	}
	resp := DeadLetterStatsResponse{Total: st.Total, ByErrorType: st.ByErrorType}
	if resp.ByErrorType == nil {
		resp.ByErrorType = map[string]int{}
	}
	return c.JSON(resp)
}

// handleRemoveDeadLetter is DELETE /dlq/:id: the entry goes, the job's
// record stays.
func (s *Server) handleRemoveDeadLetter(c *fiber.Ctx) error {
	id, err := entryID(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	if err := s.service.RemoveDeadLetter(ctx, callerOf(c), id); err != nil {
		return notFoundAs(err, dlqNotFound)
	}
	return c.JSON(DeadLetterRemoveResponse{Status: "removed", EntryID: id})
}

// handleRetryDeadLetter is POST /dlq/:id/retry: the entry's job runs again.
func (s *Server) handleRetryDeadLetter(c *fiber.Ctx) error {
	id, err := entryID(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	exec, err := s.service.RetryDeadLetter(ctx, callerOf(c), id)
	if exec, err = executionOrNotFound(exec, err, dlqNotFound); err != nil {
		return err
	}
	return c.JSON(DeadLetterRetryResponse{Status: jobs.StatusQueued, EntryID: id, JobID: exec.ID})
}

// notFoundAs gives an ENOTFOUND the route's fixed detail and passes any
// other error through.
func notFoundAs(err error, detail string) error {
	if jobs.ErrorCodeOf(err) == jobs.ENOTFOUND {
		return &jobs.Error{Code: jobs.ENOTFOUND, Message: detail}
	}
	return err
}

// entryID reads the route's :id, a dead-letter entry's id: a positive
// integer, as the original's int path parameter.
func entryID(c *fiber.Ctx) (int64, error) {
	raw := c.Params("id")
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || !plainDigits(raw) || n < 1 {
		return 0, jobs.FieldErrorf("entry_id", "must be a positive integer, not %s", quoteParam(raw))
	}
	return n, nil
}

// parseDeadLetterQuery reads the query of GET /dlq: error_type, limit (1
// to 1000, default 100) and offset, as the original takes them.
func parseDeadLetterQuery(c *fiber.Ctx) (jobs.DeadLetterFilter, error) {
	f := jobs.DeadLetterFilter{Limit: defaultLimit}
	if raw, ok := query(c, "error_type"); ok {
		if raw == "" || len(raw) > maxErrorTypeLen {
			return f, jobs.FieldErrorf("error_type", "must be 1 to %d characters", maxErrorTypeLen)
		}
		f.ErrorType = raw
	}
	var err error
	if f.Limit, err = intParam(c, "limit", 1, maxLimit, defaultLimit); err != nil {
		return f, err
	}
	if f.Offset, err = intParam(c, "offset", 0, maxInt, 0); err != nil {
		return f, err
	}
	return f, nil
}

// newDeadLetterResponse renders one dead-letter entry.
func newDeadLetterResponse(d jobs.DeadLetter) DeadLetterResponse {
	return DeadLetterResponse{
		ID:    d.ID,
		JobID: d.ExecutionID,
		JobData: DeadLetterJob{
			Code:      d.Code,
			InputData: safeJSON(d.InputJSON),
			JobType:   d.JobType,
		},
		ErrorType:     d.ErrorType,
		ErrorMessage:  optString(d.ErrorMessage),
		RetryCount:    max(d.Attempts-1, 0),
		CreatedAt:     timestamp(d.FailedAt),
		CorrelationID: optString(d.CorrelationID),
		ExecutionID:   d.ExecutionID,
		JobType:       d.JobType,
		Attempts:      d.Attempts,
		SubmittedAt:   timestamp(d.CreatedAt),
		APIKey:        optString(d.APIKey),
	}
}
