package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/docker/docker/client"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/images"
)

// imageSet is the outcome of preparing every job type's image.
type imageSet struct {
	refs   map[string]string // job type -> image ref
	errors map[string]string // job type -> why its image could not be built
	python map[string]string // job type -> the Python version its image declares
}

// newBuilder returns the image builder cfg describes, printing progress to
// progress. Ad-hoc requirements need an egress gateway (SetEgress), which
// only tako server starts.
func newBuilder(dc *client.Client, cfg *config.Config, work string, m *metrics.Metrics, logger *slog.Logger, progress io.Writer) *images.Builder {
	first, _, _ := config.ParseUIDRange(cfg.Runner.UIDRange) // validated
	return images.NewBuilder(dc, images.Options{
		BaseImage: cfg.Images.BaseImage,
		BuildLimits: images.BuildLimits{
			CPUs:   cfg.Images.BuildLimits.CPUs,
			Memory: int64(cfg.Images.BuildLimits.Memory),
			Pids:   int64(cfg.Images.BuildLimits.Pids),
		},
		BuildTimeout:        cfg.Images.BuildTimeout.Std(),
		BuildUID:            first - 1,
		DebianMirror:        cfg.Images.DebianMirror,
		DebianSuite:         cfg.Images.DebianSuite,
		Executor:            cfg.Images.Executor,
		FailureTTL:          cfg.Requirements.FailureTTL.Std(),
		MaxConcurrentBuilds: cfg.Requirements.MaxConcurrentBuilds,
		Metrics:             m,
		Pip:                 cfg.PipIndex(),
		SeccompProfile:      runner.SeccompProfile,
		WorkDir:             filepath.Join(work, "build"),
	}, logger, progress)
}

// ensureImages builds (or finds) the image of every job type in reg. A job
// type whose image fails is reported in errors; an unreachable Docker
// engine is an error.
func ensureImages(ctx context.Context, b *images.Builder, reg *jobtypes.Registry) (imageSet, error) {
	set := imageSet{errors: map[string]string{}, python: map[string]string{}}
	refs, err := b.EnsureAll(ctx, reg.All())
	set.refs = refs
	if images.IsUnreachable(err) {
		return set, err
	}
	for name, ref := range refs {
		v, err := b.PythonVersion(ctx, ref)
		if err != nil {
			return set, fmt.Errorf("job type %q: %w", name, err)
		}
		set.python[name] = v
	}
	for _, jt := range reg.All() {
		if _, ok := refs[jt.Name]; !ok {
			set.errors[jt.Name] = jobTypeError(err, jt.Name)
		}
	}
	return set, nil
}

// jobTypeError picks the part of EnsureAll's joined error that is about
// job type name.
func jobTypeError(err error, name string) string {
	if err == nil {
		return "unknown error"
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, fmt.Sprintf("%q", name)) {
			return line
		}
	}
	return err.Error()
}
