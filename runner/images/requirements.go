package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
)

// kindRequirements labels the images built for ad-hoc requirements.
const kindRequirements = "requirements"

// labelRequirements lists an ad-hoc image's requirements, for people
// looking at `docker images`.
const labelRequirements = "tako.requirements"

// BuildError is a build that failed because of what was asked for (pip
// could not resolve a requirement), not because of the machine. Its message
// is pip's own.
type BuildError struct {
	Msg string
}

// Error implements error.
func (e *BuildError) Error() string { return e.Msg }

// failure is a remembered failed build.
type failure struct {
	err   error
	until time.Time
}

// NormalizeRequirements returns reqs trimmed, without duplicates, sorted:
// the form that names an ad-hoc image.
func NormalizeRequirements(reqs []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(reqs))
	for _, r := range reqs {
		r = strings.TrimSpace(r)
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// requirementsRef is the tag of the ad-hoc image of reqs on the base image
// baseID: "tako-req:<hash>", the hash covering the base image, the
// normalized requirements, the pip index configuration and whether source
// builds were allowed.
func requirementsRef(baseID string, reqs []string, pip jobtypes.PipIndex, sourceBuilds bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "base=%s\n", baseID)
	for _, r := range NormalizeRequirements(reqs) {
		fmt.Fprintf(h, "req=%q\n", r)
	}
	fmt.Fprintf(h, "index=%q extra=%q trusted=%q\n", pip.IndexURL, pip.ExtraIndexURLs, pip.TrustedHosts)
	if sourceBuilds {
		fmt.Fprintf(h, "source-builds\n")
	}
	return "tako-req:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// RequirementSet is one request for ad-hoc requirements on a job type's
// image.
type RequirementSet struct {
	// JobType is whose source-build setting applies.
	JobType jobtypes.JobType
	// Base is the image the requirements are added to: the job type's.
	Base string
	// Runtime is the Docker runtime the job type runs under ("" or "runc",
	// or the engine's name for gVisor); the build's steps run under it too.
	Runtime string
	// Requirements are the pip requirements, as the caller wrote them.
	Requirements []string
}

// EnsureRequirements returns the image that adds set's requirements to its
// base image, building it once when it is missing; concurrent calls for
// the same set share one build. No step of the build runs the caller's
// packages with privileges or network: see buildRequirements. A build that
// fails because of what was asked (pip cannot resolve a requirement, source
// builds are off) returns a *BuildError with pip's message, and that
// failure is remembered for FailureTTL so that a bad requirement does not
// rebuild on every request.
func (b *Builder) EnsureRequirements(ctx context.Context, set RequirementSet) (string, error) {
	reqs := NormalizeRequirements(set.Requirements)
	if err := validateJobType(jobtypes.JobType{Name: "requirements", Requirements: reqs}, b.opts.Pip); err != nil {
		return "", &BuildError{Msg: err.Error()}
	}
	gw := b.egress()
	if gw == nil {
		return "", errors.New("requirement builds have no way out to the pip index: the egress gateway is not running")
	}
	info, ok, err := b.inspect(ctx, set.Base)
	if err != nil {
		return "", public(err)
	}
	if !ok {
		return "", fmt.Errorf("base image %s is missing", set.Base)
	}
	source := set.JobType.AllowSourceBuilds
	ref := requirementsRef(info.ID, reqs, b.opts.Pip, source)
	if err := b.failed(ref); err != nil {
		b.opts.Metrics.RequirementsLookup(false)
		return "", err
	}
	b.touch(ref)
	built, err := b.once(ctx, metrics.BuildRequirements, ref, func(ctx context.Context) error {
		b.progress.printf("==> building requirements image %s (FROM %s): %s", ref, set.Base, strings.Join(reqs, " "))
		return b.buildRequirements(ctx, gw, set, info, reqs, source, ref)
	})
	b.opts.Metrics.RequirementsLookup(built == 0 && err == nil)
	if err != nil {
		var be *BuildError
		if errors.As(err, &be) {
			b.remember(ref, be)
		}
		return "", public(err)
	}
	b.touch(ref)
	return ref, nil
}

func (b *Builder) failed(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.failures[ref]; ok && time.Now().Before(f.until) {
		return f.err
	}
	delete(b.failures, ref)
	return nil
}

func (b *Builder) remember(ref string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures[ref] = failure{err: err, until: time.Now().Add(b.opts.FailureTTL)}
}

// touch records that ref was just used, for least-recent-use collection.
func (b *Builder) touch(ref string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastUsed[ref] = time.Now()
}

// RequirementsCache returns how many ad-hoc requirement images exist on the
// engine and the bytes they take, for the metrics.
func (b *Builder) RequirementsCache(ctx context.Context) (int, int64, error) {
	list, err := b.requirementImages(ctx)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, img := range list {
		total += img.Size
	}
	return len(list), total, nil
}

// requirementImages lists the ad-hoc requirement images.
func (b *Builder) requirementImages(ctx context.Context) ([]image.Summary, error) {
	list, err := b.docker.ImageList(ctx, image.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", labelKind+"="+kindRequirements)),
	})
	if err != nil {
		return nil, fmt.Errorf("list requirement images: %w", public(err))
	}
	return list, nil
}

// CollectRequirements removes ad-hoc requirement images, least recently
// used first, until at most maxImages of them remain and they take at most
// maxBytes. An image for which inUse returns true (a running job or a pool
// uses it) is never removed. It returns the refs it removed.
func (b *Builder) CollectRequirements(ctx context.Context, maxImages int, maxBytes int64, inUse func(ref string) bool) ([]string, error) {
	list, err := b.requirementImages(ctx)
	if err != nil {
		return nil, err
	}
	type entry struct {
		ref  string
		size int64
		used time.Time
	}
	var entries []entry
	var total int64
	b.mu.Lock()
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if !strings.HasPrefix(tag, "tako-req:") || strings.HasSuffix(tag, "-unverified") {
				continue
			}
			used, ok := b.lastUsed[tag]
			if !ok {
				used = time.Unix(img.Created, 0)
			}
			entries = append(entries, entry{ref: tag, size: img.Size, used: used})
			total += img.Size
		}
	}
	b.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	var removed []string
	count := len(entries)
	for _, e := range entries {
		if count <= maxImages && total <= maxBytes {
			break
		}
		if inUse != nil && inUse(e.ref) {
			continue
		}
		if _, err := b.docker.ImageRemove(ctx, e.ref, image.RemoveOptions{PruneChildren: true}); err != nil {
			b.logger.Warn("remove requirement image", "image", e.ref, "error", err)
			continue
		}
		b.mu.Lock()
		delete(b.lastUsed, e.ref)
		b.mu.Unlock()
		removed = append(removed, e.ref)
		count--
		total -= e.size
	}
	return removed, nil
}
