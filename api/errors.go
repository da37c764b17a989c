package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tako-run/tako/jobs"
)

// ErrorResponse is the body of every error: a message safe for the client
// and the request's correlation id, exactly as the original sends them.
type ErrorResponse struct {
	Detail        string `json:"detail"`
	CorrelationID string `json:"correlation_id"`
}

// internalDetail is all a client learns about a 5xx that is a bug.
const internalDetail = "Internal server error"

// httpStatus is the one place a domain error code becomes an HTTP status;
// a code it does not list (EINTERNAL) is a 500.
var httpStatus = map[jobs.ErrorCode]int{
	jobs.EINVALID:      http.StatusUnprocessableEntity,
	jobs.EMALFORMED:    http.StatusBadRequest,
	jobs.ENOTREADY:     http.StatusBadRequest,
	jobs.ENOTFOUND:     http.StatusNotFound,
	jobs.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	jobs.EUNAVAILABLE:  http.StatusServiceUnavailable,
	jobs.ENOTALLOWED:   http.StatusForbidden,
	jobs.ECONFLICT:     http.StatusConflict,
	jobs.ETIMEOUT:      http.StatusRequestTimeout,
	jobs.EUNAUTHORIZED: http.StatusUnauthorized,
	jobs.ERATELIMITED:  http.StatusTooManyRequests,
	jobs.EOVERQUOTA:    http.StatusTooManyRequests,
	jobs.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	jobs.EMISDIRECTED:  http.StatusMisdirectedRequest,
}

// statusFor returns the HTTP status of a domain error code.
func statusFor(code jobs.ErrorCode) int {
	if status, ok := httpStatus[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// writeError writes err as the JSON error body. Internal errors are logged
// here, once, and reach the client only as "Internal server error".
func (s *Server) writeError(c *fiber.Ctx, err error) {
	cid := s.correlate(c)
	status, detail := s.describe(c, err)
	if status >= http.StatusInternalServerError && detail == internalDetail {
		s.logger.LogAttrs(s.base, slog.LevelError, "request failed",
			slog.String("correlation_id", cid),
			slog.String("method", c.Method()),
			slog.String("path", c.Path()),
			slog.String("error", err.Error()),
		)
	}
	c.Status(status)
	if jerr := c.JSON(ErrorResponse{Detail: detail, CorrelationID: cid}); jerr != nil {
		// Two plain strings always encode; keep the status anyway.
		c.Status(http.StatusInternalServerError)
	}
}

// describe returns the status and the client-safe detail for err, and sets
// Retry-After when the client should come back.
func (s *Server) describe(c *fiber.Ctx, err error) (int, string) {
	var (
		derr *jobs.Error
		ferr *fiber.Error
	)
	switch {
	case errors.As(err, &derr):
		status := statusFor(derr.Code)
		switch {
		case status == http.StatusInternalServerError:
			// EINTERNAL, or a code statusFor does not know.
			return status, internalDetail
		case derr.Code == jobs.EUNAVAILABLE, derr.Code == jobs.ERATELIMITED, derr.Code == jobs.EOVERQUOTA:
			retry := derr.RetryAfter
			if retry <= 0 {
				retry = 1
			}
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retry))
		case derr.Code == jobs.EUNAUTHORIZED:
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="tako"`)
		}
		return status, derr.Error()
	case errors.As(err, &ferr):
		return s.describeFiber(ferr)
	case errors.Is(err, context.Canceled) && s.base.Err() != nil:
		// The server is shutting down and cancelled the work.
		c.Set(fiber.HeaderRetryAfter, "1")
		return http.StatusServiceUnavailable, "server is shutting down; retry"
	default:
		return http.StatusInternalServerError, internalDetail
	}
}

// describeFiber covers what fiber and fasthttp reject themselves: unknown
// routes, wrong methods, oversized bodies and broken HTTP. Their own texts
// can echo request bytes, so the detail is a fixed string.
func (s *Server) describeFiber(ferr *fiber.Error) (int, string) {
	switch code := ferr.Code; {
	case code == http.StatusNotFound:
		return code, "Not Found"
	case code == http.StatusMethodNotAllowed:
		return code, "Method Not Allowed"
	case code == http.StatusRequestEntityTooLarge:
		return code, fmt.Sprintf("Payload too large. Maximum allowed size is %d bytes (server.max_body_bytes).", s.limits.MaxBodyBytes)
	case code >= http.StatusInternalServerError && code != http.StatusBadGateway:
		return code, internalDetail
	case code == http.StatusBadGateway:
		// fasthttp maps network errors on the client connection to 502.
		return code, http.StatusText(code)
	default:
		if text := http.StatusText(code); text != "" {
			return code, text
		}
		return http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
	}
}

// maxToken bounds an echoed X-Correlation-ID and an execution id.
const maxToken = 128

// correlate gives the request its correlation id (the client's, when it is a
// sane token, else a new uuid) and sets it and the security headers on the
// response. It is idempotent and returns the id.
func (s *Server) correlate(c *fiber.Ctx) string {
	if cid, ok := c.Locals(localCorrelationID).(string); ok {
		return cid
	}
	cid := c.Get("X-Correlation-ID") // a copy: the app is Immutable
	if !validToken(cid) {
		cid = uuid.NewString()
	}
	c.Locals(localCorrelationID, cid)
	c.Set("X-Correlation-ID", cid)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	return cid
}

// validToken reports whether id is 1 to 128 characters of [A-Za-z0-9._-],
// safe to echo in a header and in logs: a correlation id or an execution
// id.
func validToken(id string) bool {
	if id == "" || len(id) > maxToken {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}
