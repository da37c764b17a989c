// Package jobs holds tako's domain types for one execution of user code:
// its status, its result and the error taxonomy, plus the domain error that
// the API maps to HTTP. It imports no infrastructure; the store and the
// queue live in subpackages.
package jobs

import (
	"encoding/json"
	"time"
)

// Status is where an execution is in its life.
type Status string

// The statuses of an execution. Queued and running are transient; the rest
// are terminal and never change once recorded.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusOOM       Status = "oom"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether s is a final status.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusTimeout, StatusOOM, StatusCancelled:
		return true
	}
	return false
}

// Start says how an execution got its container.
type Start string

const (
	// StartCold means a container was created for the job.
	StartCold Start = "cold"
	// StartWarm means the job took a prewarmed container from a pool.
	StartWarm Start = "warm"
)

// ExecError is the classified failure of a user program, or of the run
// around it: a type from the original's taxonomy and a human message.
type ExecError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

// Artifact is one regular file the program left directly in /output.
type Artifact struct {
	Name      string `json:"name"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
}

// Timing is where the time of one execution went.
type Timing struct {
	Collect time.Duration // reading output and artifacts after the program ended
	Queue   time.Duration // waiting for a free execution slot
	Run     time.Duration // trigger to program end
	Start   time.Duration // getting a container ready for the trigger
	Total   time.Duration // everything, request to answer
}

// Result is the outcome of running one program.
type Result struct {
	Artifacts []Artifact
	// ArtifactBytes holds the content of Artifacts[i] between the run and
	// storage; results read back from the store leave it nil.
	ArtifactBytes   [][]byte
	Error           *ExecError
	ExitCode        int
	Image           string
	Output          json.RawMessage // parsed /output/result.json; nil when absent or invalid
	Runtime         string          // the OCI runtime that ran the container: runsc or runc
	Start           Start
	Status          Status
	Stderr          string
	StderrTruncated bool
	Stdout          string
	StdoutTruncated bool
	// ArtifactsTruncated says files in /output were left out because of
	// the artifact limits (count, per-file or total size).
	ArtifactsTruncated bool
	// Egress lists the connections the program asked the egress proxy
	// for, in order; nil when its job type has no allowlist.
	Egress []EgressAttempt
	Timing Timing
}

// EgressAttempt is one connection a program asked the egress proxy for,
// and what became of it.
type EgressAttempt struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Result string `json:"result"` // EgressAllowed, EgressRefused, EgressFailed or EgressOmitted
	Reason string `json:"reason,omitempty"`
	// Rule is the allowlist entry that let it through; "" when none did.
	Rule          string `json:"rule,omitempty"`
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
}

// Results of an egress attempt.
const (
	// EgressAllowed is a connection the proxy made.
	EgressAllowed = "allowed"
	// EgressRefused is one the allowlist, or the address it resolved
	// to, did not allow.
	EgressRefused = "refused"
	// EgressFailed is one that was allowed but could not be made: the
	// name did not resolve or the host did not answer.
	EgressFailed = "failed"
	// EgressOmitted stands for the attempts past the first 1000, which
	// are not listed one by one: their count is in Reason and their bytes
	// are added up.
	EgressOmitted = "omitted"
)

// Success reports whether the program ran to completion with exit code 0.
func (r *Result) Success() bool { return r.Status == StatusSucceeded }
