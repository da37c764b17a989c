package runner

import (
	"github.com/tako-run/tako/jobtypes"
)

// The OCI runtimes tako knows.
const (
	runtimeGVisor = "runsc"
	runtimeRunc   = "runc"
)

// resolveRuntime picks the OCI runtime for a security mode, given whether
// the engine has gVisor. It returns "" and the reason when the mode cannot
// be honoured: strict mode fails closed without gVisor.
func resolveRuntime(mode jobtypes.SecurityMode, hasGVisor bool) (runtime, reason string) {
	switch {
	case hasGVisor:
		return runtimeGVisor, ""
	case mode == jobtypes.Strict:
		return "", "security_mode strict requires gVisor, but the Docker engine has no runsc runtime; install gVisor (runsc) and register it with Docker, or set security_mode: permissive for this job type"
	default:
		return runtimeRunc, ""
	}
}
