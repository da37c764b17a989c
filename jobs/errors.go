package jobs

import (
	"errors"
	"fmt"
)

// ErrorCode is the kind of a domain error; the API maps each to one HTTP
// status in a single place.
type ErrorCode string

// The domain error codes.
const (
	EINVALID     ErrorCode = "invalid"     // the request breaks a rule (422)
	EMALFORMED   ErrorCode = "malformed"   // the request cannot be parsed (400)
	ENOTFOUND    ErrorCode = "not_found"   // the thing asked for does not exist (404)
	ETOOLARGE    ErrorCode = "too_large"   // the request body is over its limit (413)
	EUNAVAILABLE ErrorCode = "unavailable" // tako cannot take the work now; retry later (503)
	EINTERNAL    ErrorCode = "internal"    // a bug or an infrastructure failure (500)
	ENOTALLOWED  ErrorCode = "not_allowed" // the server's policy forbids the request (403)
)

// Error is a domain error whose message is safe to show to a client. Field
// names the request field at fault, when there is one. RetryAfter, when set,
// tells the client how many seconds to wait before trying again.
type Error struct {
	Code       ErrorCode
	Field      string
	Message    string
	RetryAfter int
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error of code EINVALID about field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, or
// EINTERNAL when there is none.
func ErrorCodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// More domain error codes.
const (
	ECONFLICT ErrorCode = "conflict" // the request clashes with the state of a job (409)
	ETIMEOUT  ErrorCode = "timeout"  // a wait ran out before the job ended (408)
	// ENOTREADY: the job is not yet in the state the request needs, such
	// as a rerun of a job that has not ended (400, as in the original).
	ENOTREADY ErrorCode = "not_ready"

	EUNAUTHORIZED ErrorCode = "unauthorized" // no valid API key (401)
	ERATELIMITED  ErrorCode = "rate_limited" // the caller is over its rate limit (429)
	EOVERQUOTA    ErrorCode = "over_quota"   // the caller's API key is over one of its quotas (429)

	EUNSUPPORTED ErrorCode = "unsupported_media_type" // the body is not in a format the route takes (415)
	EMISDIRECTED ErrorCode = "misdirected"            // the request names a host this server does not answer for (421)
)

// Truncate cuts s to its first n bytes, marked with "...", so that a
// caller's value can be quoted in an error message without flooding it.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
