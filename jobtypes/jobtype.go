// Package jobtypes holds the JobType model: what a platform team declares in
// tako.yaml for one kind of job (image, packages, limits, network, security
// mode, pool), the registry of declared job types, and the hash that names a
// job type's image. It imports no infrastructure.
package jobtypes

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// SecurityMode selects how strictly a job type must be isolated.
type SecurityMode string

const (
	// Permissive uses gVisor (runsc) when the engine has it and falls back to
	// runc, with a loud warning, when it does not.
	Permissive SecurityMode = "permissive"
	// Strict requires gVisor; without it the job type is unavailable.
	Strict SecurityMode = "strict"
)

// Runtime is the OCI runtime a job type's containers run under.
type Runtime string

const (
	// RuntimeAuto lets the security mode and the engine decide.
	RuntimeAuto Runtime = ""
	// RuntimeRunc is the kernel's own namespaces and cgroups.
	RuntimeRunc Runtime = "runc"
	// RuntimeGVisor is gVisor's runsc: a kernel of its own between the
	// program and the host's.
	RuntimeGVisor Runtime = "runsc"
)

// Network is a job type's network policy.
type Network string

const (
	// NetworkNone gives the container no network at all (the default).
	NetworkNone Network = "none"
	// NetworkBridge gives the container Docker's default bridge network:
	// everything the host reaches.
	NetworkBridge Network = "bridge"
	// NetworkAllow gives the container a network with no route out but
	// tako's egress proxy, which lets it reach the hosts in its Allow list
	// and nothing else.
	NetworkAllow Network = "allow"
)

// DefaultName is the job type used when a request names none.
const DefaultName = "default"

// namePattern is what a job type name may look like: it becomes part of image
// tags and container labels.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether name can be used as a job type name.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Limits are the resource limits of one job type's containers.
type Limits struct {
	CPUs     float64       // CPU quota in cores
	FileSize int64         // largest file a process may write, bytes (ulimit fsize)
	Memory   int64         // memory limit in bytes, swap excluded
	NoFile   int64         // open file descriptors (ulimit nofile)
	Pids     int64         // processes and threads
	Timeout  time.Duration // default run time limit of a job
	Tmp      int64         // size of the /tmp tmpfs in bytes
}

// Pool is the prewarmed-container pool policy of one job type.
type Pool struct {
	IdleTTL time.Duration // idle containers above Min are trimmed after this
	Max     int           // most containers kept started
	Min     int           // fewest containers kept started
}

// JobType is one kind of job a platform team declares: the environment user
// code runs in and the limits it runs under. A JobType is a value; the
// registry hands out copies.
type JobType struct {
	// AllowSourceBuilds lets ad-hoc requirements on this job type build
	// packages from source distributions (their build code runs without
	// network); false takes wheels only.
	AllowSourceBuilds bool
	// Allow is the egress allowlist when Network is NetworkAllow: host,
	// *.domain or host:port entries, "*" for any public host.
	Allow []string
	// CallbackURL is where a webhook goes when a job ends, unless its
	// request or API key names another; "" for none.
	CallbackURL    string
	Concurrency    int               // most jobs of this type running at once on one node
	Env            map[string]string // not secret: user code can read it
	Image          string            // base image; "" means tako's executor image
	Limits         Limits
	Name           string
	Network        Network
	Pool           Pool
	Preload        []string // modules imported before the trigger
	Requirements   []string // pip requirements baked into the job type's image
	Runtime        Runtime  // pinned runtime; RuntimeAuto lets SecurityMode decide
	SecurityMode   SecurityMode
	SystemPackages []string // Debian packages baked into the job type's image
}

// NeedsBuild reports whether the job type needs an image of its own on top of
// its base image.
func (jt JobType) NeedsBuild() bool {
	return len(jt.SystemPackages) > 0 || len(jt.Requirements) > 0
}

// PipIndex is where pip looks for packages when images are built.
type PipIndex struct {
	ExtraIndexURLs []string
	IndexURL       string
	TrustedHosts   []string
}

// BuildHash returns a short, stable hash of everything that determines the
// content of the job type's image: the ID of the image it is built from, its
// Debian packages and pip requirements (order does not matter) and the pip
// index they come from. Two job types with the same hash can share an image.
func (jt JobType) BuildHash(baseImageID string, pip PipIndex) string {
	h := sha256.New()
	write := func(key string, values ...string) {
		fmt.Fprintf(h, "%s=%d\n", key, len(values))
		for _, v := range values {
			fmt.Fprintf(h, "%q\n", v)
		}
	}
	write("base", baseImageID)
	write("system_packages", sortedCopy(jt.SystemPackages)...)
	write("requirements", sortedCopy(jt.Requirements)...)
	write("index_url", pip.IndexURL)
	write("extra_index_urls", pip.ExtraIndexURLs...)
	write("trusted_hosts", sortedCopy(pip.TrustedHosts)...)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedCopy(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.TrimSpace(v)
	}
	sort.Strings(out)
	return out
}
