package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner/images"
)

// Options configures a Runner.
type Options struct {
	// AcquireTimeout is how long Execute waits for a free execution slot.
	AcquireTimeout time.Duration
	// Images maps each job type to the image it runs; a job type missing
	// here is unavailable.
	Images map[string]string
	// ImageErrors says why a job type has no image, for Availability.
	ImageErrors map[string]string
	// InstanceID identifies this tako process among those sharing the
	// Docker host; "" means a random one.
	InstanceID string
	// JobTypes are the job types whose pools Start fills (pool.max > 0 and
	// available on this node).
	JobTypes []jobtypes.JobType
	// Requirements builds the images of ad-hoc requirements; nil means
	// requests with requirements are refused.
	Requirements RequirementImages
	// RequirementCache bounds the ad-hoc images kept.
	RequirementCache CacheLimits
	// Limits caps output and artifacts.
	Limits OutputLimits
	// MaxConcurrent bounds the executions running at once on this node.
	MaxConcurrent int
	// Metrics records running jobs and pool checkouts; nil records nothing.
	Metrics *metrics.Metrics
	// ReapInterval is how often the runner removes what instances that are
	// gone left behind, besides once at Start; 0 means 30 seconds.
	ReapInterval time.Duration
	// StartupTimeout bounds getting a container ready when a request does
	// not say; 0 means 60 seconds.
	StartupTimeout time.Duration
	// WorkDir holds slot directories and instance locks.
	WorkDir string
}

// RequirementImages builds job type images and the images of ad-hoc
// requirement sets, and collects the latter; *images.Builder satisfies it.
type RequirementImages interface {
	EnsureJobType(ctx context.Context, jt jobtypes.JobType) (string, error)
	EnsureRequirements(ctx context.Context, base string, reqs []string) (string, error)
	CollectRequirements(ctx context.Context, maxImages int, maxBytes int64, inUse func(ref string) bool) ([]string, error)
}

// CacheLimits bound the ad-hoc requirement images kept, least recently
// used first out.
type CacheLimits struct {
	MaxBytes  int64
	MaxImages int
}

// hotAfter is how many uses of one requirement set give it a small pool.
const hotAfter = 3

// Runner runs programs in single-use, hardened containers. It is safe for
// concurrent use. Start must be called before Execute.
type Runner struct {
	docker   dockerAPI
	logger   *slog.Logger
	opts     Options
	limits   OutputLimits
	slots    chan struct{}
	removals sync.WaitGroup

	instance  *instance
	hasGVisor bool

	stopReaper context.CancelFunc
	reaperDone chan struct{}
	stopOnce   sync.Once

	pools     map[string]*pool // by job type; fixed after Start
	poolCtx   context.Context
	stopPools context.CancelFunc
	poolsDone sync.WaitGroup

	imagesMu    sync.RWMutex
	images      map[string]string // job type -> image; Build changes it
	imageErrors map[string]string

	reqMu    sync.Mutex
	reqPools map[string]*pool // by ad-hoc image, for sets that keep coming back
	reqUses  map[string]int   // uses of each ad-hoc image
	inUse    map[string]int   // executions running per ad-hoc image
}

// New returns a Runner that talks to Docker through docker.
func New(docker dockerAPI, opts Options, logger *slog.Logger) *Runner {
	if opts.MaxConcurrent < 1 {
		opts.MaxConcurrent = 1
	}
	if opts.StartupTimeout == 0 {
		opts.StartupTimeout = 60 * time.Second
	}
	if opts.ReapInterval <= 0 {
		opts.ReapInterval = 30 * time.Second
	}
	if opts.InstanceID == "" {
		opts.InstanceID = randomHex(8)
	}
	images, imageErrors := map[string]string{}, map[string]string{}
	for k, v := range opts.Images {
		images[k] = v
	}
	for k, v := range opts.ImageErrors {
		imageErrors[k] = v
	}
	return &Runner{
		images:      images,
		imageErrors: imageErrors,
		docker:      docker,
		logger:      logger.With("component", "runner"),
		opts:        opts,
		limits:      opts.Limits,
		slots:       make(chan struct{}, opts.MaxConcurrent),
	}
}

