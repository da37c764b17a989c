package runner

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// CheckWorkDir refuses a work directory that job containers could not be
// given. Slot directories are mounted into job containers by their path
// on the host, so when tako itself runs in a container, its work directory
// must be bind-mounted from the host at the same path. Outside a container
// every path is the host's, and it returns nil.
func CheckWorkDir(ctx context.Context, docker containerInspector, workDir string) error {
	id := ownContainerID("/proc/self/mountinfo")
	if id == "" {
		return nil
	}
	info, err := docker.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("check runner.work_dir: inspect this container (%.12s): %w", id, err)
	}
	fix := fmt.Sprintf("mount it at the same path (docker run -v %s:%s ...)", workDir, workDir)
	best := -1
	for i, m := range info.Mounts {
		if (workDir == m.Destination || strings.HasPrefix(workDir, strings.TrimSuffix(m.Destination, "/")+"/")) &&
			(best < 0 || len(m.Destination) > len(info.Mounts[best].Destination)) {
			best = i
		}
	}
	if best < 0 || info.Mounts[best].Type != "bind" {
		return fmt.Errorf("runner.work_dir %s is not bind-mounted from the host: tako mounts slot directories into job containers by their host path; %s", workDir, fix)
	}
	if m := info.Mounts[best]; m.Source != m.Destination {
		return fmt.Errorf("runner.work_dir %s comes from %s on the host, a different path: tako mounts slot directories into job containers by their host path; %s", workDir, m.Source, fix)
	}
	return nil
}

// containerInspector is the part of the Docker client CheckWorkDir uses.
type containerInspector interface {
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
}

// containerDir matches the engine's directory of one container, whose
// hostname, hosts and resolv.conf files it bind-mounts into it.
var containerDir = regexp.MustCompile(`/containers/([0-9a-f]{64})/`)

// ownContainerID returns the id of the Docker container this process runs
// in, read from the mounts in mountinfo; "" when it runs in none.
func ownContainerID(mountinfo string) string {
	f, err := os.Open(mountinfo)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 || (fields[4] != "/etc/hostname" && fields[4] != "/etc/hosts" && fields[4] != "/etc/resolv.conf") {
			continue
		}
		if m := containerDir.FindStringSubmatch(fields[3]); m != nil {
			return m[1]
		}
	}
	return ""
}
