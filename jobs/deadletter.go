package jobs

import (
	"encoding/json"
	"time"
)

// DeadLetter is an entry of the dead-letter queue: an async execution that
// exhausted its attempts on failures of tako's own (Docker, a node that
// died), so the queue gave up on it. Its ID is the queue job's id, which
// stays the same when the entry is retried.
type DeadLetter struct {
	ID            int64
	ExecutionID   string
	JobType       string
	APIKey        string // the name of the key that submitted it; "" without keys
	CorrelationID string
	Code          string
	InputJSON     json.RawMessage
	// ErrorType is the execution's error type from the taxonomy
	// (internal_error, ...); ErrorMessage says what happened on the last
	// attempt.
	ErrorType    string
	ErrorMessage string
	Attempts     int       // attempts made, the last one included
	CreatedAt    time.Time // when the execution was submitted
	FailedAt     time.Time // when the queue gave up on it
}

// DeadLetterFilter selects dead-letter entries. It only narrows what the
// caller may see: a caller who is not an admin sees entries of its own
// executions only.
type DeadLetterFilter struct {
	ErrorType string // "" for any
	Limit     int
	Offset    int
}

// DeadLetterPage is one page of the dead-letter queue, newest failure
// first. HasMore says entries exist past it.
type DeadLetterPage struct {
	Items   []DeadLetter
	HasMore bool
}

// DeadLetterStats counts the dead-letter entries a caller may see, in all
// and by error type.
type DeadLetterStats struct {
	Total       int
	ByErrorType map[string]int
}