// InstanceID returns the id that labels everything this runner creates.
func (r *Runner) InstanceID() string { return r.opts.InstanceID }

// Start takes this instance's lock in the work directory, detects the
// engine's runtimes and removes what instances that are gone left behind.
func (r *Runner) Start(ctx context.Context) error {
	in, err := acquireInstance(r.opts.WorkDir, r.opts.InstanceID)
	if err != nil {
		return err
	}
	r.instance = in
	info, err := r.docker.Info(ctx)
	if err != nil {
		in.release()
		return fmt.Errorf("docker info: %w", err)
	}
	_, r.hasGVisor = info.Runtimes[runtimeGVisor]
	if !r.hasGVisor {
		r.logger.Warn("gVisor (runsc) is not installed: permissive job types run under plain runc, which does NOT isolate untrusted code from the host kernel; install gVisor for production")
	}
	r.reap(ctx)
	reaperCtx, cancel := context.WithCancel(context.Background())
	r.stopReaper, r.reaperDone = cancel, make(chan struct{})
	go r.reapLoop(reaperCtx)
	r.startPools()
	return nil
}

// startPools starts a pool for every job type that can run here and wants
// one.
func (r *Runner) startPools() {
	r.pools = map[string]*pool{}
	r.reqPools, r.reqUses, r.inUse = map[string]*pool{}, map[string]int{}, map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	r.poolCtx, r.stopPools = ctx, cancel
	for _, jt := range r.opts.JobTypes {
		a := r.Availability(jt)
		if !a.Available || jt.Pool.Max < 1 {
			continue // a job type that cannot run has no pool
		}
		r.pools[jt.Name] = r.runPool(containerSpec{image: a.Image, jobType: jt, runtime: a.Runtime})
	}
}

// runPool starts a pool for spec.
func (r *Runner) runPool(spec containerSpec) *pool {
	p := newPool(r, spec)
	r.poolsDone.Add(1)
	go func() {
		defer r.poolsDone.Done()
		p.run(r.poolCtx)
	}()
	return p
}

// requirementImage returns the ad-hoc image for req's requirements on
// base, and the pool of that image when the set is hot. It counts the
// execution as using the image until release is called.
func (r *Runner) requirementImage(ctx context.Context, req Request, base string, spec containerSpec) (string, *pool, func(), error) {
	if r.opts.Requirements == nil {
		return "", nil, nil, &jobs.Error{Code: jobs.ENOTALLOWED, Field: "requirements", Message: "ad-hoc requirements are disabled on this server"}
	}
	img, err := r.opts.Requirements.EnsureRequirements(ctx, base, req.Requirements)
	var be *images.BuildError
	switch {
	case errors.As(err, &be):
		return "", nil, nil, &jobs.Error{Code: jobs.EINVALID, Field: "requirements", Message: be.Msg}
	case err != nil:
		return "", nil, nil, fmt.Errorf("requirements image: %w", err)
	}
	r.reqMu.Lock()
	r.inUse[img]++
	r.reqUses[img]++
	p := r.reqPools[img]
	if p == nil && r.reqUses[img] >= hotAfter && r.poolCtx != nil && r.poolCtx.Err() == nil {
		// A set that keeps coming back gets a small pool of its own.
		spec.image = img
		spec.jobType.Pool = jobtypes.Pool{Min: 0, Max: 2, IdleTTL: spec.jobType.Pool.IdleTTL}
		p = r.runPool(spec)
		r.reqPools[img] = p
	}
	fresh := r.reqUses[img] == 1
	r.reqMu.Unlock()
	if fresh {
		go r.collectRequirements()
	}
	release := func() {
		r.reqMu.Lock()
		r.inUse[img]--
		r.reqMu.Unlock()
	}
	return img, p, release, nil
}

