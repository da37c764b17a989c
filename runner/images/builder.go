// Package images builds and finds the Docker images tako runs user code in:
// tako's executor image (Debian with Debian's Python) and one image per job
// type that bakes in Debian or pip packages of its own. Every image is
// verified by a hardened test run before it gets its final tag, so an image
// that exists under its final tag is known to work.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/tako-run/tako/internal/dockerlabel"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
)

// DockerAPI is the part of the Docker client the image builder uses.
// *client.Client from github.com/docker/docker/client satisfies it.
type DockerAPI interface {
	ContainerAttach(ctx context.Context, containerID string, options container.AttachOptions) (types.HijackedResponse, error)
	ContainerCommit(ctx context.Context, containerID string, options container.CommitOptions) (container.CommitResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerWait(ctx context.Context, containerID string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImagePull(ctx context.Context, refStr string, options image.PullOptions) (io.ReadCloser, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	ImageTag(ctx context.Context, source, target string) error
}

// Options configure a Builder. They mirror config.ImagesConfig and the pip
// settings; zero values get the defaults listed per field.
type Options struct {
	// BaseImage is the registry image the executor image is built FROM when
	// it exists locally or can be pulled, e.g. "debian:bookworm-slim". When
	// it is empty or unavailable the executor is built with debootstrap.
	BaseImage string
	// BuildLimits bound every build step's container.
	BuildLimits BuildLimits
	// BuildTimeout bounds one image build including its verification;
	// default 30 minutes.
	BuildTimeout time.Duration
	// BuildUID is the unprivileged uid that requirement builds and
	// verification runs use; default 199999.
	BuildUID int
	// DebianMirror is the Debian mirror debootstrap uses and the executor's
	// apt sources point at; "" means the first Debian mirror in the host's
	// apt sources.
	DebianMirror string
	// DebianSuite is the Debian release debootstrap installs; default
	// "bookworm".
	DebianSuite string
	// Executor is the repository name of the executor image; default
	// "tako-executor".
	Executor string
	// Egress is the only way out of a requirement build's download step; nil
	// means ad-hoc requirements cannot be built.
	Egress Egress
	// FailureTTL is how long a failed ad-hoc requirements build is
	// remembered (and returned again without building); default 5 minutes.
	FailureTTL time.Duration
	// MaxConcurrentBuilds bounds the image builds running at once; default 1.
	MaxConcurrentBuilds int
	// Metrics records builds and requirement cache lookups; nil records
	// nothing.
	Metrics *metrics.Metrics
	// Pip is where job type builds find pip requirements.
	Pip jobtypes.PipIndex
	// SeccompProfile is the seccomp profile (JSON) of unprivileged build
	// steps under runc; "" is the engine's default.
	SeccompProfile string
	// WorkDir holds the temporary root filesystem of a debootstrap build
	// (a few hundred MB, removed afterwards); default os.TempDir().
	WorkDir string

	// aptDir is where the host's apt sources live; tests point it
	// elsewhere. Default /etc/apt.
	aptDir string
}

// Label keys and values on every image and container this package creates.
const (
	labelManaged   = dockerlabel.Managed
	labelKind      = dockerlabel.Kind
	labelJobType   = dockerlabel.JobType
	labelBuildHash = "tako.build_hash"

	kindExecutor       = "executor"
	kindExecutorRootfs = "executor_rootfs"
	kindJobType        = "job_type"
	kindVerify         = "image_verify"
	kindBuildStep      = "build_step"
)

// Builder finds and builds tako's images. It is safe for concurrent use:
// concurrent requests for the same image share one build.
type Builder struct {
	docker   DockerAPI
	opts     Options
	logger   *slog.Logger
	progress *progress
	flights  flights
	builds   chan struct{} // one token per build running

	mu       sync.Mutex
	failures map[string]failure   // ad-hoc builds that failed, by ref
	lastUsed map[string]time.Time // ad-hoc images, by ref
}

// NewBuilder returns a Builder that talks to docker, logs to logger and
// writes a human-readable account of the work it does (build and tool
// output included) to progress, which may be nil.
func NewBuilder(docker DockerAPI, opts Options, logger *slog.Logger, progress io.Writer) *Builder {
	if opts.BuildTimeout <= 0 {
		opts.BuildTimeout = 30 * time.Minute
	}
	if opts.DebianSuite == "" {
		opts.DebianSuite = "bookworm"
	}
	if opts.Executor == "" {
		opts.Executor = "tako-executor"
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = 5 * time.Minute
	}
	if opts.MaxConcurrentBuilds <= 0 {
		opts.MaxConcurrentBuilds = 1
	}
	if opts.BuildUID <= 0 {
		opts.BuildUID = 199999
	}
	if opts.aptDir == "" {
		opts.aptDir = "/etc/apt"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Builder{
		docker:   docker,
		opts:     opts,
		logger:   logger.With("component", "images"),
		progress: newProgress(progress),
		flights:  flights{m: map[string]*flight{}},
		builds:   make(chan struct{}, opts.MaxConcurrentBuilds),
		failures: map[string]failure{},
		lastUsed: map[string]time.Time{},
	}
}

// SetEgress gives ad-hoc requirement builds their way out to the pip index;
// until it is called they are refused. Call it before the builder serves
// EnsureRequirements.
func (b *Builder) SetEgress(e Egress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts.Egress = e
}

// egress returns the builds' way out, or nil.
func (b *Builder) egress() Egress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opts.Egress
}

// ExecutorRef returns the tag of the executor image the current recipe
// produces, "<Executor>:<hash>". It does not look at Docker.
func (b *Builder) ExecutorRef() string {
	return b.opts.Executor + ":" + executorHash(b.opts)
}

// EnsureExecutor returns the executor image's ref, building and verifying
// the image first when it does not exist locally.
func (b *Builder) EnsureExecutor(ctx context.Context) (string, error) {
	ref, _, err := b.ensureExecutor(ctx)
	return ref, public(err)
}

// EnsureJobType returns the image ref jt's containers run: its own image
// when jt.NeedsBuild(), otherwise its base image (jt.Image or the executor
// image). It builds whatever is missing, executor first, pulling jt.Image
// if it is not local. Concurrent calls for the same image share one build.
func (b *Builder) EnsureJobType(ctx context.Context, jt jobtypes.JobType) (string, error) {
	ref, _, err := b.ensureJobType(ctx, jt)
	return ref, public(err)
}

// EnsureAll ensures the images of all job types, one after the other, and
// returns job type name -> image ref for those that succeeded. A job type
// that fails does not stop the others; their errors are joined, and a
// failed executor build is reported once, not once per job type built on
// it. When nothing had to be built it prints "nothing to do: N images are
// up to date" to the progress writer. An unreachable Docker engine stops it
// at once.
func (b *Builder) EnsureAll(ctx context.Context, types []jobtypes.JobType) (map[string]string, error) {
	refs := make(map[string]string, len(types))
	images := map[string]bool{}
	built := 0
	var errs []error
	var executorErr error
	for _, jt := range types {
		if jt.Image == "" && executorErr == nil {
			ref, n, err := b.ensureExecutor(ctx)
			built += n
			if err = public(err); IsUnreachable(err) {
				return refs, err
			}
			if err != nil {
				executorErr = err
				errs = append(errs, err)
			} else {
				images[ref] = true
			}
		}
		if jt.Image == "" && executorErr != nil {
			continue
		}
		ref, n, err := b.ensureJobType(ctx, jt)
		built += n
		if err = public(err); IsUnreachable(err) {
			return refs, err
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		refs[jt.Name] = ref
		images[ref] = true
	}
	if built == 0 && len(errs) == 0 {
		if len(images) == 1 {
			b.progress.printf("nothing to do: 1 image is up to date")
		} else {
			b.progress.printf("nothing to do: %d images are up to date", len(images))
		}
	}
	return refs, errors.Join(errs...)
}

// Lookup reports, without building or pulling anything, which image ref jt
// would run and whether it exists locally. For a job type that needs its own
// image the tag depends on the base image's ID, so when the base image is
// missing Lookup returns ("", false, nil).
func (b *Builder) Lookup(ctx context.Context, jt jobtypes.JobType) (ref string, exists bool, err error) {
	if err := validateJobType(jt, b.opts.Pip); err != nil {
		return "", false, fmt.Errorf("job type %q: %w", jt.Name, err)
	}
	base := jt.Image
	if base == "" {
		base = b.ExecutorRef()
	}
	baseInfo, baseExists, err := b.inspect(ctx, base)
	if err != nil {
		return "", false, public(err)
	}
	if !jt.NeedsBuild() {
		return base, baseExists, nil
	}
	if !baseExists {
		return "", false, nil
	}
	ref = jobTypeRef(jt, baseInfo.ID, b.opts.Pip)
	_, exists, err = b.inspect(ctx, ref)
	return ref, exists, public(err)
}

// ensureJobType is EnsureJobType that also counts the images it built.
func (b *Builder) ensureJobType(ctx context.Context, jt jobtypes.JobType) (ref string, built int, err error) {
	if err := validateJobType(jt, b.opts.Pip); err != nil {
		return "", 0, fmt.Errorf("job type %q: %w", jt.Name, err)
	}
	base := jt.Image
	if base == "" {
		ref, n, err := b.ensureExecutor(ctx)
		if err != nil {
			return "", n, err
		}
		base, built = ref, n
	} else if err := b.ensureAvailable(ctx, base); err != nil {
		return "", 0, fmt.Errorf("job type %q: %w", jt.Name, err)
	}
	if !jt.NeedsBuild() {
		return base, built, nil
	}
	baseInfo, ok, err := b.inspect(ctx, base)
	if err != nil {
		return "", built, fmt.Errorf("job type %q: %w", jt.Name, err)
	}
	if !ok {
		return "", built, fmt.Errorf("job type %q: base image %s disappeared", jt.Name, base)
	}
	ref = jobTypeRef(jt, baseInfo.ID, b.opts.Pip)
	n, err := b.once(ctx, metrics.BuildJobType, ref, func(ctx context.Context) error {
		return b.buildJobType(ctx, jt, base, baseInfo, ref)
	})
	return ref, built + n, err
}

// ensureExecutor is EnsureExecutor that also counts the images it built.
func (b *Builder) ensureExecutor(ctx context.Context) (string, int, error) {
	ref := b.ExecutorRef()
	n, err := b.once(ctx, metrics.BuildExecutor, ref, func(ctx context.Context) error {
		return b.buildExecutor(ctx, ref)
	})
	return ref, n, err
}

// once builds ref, an image of kind, with build unless it exists, sharing
// one build among concurrent callers. It returns 1 if this call waited for
// a build.
func (b *Builder) once(ctx context.Context, kind, ref string, build func(context.Context) error) (int, error) {
	if _, ok, err := b.inspect(ctx, ref); err != nil || ok {
		return 0, err
	}
	built, err := b.flights.do(ctx, ref, func(ctx context.Context) (bool, error) {
		// Another flight may have finished between our look and ours.
		if _, ok, err := b.inspect(ctx, ref); err != nil || ok {
			return false, err
		}
		// At most MaxConcurrentBuilds builds at once; the wait does not count
		// against the build's timeout.
		select {
		case b.builds <- struct{}{}:
			defer func() { <-b.builds }()
		case <-ctx.Done():
			return false, ctx.Err()
		}
		ctx, cancel := context.WithTimeout(ctx, b.opts.BuildTimeout)
		defer cancel()
		began := time.Now()
		err := build(ctx)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (images.build_timeout is %s)", err, b.opts.BuildTimeout)
		}
		b.opts.Metrics.ImageBuilt(kind, time.Since(began), err)
		return err == nil, err
	})
	if built {
		return 1, err
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return 0, fmt.Errorf("build %s: %w", ref, err)
	}
	return 0, err
}

// inspect looks an image up locally; a missing image is not an error.
func (b *Builder) inspect(ctx context.Context, ref string) (image.InspectResponse, bool, error) {
	info, err := b.docker.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return info, true, nil
}

// ensureAvailable makes sure ref exists locally, pulling it if it does not.
func (b *Builder) ensureAvailable(ctx context.Context, ref string) error {
	if _, ok, err := b.inspect(ctx, ref); err != nil || ok {
		return err
	}
	if err := b.pull(ctx, ref); err != nil {
		if IsUnreachable(public(err)) {
			return err
		}
		return fmt.Errorf("image %s is not available locally and cannot be pulled: %w", ref, err)
	}
	return nil
}

// pull pulls ref, streaming the engine's progress.
func (b *Builder) pull(ctx context.Context, ref string) error {
	body, err := b.docker.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer body.Close()
	b.progress.printf("==> pulling %s", ref)
	out := b.progress.lines("    ")
	defer out.flush()
	return displayStream(body, out)
}

// removeImage removes ref, treating "not found" as done. It runs even when
// ctx is cancelled, since it undoes work.
func (b *Builder) removeImage(ctx context.Context, ref string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := b.docker.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
		b.logger.Warn("remove image failed", "image", ref, "error", err)
	}
}

// labels returns the labels of an image of the given kind.
func labels(kind, hash, jobType string) map[string]string {
	l := map[string]string{labelManaged: "true", labelKind: kind, labelBuildHash: hash}
	if jobType != "" {
		l[labelJobType] = jobType
	}
	return l
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PythonVersionEnv is the environment variable an image names its Python's
// version in, as the official Python images do; tako's executor image sets
// it too.
const PythonVersionEnv = "PYTHON_VERSION"

// PythonVersion returns the Python version image ref declares in
// PythonVersionEnv, or "" when it declares none.
func (b *Builder) PythonVersion(ctx context.Context, ref string) (string, error) {
	info, found, err := b.inspect(ctx, ref)
	if err != nil || !found || info.Config == nil {
		return "", err
	}
	for _, kv := range info.Config.Env {
		if v, ok := strings.CutPrefix(kv, PythonVersionEnv+"="); ok {
			return v, nil
		}
	}
	return "", nil
}
