package images

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-units"
)

// BuildLimits bound every build container: the steps of job type and
// requirement images.
type BuildLimits struct {
	Memory int64   // bytes, swap included; default 2 GiB
	CPUs   float64 // default 1
	Pids   int64   // default 512
}

func (l BuildLimits) withDefaults() BuildLimits {
	if l.Memory <= 0 {
		l.Memory = 2 << 30
	}
	if l.CPUs <= 0 {
		l.CPUs = 1
	}
	if l.Pids <= 0 {
		l.Pids = 512
	}
	return l
}

// step is one command of a build, run in a container of its own.
type step struct {
	name    string // for errors: "download", "install", "packages"
	image   string
	cmd     []string
	env     []string
	user    string // "" runs as the image's user
	network string // "none", "bridge" or a network's name
	runtime string // "" is the engine's default
	mounts  []mount.Mount
	// writable keeps the container's root file system writable, for a step
	// whose result is committed; otherwise it is read-only with a tmpfs at
	// /tmp.
	writable bool
	// keepEntrypoint runs cmd through the image's own entrypoint. A
	// committed container's entrypoint becomes the image's, and the engine
	// cannot reset one to none: a step committed on an image without an
	// entrypoint must keep it.
	keepEntrypoint bool
}

// stepOutputLimit caps how much of a step's output is kept for its error.
const stepOutputLimit = 256 << 10

// run runs s in a hardened container bounded by the build limits, and
// returns its combined output and exit code. The container is kept for
// commit when keep is set (the caller removes it), removed otherwise.
func (b *Builder) run(ctx context.Context, s step, keep bool) (out string, code int64, id string, err error) {
	lim := b.opts.BuildLimits.withDefaults()
	pids := lim.Pids
	cfg := &container.Config{
		Image:           s.image,
		Cmd:             s.cmd,
		Env:             s.env,
		User:            s.user,
		NetworkDisabled: s.network == "none",
		Labels:          map[string]string{labelManaged: "true", labelKind: kindBuildStep},
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(s.network),
		Runtime:     s.runtime,
		Mounts:      s.mounts,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		LogConfig:   container.LogConfig{Type: "none"},
		Resources: container.Resources{
			Memory:     lim.Memory,
			MemorySwap: lim.Memory,
			NanoCPUs:   int64(lim.CPUs * 1e9),
			PidsLimit:  &pids,
			Ulimits:    []*units.Ulimit{{Name: "core", Soft: 0, Hard: 0}},
		},
	}
	if b.opts.SeccompProfile != "" && (s.runtime == "" || s.runtime == "runc") {
		// gVisor applies its own filter to the sandbox, and the container's
		// would apply to gVisor's kernel, not to the program.
		host.SecurityOpt = append(host.SecurityOpt, "seccomp="+b.opts.SeccompProfile)
	}
	if s.user == "" || s.user == "root" || s.user == "0" || strings.HasPrefix(s.user, "0:") {
		// Package managers need root's file capabilities in the image they
		// change; the operator's job type steps run so, a caller's never.
		host.CapDrop = nil
		host.CapAdd = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"}
	}
	if !s.keepEntrypoint {
		// The image's own entrypoint does not wrap the step.
		cfg.Entrypoint, cfg.Cmd = s.cmd[:1], s.cmd[1:]
	}
	if !s.writable {
		host.ReadonlyRootfs = true
		host.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev,size=1g"}
	}
	text, code, id, err := b.runContainer(ctx, cfg, host, keep)
	if err != nil {
		return "", 0, "", fmt.Errorf("%s step: %w", s.name, err)
	}
	return text, code, id, nil
}

// uidUser is the User of a container that runs as uid.
func uidUser(uid int) string { return strconv.Itoa(uid) + ":" + strconv.Itoa(uid) }
