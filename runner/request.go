package runner

import (
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
)

// Request is one program to run: the code, its input and the job type whose
// image and limits it runs under.
type Request struct {
	// Code is written to /code/main.py.
	Code string
	// ExecutionID names the execution in labels and logs.
	ExecutionID string
	// InputJSON is written to /input/data.json; nil means "{}".
	InputJSON []byte
	// Output, when set, follows the program while it runs: how it
	// started, and its output as it is kept.
	Output Output
	// JobType is the job type to run under.
	JobType jobtypes.JobType
	// NetworkAllow narrows the job type's egress allowlist: nil keeps
	// it. The dispatcher has checked that it only narrows.
	NetworkAllow []string
	// Requirements are ad-hoc pip requirements: the program runs in an image
	// that adds them to the job type's, built once per set.
	Requirements []string
	// StartupTimeout bounds getting a container ready; 0 means the default.
	StartupTimeout time.Duration
	// Timeout is the run-time limit, trigger to exit; 0 means the job type's.
	Timeout time.Duration
}

// Output follows a running program. Its methods are called from the
// goroutines that copy the container's streams, in the order of each
// stream, and must not block.
type Output interface {
	// Started says the program got its container, warm or cold.
	Started(start jobs.Start)
	// Write takes bytes of stream kind (jobs.ChunkStdout or
	// jobs.ChunkStderr) as they are kept: only what fits the output caps.
	// It must not keep p.
	Write(kind jobs.ChunkKind, p []byte)
	// Truncated says stream kind has reached its cap: what follows is
	// dropped. It is called at most once per stream.
	Truncated(kind jobs.ChunkKind)
}

// Availability says whether a job type can run on this node, and if not why.
type Availability struct {
	Available   bool      `json:"available"`
	Image       string    `json:"image"`
	ImageExists bool      `json:"image_exists"`
	Pool        PoolStats `json:"pool"` // zero when the job type has no pool
	Reason      string    `json:"unavailable_reason,omitempty"`
	Runtime     string    `json:"runtime"`
	// PythonVersion is the version of Python the image declares; "" when
	// it declares none.
	PythonVersion string `json:"python_version"`
}

// Health is the runner's view of its dependencies.
type Health struct {
	DockerAvailable bool   `json:"docker_available"`
	DockerError     string `json:"docker_error,omitempty"`
	// GVisorAvailable says jobs can run under gVisor: the engine has the
	// runtime and it passed the probe at start-up.
	GVisorAvailable bool `json:"gvisor_available"`
	// GVisorInstalled says the engine lists the gVisor runtime, usable or not.
	GVisorInstalled bool `json:"gvisor_installed"`
	// GVisorReason says why gVisor is not usable; "" when it is.
	GVisorReason string `json:"gvisor_reason,omitempty"`
	// GVisorFix says what an operator does about an unusable gVisor.
	GVisorFix string `json:"gvisor_fix,omitempty"`
	// GVisorRuntime is the runtime name looked for (runner.gvisor_runtime).
	GVisorRuntime string `json:"gvisor_runtime"`
	MaxConcurrent int    `json:"max_concurrent"`
	Running       int    `json:"running"`
}
