package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tako-run/tako/internal/loop"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner/egress"
	"github.com/tako-run/tako/runner/images"
)

// Options configures a Runner.
type Options struct {
	// AcquireTimeout is how long Reserve waits for a free execution slot.
	AcquireTimeout time.Duration
	// Images maps each job type to the image it runs; a job type missing
	// here is unavailable.
	Images map[string]string
	// PythonVersions maps each job type to the Python version its image
	// declares (images.PythonVersionEnv), for Availability; read-only.
	PythonVersions map[string]string
	// GVisor says how to find and check the engine's gVisor runtime.
	GVisor GVisorOptions
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
	// MaxStarts bounds the container starts running at once on the engine
	// (runner.max_concurrent_starts); 0 means 1. Removals run as many at
	// once, and pool refills wait while more than maxBacklogPerStart
	// removals per start are pending.
	MaxStarts int
	// Egress, when set, starts the egress gateway that job types with an
	// allowlist reach their hosts through; nil starts none, and such job
	// types are unavailable.
	Egress *EgressOptions
	// Metrics records running jobs and pool checkouts; nil records nothing.
	Metrics *metrics.Metrics
	// ReapInterval is how often the runner removes what instances that are
	// gone left behind, besides once at Start; 0 means 30 seconds.
	ReapInterval time.Duration
	// StartupTimeout bounds getting a container ready when a request does
	// not say; 0 means 60 seconds.
	StartupTimeout time.Duration
	// UIDs are the host uids job containers run as, one each; zero means
	// DefaultUIDRange.
	UIDs UIDRange
	// WorkDir holds slot directories, uid claims and instance locks.
	WorkDir string
}

// RequirementImages builds job type images and the images of ad-hoc
// requirement sets, and collects the latter; *images.Builder satisfies it.
type RequirementImages interface {
	EnsureJobType(ctx context.Context, jt jobtypes.JobType) (string, error)
	EnsureRequirements(ctx context.Context, set images.RequirementSet) (string, error)
	CollectRequirements(ctx context.Context, maxImages int, maxBytes int64, inUse func(ref string) bool) ([]string, error)
}

// Runner runs programs in single-use, hardened containers. It is safe for
// concurrent use. Start must be called before Reserve or Execute.
type Runner struct {
	docker dockerAPI
	logger *slog.Logger
	opts   Options
	slots  chan struct{}
	launch *launcher

	gvisor gvisor // fixed after Start

	ooms           *ooms
	stopBackground context.CancelFunc // ends the reaper and the oom follower
	background     sync.WaitGroup
	stopOnce       sync.Once

	pools     map[string]*pool // by job type; fixed after Start
	poolCtx   context.Context
	stopPools context.CancelFunc
	poolsDone sync.WaitGroup

	imagesMu    sync.RWMutex
	images      map[string]string // job type -> image; Build changes it
	imageErrors map[string]string

	reqs *requirementImages

	egress    *egress.Gateway // nil when none runs
	egressErr string          // why it could not start
}

