package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/bootstrap"
)

// floorKind is the tako.kind label of the floors' containers.
const floorKind = "bench-floor"

// FloorOptions says which job containers a FloorProbe imitates, and where
// it keeps its files.
type FloorOptions struct {
	// WorkDir is tako's work directory (runner.work_dir). The probe is a
	// tako instance of its own there and claims its uids among those of the
	// servers that share it.
	WorkDir string
	// UIDs is runner.uid_range; zero means DefaultUIDRange.
	UIDs UIDRange
	// GVisorRuntime is the engine's name for runsc (runner.gvisor_runtime);
	// "" means "runsc".
	GVisorRuntime string
	// Image is the image the job type runs, as the server reports it.
	Image string
	// JobType is the job type whose container configuration the probe's
	// containers get.
	JobType jobtypes.JobType
	// Runtime is the OCI runtime the server runs the job type under, as it
	// reports it: "runc" or "runsc".
	Runtime string
	// StartupTimeout bounds getting the trigger floor's interpreter ready;
	// 0 means 60 seconds.
	StartupTimeout time.Duration
}

// FloorProbe runs the containers whose times are the physical floors of a
// job (tako bench --floors). Each gets the configuration launcher.config
// gives a job container of the job type, the hardening, limits, mounts,
// user and runtime included, with the label tako.kind=bench-floor in place
// of the job's; RunTrue's and StartTrigger's have their command replaced,
// StartBootstrap's run tako's bootstrap as a job container does. No other
// tako code runs on the timed paths. The probe is a tako instance of its
// own in the work directory, so the reaper of a live server leaves its
// containers alone, and removes them once the probe's process is gone.
// RunTrue, StartBootstrap and StartTrigger are safe for concurrent use;
// Close must be called once they have returned.
type FloorProbe struct {
	launch *launcher
	spec   containerSpec
	slot   slot // the mounts of RunTrue's containers
	uid    int  // the user of RunTrue's containers
}

// NewFloorProbe takes an instance lock and a uid in opts.WorkDir and
// returns a probe for opts.JobType's containers. It fails when the work
// directory cannot be written (the probe must run as tako server does) or
// when opts.Runtime is neither runc nor runsc.
func NewFloorProbe(docker dockerAPI, opts FloorOptions, logger *slog.Logger) (_ *FloorProbe, err error) {
	if opts.Runtime != runtimeRunc && opts.Runtime != runtimeGVisor {
		return nil, fmt.Errorf("floor probe: runtime %q is neither %s nor %s", opts.Runtime, runtimeRunc, runtimeGVisor)
	}
	if opts.Image == "" {
		return nil, fmt.Errorf("floor probe: no image for job type %q", opts.JobType.Name)
	}
	if opts.GVisorRuntime == "" {
		opts.GVisorRuntime = runtimeGVisor
	}
	if opts.StartupTimeout <= 0 {
		opts.StartupTimeout = 60 * time.Second
	}
	in, err := acquireInstance(opts.WorkDir, NewInstanceID())
	if err != nil {
		return nil, fmt.Errorf("floor probe: %w", err)
	}
	defer func() {
		if err != nil {
			in.release()
		}
	}()
	uids, err := newUIDPool(opts.WorkDir, in.lockPath, opts.UIDs)
	if err != nil {
		return nil, fmt.Errorf("floor probe: %w", err)
	}
	uid, err := uids.claim()
	if err != nil {
		return nil, fmt.Errorf("floor probe: %w", err)
	}
	s, err := newSlot(in.slotsDir, uid)
	if err != nil {
		uids.release(uid)
		return nil, fmt.Errorf("floor probe: %w", err)
	}
	return &FloorProbe{
		launch: &launcher{
			docker:         docker,
			gvisorRuntime:  opts.GVisorRuntime,
			instance:       in,
			logger:         logger.With("component", "floors"),
			seccomp:        SeccompProfile,
			startupTimeout: opts.StartupTimeout,
			uids:           uids,
		},
		spec: containerSpec{image: opts.Image, jobType: opts.JobType, runtime: opts.Runtime},
		slot: s,
		uid:  uid,
	}, nil
}

