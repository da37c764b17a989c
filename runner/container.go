package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/errdefs"
	"github.com/docker/go-units"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/bootstrap"
	"github.com/tako-run/tako/runner/egress"
)

// jobContainer is a started job container: its interpreter is running the
// bootstrap, which preloads and then waits for one trigger. It runs one job
// and is then removed; it is never reused.
type jobContainer struct {
	id         string
	image      string
	jobType    string
	nonce      string
	runtime    string
	slot       slot
	uid        int
	started    time.Time
	stdout     *capture
	stderr     *capture
	streamDone chan struct{} // closed when both streams have ended

	// trigger is tako's end of the trigger FIFO, opened for reading and
	// writing before the container starts, so that neither side ever waits
	// in open(2) for the other: gVisor opens host FIFOs blocking, and a
	// sandbox blocked there can be neither triggered reliably nor killed.
	// closeTrigger closes it once; the bootstrap then reads end-of-file.
	trigger      *os.File
	closeTrigger func()

	// lease is the container's egress proxy credentials, and addr its
	// address on the egress network, which they are good from; nil and
	// zero unless its job type has an allowlist.
	lease *egress.Lease
	addr  netip.Addr
}

// alive reports whether the container's streams are still open: false once
// it has exited or been removed, for example behind tako's back.
func (c *jobContainer) alive() bool {
	select {
	case <-c.streamDone:
		return false
	default:
		return true
	}
}

// ended reports whether both streams carried the program's end marker.
func (c *jobContainer) ended() bool {
	_, _, out := c.stdout.result()
	_, _, errEnd := c.stderr.result()
	return out != nil && errEnd != nil
}

// containerSpec is everything needed to create a job container.
type containerSpec struct {
	image   string
	jobType jobtypes.JobType
	runtime string
	// cmd replaces the bootstrap as the container's command when set: only
	// the floors that tako bench measures (FloorProbe) set it.
	cmd []string
}

// launcher creates, starts and removes job containers: all the Docker work
// of one container's life. The runner and its pools share one; it does not
// know about either.
type launcher struct {
	docker         dockerAPI
	gvisorRuntime  string // the engine's name for runsc
	instance       *instance
	limits         OutputLimits
	logger         *slog.Logger
	seccomp        string          // the job containers' seccomp profile, JSON
	egress         *egress.Gateway // nil when the node runs none
	startupTimeout time.Duration
	uids           *uidPool

	// engine schedules the starts and removals; its zero value does not
	// limit them.
	engine engineWork
}

// Why prepare failed, besides the engine's errors.
var (
	errExitedEarly = errors.New("container exited before its bootstrap was ready")
	errNotReady    = errors.New("container not ready")
)

