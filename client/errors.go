package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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

// maxBadAnswerBody bounds the start of an answer a BadAnswerError keeps.
const maxBadAnswerBody = 200

// BadAnswerError is an answer that is not what the route returns: its
// status was a success, but its body is not the JSON expected, as when the
// URL leads to something other than tako (a proxy's page, another
// service).
type BadAnswerError struct {
	Method string // the request's method
	Path   string // the request's path
	Status int    // the answer's HTTP status
	Body   string // the start of the answer, at most 200 bytes
	Err    error  // why it did not decode
}

// Error says which request got what answer.
func (e *BadAnswerError) Error() string {
	return fmt.Sprintf("decode %s %s: %v (the answer begins %q)", e.Method, e.Path, e.Err, e.Body)
}

// Unwrap returns the decoding error.
func (e *BadAnswerError) Unwrap() error { return e.Err }

// clip returns s cut to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
