// Package dockerlabel holds the Docker label keys tako puts on everything it
// creates (containers, images, networks), defined once for every package
// that sets or filters them.
package dockerlabel

// The label keys.
const (
	Managed  = "tako.managed"  // "true" on everything tako creates
	Kind     = "tako.kind"     // what it is: "job", "executor", "egress" ...
	Instance = "tako.instance" // the id of the tako instance that owns it
	Lock     = "tako.lock"     // path of the owning instance's lock file
	JobType  = "tako.job_type" // the job type it runs or was built for
	Slot     = "tako.slot"     // host path of a job container's slot directory
)
