package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner/images"
)

// CacheLimits bound the ad-hoc requirement images kept, least recently
// used first out.
type CacheLimits struct {
	MaxBytes  int64
	MaxImages int
}

// hotAfter is how many uses of one requirement set give it a small pool.
const hotAfter = 3

// requirementImages finds or builds the images of ad-hoc requirement sets,
// counts the executions using each, keeps the cache under its limits and
// gives the sets that keep coming back a small pool of their own. A hot
// pool belongs to one job type and image: a job type's network, env and
// limits are part of what its containers are.
type requirementImages struct {
	builder RequirementImages // nil: requirements are refused
	// gvisorRuntime is the engine's name for runsc, which builds for
	// gVisor job types run under.
	gvisorRuntime string
	limits        CacheLimits
	logger        *slog.Logger
	runPool       func(containerSpec) *pool

	mu    sync.Mutex
	pools map[poolKey]*pool
	uses  map[poolKey]int
	inUse map[string]int // executions running per image
}

// poolKey names the hot pool of one requirement image under one job type.
type poolKey struct{ jobType, image string }

func newRequirementImages(b RequirementImages, limits CacheLimits, runPool func(containerSpec) *pool, logger *slog.Logger) *requirementImages {
	return &requirementImages{
		builder: b, limits: limits, logger: logger, runPool: runPool,
		pools: map[poolKey]*pool{}, uses: map[poolKey]int{}, inUse: map[string]int{},
	}
}

// image returns the ad-hoc image for reqs on spec's image, and the hot pool
// of that set under spec's job type when there is one. It counts the
// execution as using the image until release is called.
func (ri *requirementImages) image(ctx context.Context, spec containerSpec, reqs []string) (string, *pool, func(), error) {
	if ri.builder == nil {
		return "", nil, nil, &jobs.Error{Code: jobs.ENOTALLOWED, Field: "requirements", Message: "ad-hoc requirements are disabled on this server"}
	}
	runtime := spec.runtime
	if runtime == runtimeGVisor {
		runtime = ri.gvisorRuntime // the engine's name for it
	}
	img, err := ri.builder.EnsureRequirements(ctx, images.RequirementSet{
		JobType: spec.jobType, Base: spec.image, Runtime: runtime, Requirements: reqs,
	})
	var be *images.BuildError
	switch {
	case errors.As(err, &be):
		return "", nil, nil, &jobs.Error{Code: jobs.EINVALID, Field: "requirements", Message: be.Msg}
	case err != nil:
		return "", nil, nil, fmt.Errorf("requirements image: %w", err)
	}
	key := poolKey{spec.jobType.Name, img}
	ri.mu.Lock()
	ri.inUse[img]++
	ri.uses[key]++
	p := ri.pools[key]
	if p == nil && ri.uses[key] >= hotAfter {
		// A set that keeps coming back gets a small pool of its own.
		spec.image = img
		spec.jobType.Pool = jobtypes.Pool{Min: 0, Max: 2, IdleTTL: spec.jobType.Pool.IdleTTL}
		if p = ri.runPool(spec); p != nil {
			ri.pools[key] = p
		}
	}
	fresh := ri.uses[key] == 1
	ri.mu.Unlock()
	if fresh {
		go ri.collect()
	}
	release := func() {
		ri.mu.Lock()
		ri.inUse[img]--
		ri.mu.Unlock()
	}
	return img, p, release, nil
}

// collect keeps the ad-hoc images under the cache limits, sparing those a
// running job or a pool uses.
func (ri *requirementImages) collect() {
	if ri.limits.MaxImages <= 0 && ri.limits.MaxBytes <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	removed, err := ri.builder.CollectRequirements(ctx, ri.limits.MaxImages, ri.limits.MaxBytes, ri.used)
	if err != nil {
		ri.logger.Warn("collect requirement images", "error", err)
	}
	if len(removed) > 0 {
		ri.logger.Info("removed least recently used requirement images", "images", removed)
	}
}

// used reports whether a running job or a pool uses img.
func (ri *requirementImages) used(img string) bool {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.inUse[img] > 0 {
		return true
	}
	for key, p := range ri.pools {
		if key.image != img {
			continue
		}
		if st := p.stats(); st.Warm > 0 || st.Busy > 0 {
			return true
		}
	}
	return false
}

// poolStats returns the state of the hot pools of job type name.
func (ri *requirementImages) poolStats(name string) []PoolStats {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	var out []PoolStats
	for key, p := range ri.pools {
		if key.jobType == name {
			out = append(out, p.stats())
		}
	}
	return out
}