// floorConfig is the configuration of a floor container that runs cmd: a
// job container's, from launcher.config, with the floor's label.
func (p *FloorProbe) floorConfig(cmd []string, s slot, uid int) (*container.Config, *container.HostConfig) {
	spec := p.spec
	spec.cmd = cmd
	config, host := p.launch.config(spec, s, uid)
	config.Labels[LabelKind] = floorKind
	return config, host
}

// containerName is a fresh name for one of the probe's containers.
func (p *FloorProbe) containerName() string {
	return "tako-" + p.launch.instance.id[:8] + "-" + randomHex(6)
}

// RunTrue creates, starts, waits for and removes one container that runs
// `true` with the job type's configuration: what a single-use container
// costs the engine. It fails when a step fails or true exits non-zero; the
// container is removed in every case.
func (p *FloorProbe) RunTrue(ctx context.Context) error {
	config, host := p.floorConfig([]string{"true"}, p.slot, p.uid)
	// As in launcher.start: an engine call cancelled half-way could leave
	// a container whose id the probe never learned.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	created, err := p.launch.docker.ContainerCreate(dctx, config, host, nil, nil, p.containerName())
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	removed := false
	defer func() {
		if !removed {
			p.remove(created.ID)
		}
	}()
	if err := p.launch.docker.ContainerStart(dctx, created.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	waited, waitErr := p.launch.docker.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waited:
		if w.Error != nil {
			return fmt.Errorf("wait for container: %s", w.Error.Message)
		}
		if w.StatusCode != 0 {
			return fmt.Errorf("true exited with status %d in image %s", w.StatusCode, p.spec.image)
		}
	case err := <-waitErr:
		return fmt.Errorf("wait for container: %w", err)
	}
	removed = true
	if err := p.launch.docker.ContainerRemove(dctx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		return fmt.Errorf("remove container: %w", err)
	}
	return nil
}

// remove removes container id after a failure; "not found" counts as done.
func (p *FloorProbe) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.launch.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		p.launch.logger.Warn("remove container", "container_id", id, "error", err)
	}
}

// StartBootstrap creates and starts one container with the job type's
// configuration and command, tako's bootstrap, and returns once the
// bootstrap has preloaded and written its ready marker on both streams:
// what launcher.prepare does for a pool, and what every job container
// costs before its trigger. The container carries the floor's label.
// remove removes the container, its slot directory and its uid claim, and
// returns once they are gone; call it once. On failure StartBootstrap
// returns once whatever it made is gone, and remove is nil.
func (p *FloorProbe) StartBootstrap(ctx context.Context) (remove func(), err error) {
	l := p.ownLauncher()
	spec := p.spec
	spec.cmd = nil // the bootstrap, as a job container runs it
	c, err := l.prepare(ctx, spec)
	if err != nil {
		l.wait() // prepare has discarded what it made
		return nil, fmt.Errorf("bootstrap floor: %w", err)
	}
	return func() {
		l.discard(c)
		l.wait()
	}, nil
}

// ownLauncher is a launcher like the probe's, whose containers carry the
// floor's label, with an engine schedule of its own: its wait waits for
// its own containers' removals alone, so that a run of a floor ends when
// its container is gone, whatever the other workers of a churn floor do.
func (p *FloorProbe) ownLauncher() *launcher {
	l := p.launch
	return &launcher{
		docker:         floorLabeler{l.docker},
		gvisorRuntime:  l.gvisorRuntime,
		instance:       l.instance,
		limits:         l.limits,
		logger:         l.logger,
		seccomp:        l.seccomp,
		startupTimeout: l.startupTimeout,
		uids:           l.uids,
	}
}

// floorLabeler is the engine as the launcher sees it, but every container
// it creates carries tako.kind=bench-floor in place of the job's kind: the
// launcher's own configuration, hardening included, with the floors'
// label, and no change to the launcher for it.
type floorLabeler struct {
	dockerAPI
}