// New returns a Runner that talks to Docker through docker.
func New(docker dockerAPI, opts Options, logger *slog.Logger) *Runner {
	if opts.MaxConcurrent < 1 {
		opts.MaxConcurrent = 1
	}
	if opts.MaxStarts < 1 {
		opts.MaxStarts = 1
	}
	if opts.StartupTimeout == 0 {
		opts.StartupTimeout = 60 * time.Second
	}
	if opts.ReapInterval <= 0 {
		opts.ReapInterval = 30 * time.Second
	}
	if opts.GVisor.Runtime == "" {
		opts.GVisor.Runtime = runtimeGVisor
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
	logger = logger.With("component", "runner")
	return &Runner{
		images:      images,
		imageErrors: imageErrors,
		docker:      docker,
		logger:      logger,
		opts:        opts,
		slots:       make(chan struct{}, opts.MaxConcurrent),
		ooms:        newOOMs(),
	}
}

// InstanceID returns the id that labels everything this runner creates.
func (r *Runner) InstanceID() string { return r.opts.InstanceID }

// Start takes this instance's lock in the work directory, detects the
// engine's runtimes, removes what instances that are gone left behind and
// starts the pools.
func (r *Runner) Start(ctx context.Context) error {
	in, err := acquireInstance(r.opts.WorkDir, r.opts.InstanceID)
	if err != nil {
		return err
	}
	uids, err := newUIDPool(r.opts.WorkDir, in.lockPath, r.opts.UIDs)
	if err != nil {
		in.release()
		return err
	}
	info, err := r.docker.Info(ctx)
	if err != nil {
		in.release()
		return fmt.Errorf("docker info: %w", err)
	}
	r.launch = &launcher{
		docker:         r.docker,
		gvisorRuntime:  r.opts.GVisor.Runtime,
		instance:       in,
		limits:         r.opts.Limits,
		logger:         r.logger,
		seccomp:        SeccompProfile,
		startupTimeout: r.opts.StartupTimeout,
		uids:           uids,
		engine: engineWork{
			maxStarts:   r.opts.MaxStarts,
			maxRemovals: r.opts.MaxStarts,
			maxBacklog:  maxBacklogPerStart * r.opts.MaxStarts,
		},
	}
	bg, cancel := context.WithCancel(context.Background())
	r.stopBackground = cancel
	r.background.Go(func() { r.ooms.follow(bg, r.docker, in.id, r.logger) })
	r.reap(ctx)
	r.background.Go(func() { r.reapLoop(bg) })
	if r.opts.Egress != nil {
		r.startEgress(ctx, in)
	}
	r.gvisor = r.probeGVisor(ctx, info)
	if !r.gvisor.usable {
		r.logger.Warn("gVisor is not usable: permissive job types run under plain runc, which does NOT isolate untrusted code from the host kernel, and strict job types cannot run; "+gvisorFix(r.gvisor), "reason", r.gvisor.reason)
	}
	r.startPools()
	return nil
}

// startPools starts a pool for every job type that can run here and wants
// one.
func (r *Runner) startPools() {
	r.pools = map[string]*pool{}
	ctx, cancel := context.WithCancel(context.Background())
	r.poolCtx, r.stopPools = ctx, cancel
	r.reqs = newRequirementImages(r.opts.Requirements, r.opts.RequirementCache, r.runPool, r.logger)
	r.reqs.gvisorRuntime = r.opts.GVisor.Runtime
	for _, jt := range r.opts.JobTypes {
		a := r.Availability(jt)
		if !a.Available || jt.Pool.Max < 1 {
			continue // a job type that cannot run has no pool
		}
		r.pools[jt.Name] = r.runPool(containerSpec{image: a.Image, jobType: jt, runtime: a.Runtime})
	}
}

// runPool starts a pool for spec; it runs until Stop.
func (r *Runner) runPool(spec containerSpec) *pool {
	p := newPool(r.launch, spec, r.logger)
	if r.poolCtx.Err() != nil {
		return nil
	}
	r.poolsDone.Go(func() { p.run(r.poolCtx) })
	return p
}

// reapLoop reaps on a timer: an instance may die while this one runs, and
// a container whose creation was in flight when its instance died appears
// only after that.
func (r *Runner) reapLoop(ctx context.Context) {
	loop.Every(ctx, r.opts.ReapInterval, func() bool {
		r.reap(ctx)
		return true
	})
}

func (r *Runner) reap(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := reap(ctx, r.docker, r.launch.instance, r.opts.WorkDir, r.logger); err != nil && ctx.Err() == nil {
		r.logger.Warn("reap orphaned containers", "error", err)
	}
	reapUIDs(r.opts.WorkDir)
	if err := egress.Reap(ctx, r.docker, gone); err != nil && ctx.Err() == nil {
		r.logger.Warn("reap egress networks", "error", err)
	}
}

// Stop drains the pools, waits for background container removals and
// releases the instance. It is idempotent.
func (r *Runner) Stop() {
	r.stopOnce.Do(func() {
		if r.stopBackground != nil {
			r.stopBackground()
			r.background.Wait()
		}
		if r.stopPools != nil {
			r.stopPools()
			r.poolsDone.Wait()
		}
		if r.launch != nil {
			r.launch.wait()
			if r.egress != nil {
				r.egress.Close()
			}
			r.launch.instance.release()
		}
	})
}

// Build makes sure jt's image exists, building it when it is missing, and
// makes it the image jt runs from now on, in its pool too: what POST
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
	if p := r.pools[jt.Name]; p != nil {
		p.setImage(ref)
	}
	return ref, nil
}
