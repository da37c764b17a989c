package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// APIError is an HTTP failure: the server answered with a status of 400 or
// more. A program that failed is not an APIError; it is an Execution with
// Success false.
type APIError struct {
	// Status is the HTTP status, such as 404 or 422.
	Status int
	// Detail is the server's message ("Job not found"), or the status
	// text when the body had none.
	Detail string
	// CorrelationID is the request's X-Correlation-ID, to find it in the
	// server's logs.
	CorrelationID string
	// RetryAfter is the server's Retry-After (503, 429), 0 when absent.
	RetryAfter time.Duration
}

// Error returns the status, the detail and the correlation id.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("tako: %d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
	if e.CorrelationID != "" {
		msg += " (correlation id " + e.CorrelationID + ")"
	}
	return msg
}

// newAPIError reads an error answer. The server's body is
// {"detail": "...", "correlation_id": "..."}; anything else is kept as
// text, and an empty body falls back to the status text.
func newAPIError(resp *http.Response) *APIError {
	e := &APIError{
		Status:        resp.StatusCode,
		CorrelationID: resp.Header.Get("X-Correlation-ID"),
		RetryAfter:    parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Detail        json.RawMessage `json:"detail"`
		CorrelationID string          `json:"correlation_id"`
	}
	if json.Unmarshal(raw, &body) == nil && len(body.Detail) > 0 {
		var s string
		if json.Unmarshal(body.Detail, &s) == nil {
			e.Detail = s
		} else {
			e.Detail = string(body.Detail) // a structured detail, kept as JSON
		}
		if e.CorrelationID == "" {
			e.CorrelationID = body.CorrelationID
		}
	} else {
		e.Detail = strings.TrimSpace(string(raw))
	}
	if e.Detail == "" {
		e.Detail = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. Absent or unreadable is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(n)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