// prepare starts a container for spec and waits until its bootstrap has
// preloaded and waits for the trigger: a container ready for a pool. Its
// start waits behind cold starts and pending removals (engineWork).
func (l *launcher) prepare(ctx context.Context, spec containerSpec) (*jobContainer, error) {
	c, err := l.start(ctx, spec, refill)
	if err != nil {
		return nil, err
	}
	timeout := time.NewTimer(l.startupTimeout)
	defer timeout.Stop()
	for _, ready := range []chan struct{}{c.stdout.readyCh, c.stderr.readyCh} {
		select {
		case <-ready:
		case <-c.streamDone:
			l.discard(c)
			return nil, errExitedEarly
		case <-timeout.C:
			l.discard(c)
			return nil, fmt.Errorf("%w within %s", errNotReady, l.startupTimeout)
		case <-ctx.Done():
			l.discard(c)
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// start creates and starts a job container for spec, reading its output
// FIFOs from the start, when the engine's schedule lets a start of
// priority p begin. On failure it undoes whatever it had done.
func (l *launcher) start(ctx context.Context, spec containerSpec, p priority) (_ *jobContainer, err error) {
	endStart, err := l.engine.startSlot(ctx, p)
	if err != nil {
		return nil, err
	}
	defer endStart()
	uid, err := l.uids.claim()
	if err != nil {
		return nil, err
	}
	s, err := newSlot(l.instance.slotsDir, uid)
	if err != nil {
		l.uids.release(uid)
		return nil, err
	}
	c := &jobContainer{
		image:      spec.image,
		jobType:    spec.jobType.Name,
		nonce:      randomHex(16),
		runtime:    spec.runtime,
		slot:       s,
		uid:        uid,
		streamDone: make(chan struct{}),
	}
	c.stdout = newCapture(c.nonce, l.limits.MaxStdoutBytes)
	c.stderr = newCapture(c.nonce, l.limits.MaxStderrBytes)
	c.closeTrigger = func() {}
	defer func() {
		if err != nil {
			l.discard(c)
		}
	}()
	trigger, err := os.OpenFile(s.fifo(bootstrap.TriggerFIFO), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return c, fmt.Errorf("open trigger: %w", err)
	}
	c.trigger, c.closeTrigger = trigger, sync.OnceFunc(func() { trigger.Close() })

	// The Docker calls do not take ctx's cancellation: a create cancelled
	// half-way leaves a container the daemon made but whose id tako never
	// learned. They finish (or time out), and a cancelled ctx then undoes them.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	config, host := l.config(spec, s, uid)
	if spec.jobType.Network == jobtypes.NetworkAllow {
		if err := l.lease(c, config); err != nil {
			return c, err
		}
	}
	created, err := l.docker.ContainerCreate(dctx, config, host, nil, nil, "tako-"+l.instance.id[:8]+"-"+randomHex(6))
	if err != nil {
		return c, fmt.Errorf("create container: %w", err)
	}
	c.id = created.ID
	if err := ctx.Err(); err != nil {
		return c, err
	}
	// Read the bootstrap's FIFOs from the start: its opens for writing wait
	// for ours. A stream ends when every process holding it has exited.
	var streams sync.WaitGroup
	for _, st := range []struct {
		name string
		to   *capture
	}{{bootstrap.StdoutFIFO, c.stdout}, {bootstrap.StderrFIFO, c.stderr}} {
		streams.Go(func() {
			f, err := os.OpenFile(s.fifo(st.name), os.O_RDONLY, 0)
			if err != nil {
				return
			}
			defer f.Close()
			io.Copy(st.to, f)
			st.to.flush()
		})
	}
	go func() {
		streams.Wait()
		close(c.streamDone)
	}()
	if err := ctx.Err(); err != nil {
		return c, err
	}
	if err := l.docker.ContainerStart(dctx, c.id, container.StartOptions{}); err != nil {
		return c, fmt.Errorf("start container: %w", err)
	}
	c.started = time.Now()
	if c.lease != nil {
		if err := l.bindAddress(dctx, c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// config is the hardened configuration of every job container.
func (l *launcher) config(spec containerSpec, s slot, uid int) (*container.Config, *container.HostConfig) {
	jt := spec.jobType
	env := map[string]string{
		"HOME":                    "/tmp",
		"LANG":                    "C.UTF-8",
		"MPLCONFIGDIR":            "/tmp/.cache/matplotlib",
		"PYTHONDONTWRITEBYTECODE": "1",
		"PYTHONUNBUFFERED":        "1",
		"XDG_CACHE_HOME":          "/tmp/.cache",
	}
	for k, v := range jt.Env {
		env[k] = v
	}
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)

	network := l.networkMode(jt)
	pids := jt.Limits.Pids
	ulimits := []*units.Ulimit{
		{Name: "nofile", Soft: jt.Limits.NoFile, Hard: jt.Limits.NoFile},
		{Name: "fsize", Soft: jt.Limits.FileSize, Hard: jt.Limits.FileSize},
		{Name: "core", Soft: 0, Hard: 0},
	}
	if spec.runtime == runtimeGVisor {
		// The host's pids cgroup counts the sandbox's own threads, not the
		// program's processes: gVisor's kernel enforces the program's limit
		// as RLIMIT_NPROC, and the cgroup only bounds the sandbox.
		ulimits = append(ulimits, &units.Ulimit{Name: "nproc", Soft: pids, Hard: pids})
		pids = gvisorPids(pids)
	}
	init := true
	user := strconv.Itoa(uid) + ":" + strconv.Itoa(uid)
	cmd := bootstrap.Command(jt.Preload)
	if spec.cmd != nil {
		cmd = spec.cmd
	}
	config := &container.Config{
		Cmd:             cmd,
		Env:             envList,
		Image:           spec.image,
		NetworkDisabled: network == string(jobtypes.NetworkNone),
		User:            user,
		WorkingDir:      "/app",
		Labels: map[string]string{
			LabelManaged:  "true",
			LabelKind:     "job",
			LabelInstance: l.instance.id,
			LabelLock:     l.instance.lockPath,
			LabelJobType:  jt.Name,
			LabelSlot:     s.dir,
		},
	}
	host := &container.HostConfig{
		CapDrop:     []string{"ALL"},
		Init:        &init,
		LogConfig:   container.LogConfig{Type: "none"},
		NetworkMode: container.NetworkMode(network),
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: s.code(), Target: "/code", ReadOnly: true},
			{Type: mount.TypeBind, Source: s.input(), Target: "/input", ReadOnly: true},
			{Type: mount.TypeBind, Source: s.output(), Target: "/output"},
			{Type: mount.TypeBind, Source: s.control(), Target: bootstrap.ControlDir, ReadOnly: true},
		},
		ReadonlyRootfs: true,
		Resources: container.Resources{
			Memory:     jt.Limits.Memory,
			MemorySwap: jt.Limits.Memory, // equal to Memory: no swap
			NanoCPUs:   int64(jt.Limits.CPUs * 1e9),
			PidsLimit:  &pids,
			Ulimits:    ulimits,
		},
		SecurityOpt: []string{"no-new-privileges", "seccomp=" + l.seccomp},
		Tmpfs:       map[string]string{"/tmp": "rw,noexec,nosuid,nodev,size=" + strconv.FormatInt(jt.Limits.Tmp, 10)},
	}
	if spec.runtime == runtimeGVisor {
		host.Runtime = l.gvisorRuntime
	}
	return config, host
}

// gvisorPids is the host pids limit of a gVisor sandbox whose program may
// have pids processes and threads: the sentry, the gofer and their
// threads, which grow with the program's threads.
func gvisorPids(pids int64) int64 { return 64 + 4*pids }

// discard removes the container, its slot directory and its uid claim in
// the background, off the request path, in the engine's schedule. wait
// waits for pending removals.
func (l *launcher) discard(c *jobContainer) {
	c.closeTrigger()
	c.closeEgress()
	l.engine.remove(func() {
		if c.id != "" {
			var err error
			c.slot.unblocking(func() { err = l.removeContainer(c.id, removeAttempts) })
			if err != nil {
				l.logger.Warn("remove container", "container_id", c.id, "error", err)
			}
		}
		if !c.endStreams(5 * time.Second) {
			l.logger.Warn("output streams of a removed container did not end", "container_id", c.id)
		}
		if err := c.slot.remove(); err != nil {
			l.logger.Warn("remove slot directory", "slot", c.slot.dir, "error", err)
		}
		l.uids.release(c.uid)
	})
}

// removeAttempts bounds the forced removals of one container.
const removeAttempts = 5

// removeContainer removes container id by force, trying again up to
// attempts times while the engine refuses: Docker 20.10 answers a forced
// removal of a container that is exiting by itself with "cannot remove -
// Container ... is not running", and a container left there would stay
// until this instance is gone. Not found counts as removed.
func (l *launcher) removeContainer(id string, attempts int) error {
	var err error
	for i := range attempts {
		if i > 0 {
			time.Sleep(time.Duration(i) * 200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = l.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err == nil || errdefs.IsNotFound(err) {
			return nil
		}
	}
	return fmt.Errorf("after %d attempts: %w", attempts, err)
}

// wait waits for the removals discard started.
func (l *launcher) wait() { l.engine.wait() }

// kill sends SIGKILL to the container; "not found" and "not running" count
// as done.
func (l *launcher) kill(c *jobContainer) {
	c.closeTrigger()
	c.slot.unblocking(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := l.docker.ContainerKill(ctx, c.id, "KILL"); err != nil {
			l.logger.Debug("kill container", "container_id", c.id, "error", err)
		}
	})
}

// endStreams waits, at most timeout, for the output streams of a container
// that has been killed or removed to end, and reports whether they did. A
// reader still waiting for a bootstrap that never opened its end (it died
// first) is released by opening that end ourselves.
func (c *jobContainer) endStreams(timeout time.Duration) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(timeout)
	for {
		for _, name := range []string{bootstrap.StdoutFIFO, bootstrap.StderrFIFO} {
			if f, err := os.OpenFile(c.slot.fifo(name), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		select {
		case <-c.streamDone:
			return true
		case <-giveUp:
			return false
		case <-tick.C:
		}
	}
}

// sendTrigger hands the nonce and the program's source to the bootstrap,
// which reads them from the trigger FIFO when it is ready (or has already
// started to wait).
func (c *jobContainer) sendTrigger(source string) error {
	if _, err := c.trigger.Write(bootstrap.SourceTriggerLine(c.nonce, source)); err != nil {
		return fmt.Errorf("trigger container: %w", err)
	}
	return nil
}
