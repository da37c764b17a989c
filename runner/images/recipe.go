package images

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Recipe is an image that code outside this package knows how to make: a
// Dockerfile with its files, and a test run that must pass before the
// image gets its final tag. BuildVerified builds it with everything the
// builder's own images get: one build per ref among concurrent callers,
// images.max_concurrent_builds, images.build_timeout, tako.* labels,
// metrics and progress lines.
type Recipe struct {
	// Name says what the image is in errors: a failed build is
	// "build <Name>: ...".
	Name string
	// Kind is the image's tako.kind label and its kind in the build
	// metrics.
	Kind string
	// Headline is the progress line, after "==> ", printed when the build
	// starts.
	Headline string
	// Dockerfile is the Dockerfile's text; a LABEL instruction for the
	// image's labels is appended to it.
	Dockerfile string
	// Files are the build context's other files, name -> content; each is
	// executable.
	Files map[string]string
	// Verify is the test run's container: the builder sets its Image to
	// the built image and its Labels to those of a verification run. The
	// test passes when the container exits 0 and prints VerifyOutput.
	Verify container.Config
	// VerifyOutput is what the test run must print; "" means "tako-ok".
	VerifyOutput string
	// VerifyHost is the test run's host configuration.
	VerifyHost container.HostConfig
}

// BuildVerified builds r as the image ref unless ref exists locally. It
// builds under the temporary tag "<ref>-unverified", runs r's test and
// only then tags the image ref, labelled tako.managed=true,
// tako.kind=r.Kind and tako.build_hash=<ref's tag>; on failure nothing is
// left tagged ref. Concurrent calls for the same ref share one build. An
// unreachable Docker engine is an *UnreachableError.
func (b *Builder) BuildVerified(ctx context.Context, ref string, r Recipe) error {
	_, err := b.once(ctx, r.Kind, ref, func(ctx context.Context) error {
		b.progress.printf("==> %s", r.Headline)
		_, hash, _ := strings.Cut(ref, ":")
		err := b.buildVerifiedWith(ctx, ref, r.Dockerfile, r.Files, labels(r.Kind, hash, ""), func(ctx context.Context, tmp string) error {
			return b.verifyRun(ctx, tmp, r.Verify, r.VerifyHost, cmp.Or(r.VerifyOutput, "tako-ok"))
		})
		if err != nil {
			return fmt.Errorf("build %s: %w", r.Name, err)
		}
		return nil
	})
	return public(err)
}

// verifyRun runs a container of ref made from cfg and hostCfg, labelled as
// a verification run, and fails unless it exits 0 and prints marker; the
// error quotes the container's output.
func (b *Builder) verifyRun(ctx context.Context, ref string, cfg container.Config, hostCfg container.HostConfig, marker string) error {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	cfg.Image = ref
	cfg.Labels = map[string]string{labelManaged: "true", labelKind: kindVerify}
	text, code, err := b.testRun(ctx, ref, &cfg, &hostCfg)
	if err != nil {
		return err
	}
	if code != 0 || !strings.Contains(text, marker) {
		return fmt.Errorf("verify %s: test run exited with code %d: %s", ref, code, quoteOutput(text))
	}
	return nil
}

// ImageID returns the ID of the image ref and true when it exists locally;
// a missing image is ("", false, nil). An unreachable Docker engine is an
// *UnreachableError.
func (b *Builder) ImageID(ctx context.Context, ref string) (id string, exists bool, err error) {
	info, exists, err := b.inspect(ctx, ref)
	if err != nil {
		return "", false, public(err)
	}
	return info.ID, exists, nil
}

// Pull pulls the image ref from its registry, writing the engine's
// progress to the progress writer. An unreachable Docker engine is an
// *UnreachableError; any other error is the engine's.
func (b *Builder) Pull(ctx context.Context, ref string) error {
	return public(b.pull(ctx, ref))
}

// Progressf writes one line to the progress writer, the human-readable
// account of image work: for a recipe's own steps around BuildVerified.
// It is safe for concurrent use.
func (b *Builder) Progressf(format string, args ...any) {
	b.progress.printf(format, args...)
}

// Logger returns the logger of image work (component "images"), for a
// recipe's own steps around BuildVerified. It is never nil.
func (b *Builder) Logger() *slog.Logger {
	return b.logger
}