// collectRequirements keeps the ad-hoc images under the cache limits,
// sparing those a running job or a pool uses.
func (r *Runner) collectRequirements() {
	lim := r.opts.RequirementCache
	if lim.MaxImages <= 0 && lim.MaxBytes <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	removed, err := r.opts.Requirements.CollectRequirements(ctx, lim.MaxImages, lim.MaxBytes, r.requirementInUse)
	if err != nil {
		r.logger.Warn("collect requirement images", "error", err)
	}
	if len(removed) > 0 {
		r.logger.Info("removed least recently used requirement images", "images", removed)
	}
}

// requirementInUse reports whether a running job or a pool uses img.
func (r *Runner) requirementInUse(img string) bool {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	if r.inUse[img] > 0 {
		return true
	}
	if p := r.reqPools[img]; p != nil {
		if st := p.stats(); st.Warm > 0 || st.Busy > 0 {
			return true
		}
	}
	return false
}

// PoolStats returns the state of the pool of job type name; ok is false
// when it has none.
func (r *Runner) PoolStats(name string) (PoolStats, bool) {
	p := r.pools[name]
	if p == nil {
		return PoolStats{}, false
	}
	return p.stats(), true
}

// reapLoop reaps on a timer: an instance may die while this one runs, and
// a container whose creation was in flight when its instance died appears
// only after that.
func (r *Runner) reapLoop(ctx context.Context) {
	defer close(r.reaperDone)
	t := time.NewTicker(r.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.reap(ctx)
		}
	}
}

func (r *Runner) reap(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := reap(ctx, r.docker, r.instance, r.opts.WorkDir, r.logger); err != nil && ctx.Err() == nil {
		r.logger.Warn("reap orphaned containers", "error", err)
	}
}

// Stop waits for background container removals and releases the instance.
// It is idempotent.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		if r.stopReaper != nil {
			r.stopReaper()
			<-r.reaperDone
		}
		if r.stopPools != nil {
			r.stopPools()
			r.poolsDone.Wait()
		}
		r.removals.Wait()
		if r.instance != nil {
			r.instance.release()
		}
	})
}

// Build makes sure jt's image exists, building it when it is missing, and
// makes it the image jt runs from now on: what POST
// /job-types/{name}/build does.
func (r *Runner) Build(ctx context.Context, jt jobtypes.JobType) (string, error) {
	if r.opts.Requirements == nil {
		return "", &jobs.Error{Code: jobs.ENOTALLOWED, Message: "this server builds no images"}
	}
	ref, err := r.opts.Requirements.EnsureJobType(ctx, jt)
	if err != nil {
		return "", fmt.Errorf("build job type %q: %w", jt.Name, err)
	}
	r.imagesMu.Lock()
	r.images[jt.Name] = ref
	delete(r.imageErrors, jt.Name)
	r.imagesMu.Unlock()
	return ref, nil
}

// Availability reports whether jt can run on this node.
func (r *Runner) Availability(jt jobtypes.JobType) Availability {
	r.imagesMu.RLock()
	a := Availability{Image: r.images[jt.Name]}
	imageErr := r.imageErrors[jt.Name]
	r.imagesMu.RUnlock()
	a.ImageExists = a.Image != ""
	runtime, reason := resolveRuntime(jt.SecurityMode, r.hasGVisor)
	a.Runtime = runtime
	switch {
	case reason != "":
		a.Reason = reason
	case !a.ImageExists && imageErr != "":
		a.Reason = fmt.Sprintf("the image of job type %q could not be built: %s", jt.Name, imageErr)
	case !a.ImageExists:
		a.Reason = fmt.Sprintf("the image of job type %q is not built; run `tako setup`", jt.Name)
	default:
		a.Available = true
	}
	a.Pool, _ = r.poolTotals(jt.Name)
	return a
}

// poolTotals adds up the pools of job type name: its own and those of its
// hot requirement sets. ok is false when it has none.
func (r *Runner) poolTotals(name string) (total PoolStats, ok bool) {
	if p := r.pools[name]; p != nil {
		total, ok = p.stats(), true
	}
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	for _, p := range r.reqPools {
		if p.spec.jobType.Name == name {
			st := p.stats()
			total.Warm, total.Busy, total.Target = total.Warm+st.Warm, total.Busy+st.Busy, total.Target+st.Target
			total.Hits, total.Misses = total.Hits+st.Hits, total.Misses+st.Misses
			ok = true
		}
	}
	return total, ok
}