// ContainerCreate creates the container with the floor's kind label.
func (f floorLabeler) ContainerCreate(ctx context.Context, config *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error) {
	labelled := *config
	labelled.Labels = maps.Clone(config.Labels)
	if labelled.Labels == nil {
		labelled.Labels = map[string]string{}
	}
	labelled.Labels[LabelKind] = floorKind
	return f.dockerAPI.ContainerCreate(ctx, &labelled, host, net, platform, name)
}

// Close removes the probe's slot directory and uid claim once the removals
// of its trigger floors are done, and releases its instance. Every
// TriggerFloor must have been closed first.
func (p *FloorProbe) Close() {
	p.launch.wait()
	if err := p.slot.remove(); err != nil {
		p.launch.logger.Warn("remove slot directory", "slot", p.slot.dir, "error", err)
	}
	p.launch.uids.release(p.uid)
	p.launch.instance.release()
}

// TriggerFloor is a started container of the job type whose interpreter
// waits on the trigger FIFO and answers each trigger with one end marker,
// running no program (bootstrap.FloorSource): a warm job's path from the
// trigger to its end marker, with no tako code in the container and none on
// the host but a write and a read. RoundTrip must not be called
// concurrently; Close removes the container.
type TriggerFloor struct {
	launch    *launcher
	c         *jobContainer // its id, slot, uid and trigger, for launcher.discard
	opened    chan *os.File // the stdout FIFO once open; nil when the open failed
	listening bool          // listen has run: a value comes on opened
	out       *os.File      // the stdout FIFO's read end; nil until ready
	r         *bufio.Reader // reads out
	close     func()        // Close, once
}

// Why a trigger floor failed, besides the engine's errors.
var errFloorEnded = errors.New("the trigger floor's container ended")

