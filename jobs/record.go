package jobs

import (
	"encoding/json"
	"time"
)

// Relationship links an execution to the one it was made from.
type Relationship string

// The relationships between executions.
const (
	RelRerun Relationship = "rerun" // same code and input, run again
	RelFork  Relationship = "fork"  // same input, new code
)

// Mode says how an execution was submitted.
type Mode string

// The submission modes.
const (
	ModeSync  Mode = "sync"  // POST /execute: the caller waits
	ModeAsync Mode = "async" // POST /execute/async: queued, collected later
)

// Submission is a request to run a program, as validated by the API.
type Submission struct {
	// APIKey names the API key that submitted it; "" when the server has
	// none.
	APIKey string
	// CallbackURL is where the webhook goes when it ends; "" for none.
	CallbackURL    string
	Code           string
	CorrelationID  string
	IdempotencyKey string
	InputJSON      []byte // compact JSON object
	JobType        string
	Mode           Mode
	// NetworkAllow narrows the job type's egress allowlist for this job;
	// nil keeps the job type's.
	NetworkAllow   []string
	ParentID       string
	Relationship   Relationship
	Requirements   []string
	StartupTimeout time.Duration // 0: the runner's default
	Timeout        time.Duration // resolved: never 0
}

// Execution is the record of one execution: what was asked and, once it
// ran, what happened. It is what the API returns and what replay needs.
type Execution struct {
	APIKey         string // the name of the API key that submitted it
	Attempt        int
	CallbackURL    string // where its webhook goes; "" for none
	CorrelationID  string
	Code           string
	CreatedAt      time.Time
	FinishedAt     *time.Time
	ID             string
	IdempotencyKey string
	Fingerprint    string
	InputJSON      json.RawMessage
	JobType        string
	Mode           Mode
	// NetworkAllow narrows the job type's egress allowlist; nil keeps it.
	NetworkAllow  []string
	Node          string
	ParentID      string
	QueuePosition int // 1-based among queued executions of its job type; 0 when not queued
	Relationship  Relationship
	Requirements  []string
	Result        *Result // nil until the execution ends
	// Seq is the record's place in the history, higher for newer ones: the
	// cursor of the history page that follows it.
	Seq            int64
	StartedAt      *time.Time
	StartupTimeout time.Duration
	Status         Status
	Timeout        time.Duration
}

// ArtifactContent is one stored artifact with its bytes.
type ArtifactContent struct {
	Artifact
	Content []byte
}

// ExecutionFilter selects executions for a history listing. It only ever
// narrows what the caller may see: a caller who is not an admin gets its
// own executions whatever the filter says, so an APIKey other than its own
// gives an empty page.
type ExecutionFilter struct {
	APIKey  string // only executions this API key (by name) submitted
	Before  int64  // a cursor: only executions older than this one; 0 for the newest
	JobType string
	Limit   int
	// Offset skips that many of the matching executions first: the
	// original's paging. Before is steadier under inserts.
	Offset int
	// ParentID keeps the executions made from that one (its reruns and
	// forks); "" keeps all.
	ParentID string
	// Start keeps the executions that got a container this way (warm or
	// cold); "" keeps all, including those that never started one.
	Start  Start
	Status Status
}

// ExecutionPage is one page of history, newest first. Its items are
// summaries: the store does not read their Code, InputJSON, QueuePosition
// or their Result's Artifacts.
type ExecutionPage struct {
	Items      []*Execution
	NextCursor int64 // 0 when there are no older executions
}

// Overrides change a rerun or fork: a zero field keeps the parent's value.
// The new execution is recorded as the caller's who asked for it.
type Overrides struct {
	// CorrelationID is the replay request's; "" keeps the parent's.
	CorrelationID string
	JobType       string
	Timeout       time.Duration
}

// Terminal reports whether the execution has ended.
func (e *Execution) Terminal() bool { return e.Status.Terminal() }