// PoolSamples returns the pools of every job type that has one, for the
// metrics. It does no I/O.
func (r *Runner) PoolSamples() []metrics.PoolSample {
	var out []metrics.PoolSample
	for _, jt := range r.opts.JobTypes {
		if st, ok := r.poolTotals(jt.Name); ok {
			out = append(out, metrics.PoolSample{JobType: jt.Name, Warm: st.Warm, Busy: st.Busy, Target: st.Target})
		}
	}
	return out
}

// Health pings Docker and reports the runner's load.
func (r *Runner) Health(ctx context.Context) Health {
	h := Health{GVisorAvailable: r.hasGVisor, MaxConcurrent: cap(r.slots), Running: len(r.slots)}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := r.docker.Ping(ctx); err != nil {
		h.DockerError = "cannot reach the Docker engine"
	} else {
		h.DockerAvailable = true
	}
	return h
}

// Execute runs req in a fresh container and returns its result. A program
// that fails is a Result with a failure status, not an error; errors mean
// tako could not run the program (*jobs.Error with EUNAVAILABLE when the node
// is busy or Docker is down).
func (r *Runner) Execute(ctx context.Context, req Request) (*jobs.Result, error) {
	arrived := time.Now()
	jt := req.JobType
	avail := r.Availability(jt)
	if !avail.Available {
		return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Field: "job_type", Message: avail.Reason, RetryAfter: 60}
	}
	// Ad-hoc requirements: their image is built (once per set) before the
	// job takes an execution slot.
	spec := containerSpec{image: avail.Image, jobType: jt, runtime: avail.Runtime}
	p := r.pools[jt.Name]
	if len(req.Requirements) > 0 {
		img, reqPool, done, err := r.requirementImage(ctx, req, avail.Image, spec)
		if err != nil {
			return nil, dockerError(err)
		}
		defer done()
		spec.image, p = img, reqPool
	}
	release, err := r.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	defer r.opts.Metrics.JobStarted(jt.Name)()
	queued := time.Since(arrived)

	// A warm container from the pool when there is one; otherwise a cold
	// start through the same bootstrap.
	start, began := jobs.StartWarm, time.Now()
	var c *jobContainer
	if p != nil {
		c = p.take()
		defer p.done()
	}
	if c == nil {
		start = jobs.StartCold
		if c, err = r.startContainer(ctx, spec); err != nil {
			return nil, dockerError(err)
		}
	}
	r.opts.Metrics.Checkout(jt.Name, start == jobs.StartWarm)
	defer r.discard(c)
	res, err := r.run(ctx, c, req, began)
	if err != nil {
		return nil, dockerError(err)
	}
	res.Start = start
	res.Timing.Queue = queued
	res.Timing.Total = time.Since(arrived)
	return res, nil
}

// acquire takes an execution slot, waiting at most AcquireTimeout.
func (r *Runner) acquire(ctx context.Context) (func(), error) {
	release := func() { <-r.slots }
	select {
	case r.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(r.opts.AcquireTimeout)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: fmt.Sprintf("all %d execution slots are busy; try again shortly", cap(r.slots)), RetryAfter: 1}
	case <-ctx.Done():
		return nil, &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "server is shutting down", RetryAfter: 1}
	}
}

// dockerError turns an unreachable engine into EUNAVAILABLE and wraps the rest.
func dockerError(err error) error {
	var e *jobs.Error
	if errors.As(err, &e) {
		return err
	}
	if client.IsErrConnectionFailed(err) {
		return &jobs.Error{Code: jobs.EUNAVAILABLE, Message: "the Docker engine is unavailable", RetryAfter: 5}
	}
	return fmt.Errorf("run job: %w", err)
}