// StartTrigger creates and starts the trigger floor's container, with its
// own slot and uid as a job container has, and returns it once its
// interpreter waits for the first trigger. On failure it undoes what it
// did.
func (p *FloorProbe) StartTrigger(ctx context.Context) (_ *TriggerFloor, err error) {
	l := p.launch
	uid, err := l.uids.claim()
	if err != nil {
		return nil, fmt.Errorf("trigger floor: %w", err)
	}
	s, err := newSlot(l.instance.slotsDir, uid)
	if err != nil {
		l.uids.release(uid)
		return nil, fmt.Errorf("trigger floor: %w", err)
	}
	t := newTriggerFloor(l, &jobContainer{image: p.spec.image, jobType: p.spec.jobType.Name, runtime: p.spec.runtime, slot: s, uid: uid})
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := t.open(); err != nil {
		return nil, fmt.Errorf("trigger floor: %w", err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	config, host := p.floorConfig(bootstrap.FloorCommand(), s, uid)
	created, err := l.docker.ContainerCreate(dctx, config, host, nil, nil, p.containerName())
	if err != nil {
		return nil, fmt.Errorf("trigger floor: create container: %w", err)
	}
	t.c.id = created.ID
	t.listen()
	if err := l.docker.ContainerStart(dctx, created.ID, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("trigger floor: start container: %w", err)
	}
	if err := t.ready(ctx, time.Now().Add(l.startupTimeout)); err != nil {
		return nil, fmt.Errorf("trigger floor: %w", err)
	}
	return t, nil
}

// newTriggerFloor returns the trigger floor of c, whose slot and uid l has
// given it, before anything is open.
func newTriggerFloor(l *launcher, c *jobContainer) *TriggerFloor {
	c.streamDone = make(chan struct{})
	c.closeTrigger = func() {}
	t := &TriggerFloor{launch: l, c: c, opened: make(chan *os.File, 1)}
	t.close = sync.OnceFunc(t.discard)
	return t
}

// open opens the host's end of the trigger FIFO for reading and writing,
// as launcher.start does, so that neither side waits in open(2).
func (t *TriggerFloor) open() error {
	trigger, err := os.OpenFile(t.c.slot.fifo(bootstrap.TriggerFIFO), os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open trigger: %w", err)
	}
	t.c.trigger, t.c.closeTrigger = trigger, sync.OnceFunc(func() { trigger.Close() })
	return nil
}

// listen opens the stdout FIFO for reading in the background and hands it
// to ready: the interpreter's open for writing waits for this one, and
// this one for it.
func (t *TriggerFloor) listen() {
	t.listening = true
	go func() {
		f, err := os.OpenFile(t.c.slot.fifo(bootstrap.StdoutFIFO), os.O_RDONLY, 0)
		if err != nil {
			f = nil
		}
		t.opened <- f
	}()
}

// ready waits until the interpreter has opened its end of the stdout FIFO
// and written the ready marker, at most until deadline.
func (t *TriggerFloor) ready(ctx context.Context, deadline time.Time) error {
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	select {
	case f := <-t.opened:
		close(t.opened) // its one value is taken: discard must not wait for it
		if f == nil {
			return errors.New("open stdout FIFO failed")
		}
		t.out, t.r = f, bufio.NewReader(f)
	case <-timeout.C:
		return fmt.Errorf("%w within %s", errNotReady, t.launch.startupTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	line, err := t.readLine(ctx, deadline)
	if err != nil {
		return err
	}
	if line != bootstrap.ReadyMarker {
		return fmt.Errorf("the interpreter wrote %.200q before its ready marker", line)
	}
	return nil
}

// readLine reads one line of the interpreter's stdout, waiting at most
// until deadline (none when zero) or until ctx ends.
func (t *TriggerFloor) readLine(ctx context.Context, deadline time.Time) (string, error) {
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	if err := t.out.SetReadDeadline(deadline); err != nil {
		return "", fmt.Errorf("read stdout FIFO: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { t.out.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := t.r.ReadString('\n')
	switch {
	case err == nil:
		return line, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, io.EOF):
		return "", errFloorEnded
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "", fmt.Errorf("%w: no answer by %s", errNotReady, deadline.Format(time.RFC3339))
	default:
		return "", fmt.Errorf("read stdout FIFO: %w", err)
	}
}

// RoundTrip writes one trigger line with a fresh nonce and reads the end
// marker the interpreter answers with: the round trip the trigger floor
// times. It fails when the container has ended, when the answer is not the
// marker of that nonce, or when ctx ends first.
func (t *TriggerFloor) RoundTrip(ctx context.Context) error {
	nonce := randomHex(8)
	if _, err := t.c.trigger.Write(bootstrap.TriggerLine(nonce)); err != nil {
		return fmt.Errorf("trigger floor: write trigger: %w", err)
	}
	line, err := t.readLine(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("trigger floor: %w", err)
	}
	if !strings.HasPrefix(line, bootstrap.EndPrefix(nonce)) || !strings.HasSuffix(line, string(bootstrap.EndTerminator)+"\n") {
		return fmt.Errorf("trigger floor: the interpreter answered %.200q, not the end marker of nonce %s", line, nonce)
	}
	return nil
}

// Close ends the interpreter and removes its container, slot directory and
// uid claim in the background; FloorProbe.Close waits for that. It is
// idempotent.
func (t *TriggerFloor) Close() { t.close() }

// discard is Close's work: the end of the trigger FIFO ends the
// interpreter, and launcher.discard removes the rest once the stdout FIFO
// is closed here.
func (t *TriggerFloor) discard() {
	t.c.closeTrigger()
	switch {
	case t.out != nil:
		t.out.Close()
		close(t.c.streamDone)
	case t.listening:
		// The open of stdout may still wait for the interpreter:
		// launcher.discard releases it (endStreams), and it is closed here.
		go func() {
			if f := <-t.opened; f != nil {
				f.Close()
			}
			close(t.c.streamDone)
		}()
	default:
		close(t.c.streamDone)
	}
	t.launch.discard(t.c)
}