// run gives the program to a started container, triggers it, waits for it
// to finish (or kills it at the timeout) and collects its result. The
// answer goes back as soon as both end markers have arrived; the container is
// removed afterwards by the caller, off the request path.
//
// began is when the job began to get its container: the start-up time is
// measured from there to the bootstrap's ready markers.
func (r *Runner) run(ctx context.Context, c *jobContainer, req Request, began time.Time) (*jobs.Result, error) {
	res := &jobs.Result{Image: c.image, Runtime: c.runtime}
	startupTimeout := req.StartupTimeout
	if startupTimeout == 0 {
		startupTimeout = r.opts.StartupTimeout
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = req.JobType.Limits.Timeout
	}
	if err := c.slot.fill(req.Code, req.InputJSON); err != nil {
		return nil, err
	}
	startup := time.NewTimer(startupTimeout)
	defer startup.Stop()
	for _, ready := range []chan struct{}{c.stdout.readyCh, c.stderr.readyCh} {
		select {
		case <-ready:
		case <-c.streamDone:
			return r.exited(c, res, time.Now())
		case <-startup.C:
			r.kill(c)
			res.Status, res.ExitCode = jobs.StatusTimeout, 124
			res.Error = &jobs.ExecError{Type: jobs.ErrStartupTimeout, Message: fmt.Sprintf("the container was not ready within %s", startupTimeout)}
			return res, nil
		case <-ctx.Done():
			return r.cancelled(c, res)
		}
	}
	if err := c.trigger(startupTimeout); err != nil {
		return r.exited(c, res, time.Now())
	}
	triggered := time.Now()
	res.Timing.Start = triggered.Sub(began)

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	outputFull := watchOutput(watchCtx, c.slot.output(), r.limits.MaxOutputBytes)
	ended := 0
	for ended < 2 {
		select {
		case <-c.stdout.endCh:
			c.stdout.endCh, ended = nil, ended+1
		case <-c.stderr.endCh:
			c.stderr.endCh, ended = nil, ended+1
		case <-c.streamDone:
			// The streams end right after the markers: when both came, the
			// program finished normally, whichever event select saw first.
			if !c.ended() {
				return r.exited(c, res, triggered)
			}
			ended = 2
		case <-deadline.C:
			r.kill(c)
			r.waitStreams(c)
			res.Timing.Run = time.Since(triggered)
			res.Status, res.ExitCode = jobs.StatusTimeout, 124
			res.Error = &jobs.ExecError{Type: jobs.ErrTimeout, Message: fmt.Sprintf("execution exceeded the %s timeout and was killed", timeout)}
			r.finish(c, res)
			return res, nil
		case why := <-outputFull:
			r.kill(c)
			r.waitStreams(c)
			res.Timing.Run = time.Since(triggered)
			res.Status, res.ExitCode = jobs.StatusFailed, 137
			res.Error = &jobs.ExecError{Type: jobs.ErrOutputError, Message: "the program was killed: " + why}
			r.finish(c, res)
			return res, nil
		case <-ctx.Done():
			return r.cancelled(c, res)
		}
	}
	res.Timing.Run = time.Since(triggered)
	_, _, end := c.stdout.result()
	res.ExitCode = end.ExitCode
	switch {
	case end.ExcType != "":
		res.Status = jobs.StatusFailed
		res.Error = &jobs.ExecError{Type: jobs.ClassifyException(end.ExcType), Message: end.ExcType + ": " + end.Message}
	case end.ExitCode != 0:
		res.Status = jobs.StatusFailed
		res.Error = &jobs.ExecError{Type: jobs.ErrRuntimeError, Message: fmt.Sprintf("the program exited with code %d", end.ExitCode)}
	default:
		res.Status = jobs.StatusSucceeded
	}
	r.finish(c, res)
	return res, nil
}

// exited handles a container whose streams ended without end markers: the
// program called os._exit, or was killed (out of memory, a signal).
func (r *Runner) exited(c *jobContainer, res *jobs.Result, triggered time.Time) (*jobs.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitCh, errCh := r.docker.ContainerWait(ctx, c.id, container.WaitConditionNotRunning)
	select {
	case <-waitCh:
	case err := <-errCh:
		return nil, fmt.Errorf("wait for container: %w", err)
	}
	res.Timing.Run = time.Since(triggered)
	info, err := r.inspectExited(ctx, c.id)
	if err != nil {
		return nil, fmt.Errorf("inspect container: %w", err)
	}
	res.ExitCode = info.State.ExitCode
	switch {
	case info.State.OOMKilled:
		res.Status = jobs.StatusOOM
		res.Error = &jobs.ExecError{Type: jobs.ErrOOM, Message: fmt.Sprintf("the program ran out of memory (limit %s) and was killed", jobtypes.FormatSize(jobLimitMemory(info)))}
	case res.ExitCode == 0:
		res.Status = jobs.StatusSucceeded
	default:
		res.Status = jobs.StatusFailed
		if t, ok := jobs.ClassifySignal(res.ExitCode); ok {
			res.Error = &jobs.ExecError{Type: t, Message: fmt.Sprintf("the program was killed (exit code %d)", res.ExitCode)}
		} else {
			res.Error = &jobs.ExecError{Type: jobs.ErrRuntimeError, Message: fmt.Sprintf("the program exited with code %d", res.ExitCode)}
		}
	}
	r.finish(c, res)
	return res, nil
}

// oomSettle bounds how long inspectExited waits for the engine to record
// an out-of-memory kill. On a loaded 2-core machine the event came more than
// a second after the exit; only a SIGKILL without it waits this long.
const oomSettle = 3 * time.Second

// inspectExited inspects a container that exited. The engine handles the
// exit and the out-of-memory event of one container separately, and under
// load the exit can come first: a SIGKILL (exit 137) without OOMKilled is
// looked at again for a moment before it is taken for a plain kill.
func (r *Runner) inspectExited(ctx context.Context, id string) (container.InspectResponse, error) {
	deadline := time.Now().Add(oomSettle)
	for {
		info, err := r.docker.ContainerInspect(ctx, id)
		if err != nil || info.State == nil || info.State.OOMKilled || info.State.ExitCode != 137 || time.Now().After(deadline) {
			return info, err
		}
		select {
		case <-ctx.Done():
			return info, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func jobLimitMemory(info container.InspectResponse) int64 {
	if info.HostConfig == nil {
		return 0
	}
	return info.HostConfig.Memory
}

// cancelled kills the container of a job whose context ended.
func (r *Runner) cancelled(c *jobContainer, res *jobs.Result) (*jobs.Result, error) {
	r.kill(c)
	r.waitStreams(c)
	res.Status, res.ExitCode = jobs.StatusCancelled, 137
	res.Error = &jobs.ExecError{Type: jobs.ErrCancelled, Message: "the execution was cancelled"}
	r.finish(c, res)
	return res, nil
}

// kill sends SIGKILL to the container; "not found" and "not running" count
// as done.
func (r *Runner) kill(c *jobContainer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.docker.ContainerKill(ctx, c.id, "KILL"); err != nil {
		r.logger.Debug("kill container", "container_id", c.id, "error", err)
	}
}

// waitStreams waits a little for the output streams to end after a kill, so
// that output written before the kill is kept.
func (r *Runner) waitStreams(c *jobContainer) {
	c.endStreams(2 * time.Second)
}

// finish copies the captured output and what the program left in /output
// into res.
func (r *Runner) finish(c *jobContainer, res *jobs.Result) {
	began := time.Now()
	stdout, outTrunc, _ := c.stdout.result()
	stderr, errTrunc, _ := c.stderr.result()
	res.Stdout, res.StdoutTruncated = string(stdout), outTrunc
	res.Stderr, res.StderrTruncated = string(stderr), errTrunc
	got := collectOutput(c.slot.output(), r.limits)
	res.Output, res.Artifacts, res.ArtifactBytes = got.output, got.artifacts, got.contents
	res.ArtifactsTruncated = got.truncated
	if got.outputErr != "" && res.Status == jobs.StatusSucceeded {
		res.Status = jobs.StatusFailed
		res.Error = &jobs.ExecError{Type: jobs.ErrOutputError, Message: got.outputErr}
	}
	res.Timing.Collect = time.Since(began)
}
