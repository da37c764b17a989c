package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/jsonmessage"
)

// buildVerified builds dockerfile into ref: it builds under a temporary
// "-unverified" tag, verifies the result with a hardened test run that
// imports preload, and only then gives it the final tag. On failure nothing
// is left tagged ref. The headline of the work has already been printed.
func (b *Builder) buildVerified(ctx context.Context, ref, dockerfile string, lbls map[string]string, preload []string) error {
	return b.buildVerifiedWith(ctx, ref, dockerfile, nil, lbls, func(ctx context.Context, tmp string) error {
		return b.verify(ctx, tmp, preload)
	})
}

// buildVerifiedWith is buildVerified with extra build context files (name ->
// content, mode 0755) and its own verification, which gets the temporary
// tag of the built image.
func (b *Builder) buildVerifiedWith(ctx context.Context, ref, dockerfile string, files, lbls map[string]string, verify func(ctx context.Context, tmp string) error) error {
	return b.produceVerified(ctx, ref, func(ctx context.Context, tmp string) error {
		return b.build(ctx, tmp, dockerfile, files, lbls)
	}, verify)
}

// commitVerified makes ref by running s, a step that changes a writable
// container of its image, and committing the container with changes (and
// lbls as a LABEL); the result is verified by a hardened run that imports
// preload before it gets its final tag.
func (b *Builder) commitVerified(ctx context.Context, ref string, s step, changes []string, lbls map[string]string, preload []string) error {
	return b.produceVerified(ctx, ref, func(ctx context.Context, tmp string) error {
		out, code, id, err := b.run(ctx, s, true)
		if err != nil {
			return err
		}
		defer b.removeContainer(ctx, id)
		if code != 0 {
			return fmt.Errorf("%s step exited with code %d: %s", s.name, code, lastLines(strings.Split(out, "\n"), 6))
		}
		if label := strings.TrimSuffix(labelInstruction(lbls), "\n"); label != "" {
			changes = append(changes, label)
		}
		if _, err := b.docker.ContainerCommit(ctx, id, container.CommitOptions{Reference: tmp, Changes: changes}); err != nil {
			return fmt.Errorf("commit %s: %w", tmp, err)
		}
		return nil
	}, func(ctx context.Context, tmp string) error {
		return b.verify(ctx, tmp, preload)
	})
}

// produceVerified makes ref: produce creates the image under a temporary
// "-unverified" tag, verify checks it, and only then does it get its final
// tag. On failure nothing is left tagged ref. The headline of the work has
// already been printed.
func (b *Builder) produceVerified(ctx context.Context, ref string, produce, verify func(ctx context.Context, tmp string) error) error {
	tmp := ref + "-unverified"
	start := time.Now()
	if err := produce(ctx, tmp); err != nil {
		b.removeImage(ctx, tmp)
		return err
	}
	built := time.Since(start)

	b.progress.printf("==> verifying %s", ref)
	start = time.Now()
	if err := verify(ctx, tmp); err != nil {
		b.removeImage(ctx, tmp)
		return err
	}
	verified := time.Since(start)

	// Another process sharing the engine may have finished the same image
	// meanwhile. Keep its image: images built on it stay valid.
	if _, ok, err := b.inspect(ctx, ref); err == nil && ok {
		b.removeImage(ctx, tmp)
		b.progress.printf("==> ok %s (built by another process meanwhile; this build discarded)", ref)
		return nil
	}
	if err := b.docker.ImageTag(ctx, tmp, ref); err != nil {
		b.removeImage(ctx, tmp)
		return fmt.Errorf("tag %s: %w", ref, err)
	}
	b.removeImage(ctx, tmp) // the final tag keeps the image; this only untags
	b.progress.printf("==> ok %s (built in %s, verified in %s)", ref, seconds(built), seconds(verified))
	b.logger.Info("image built", "image", ref, "build_seconds", built.Seconds(), "verify_seconds", verified.Seconds())
	return nil
}

// build runs one legacy-builder build of dockerfile plus a LABEL line for
// lbls, with files (name -> content) beside the Dockerfile in the build
// context, tagging the result tag and streaming the build output to the
// progress writer. When a step fails
// the error quotes the failing tool's own message.
func (b *Builder) build(ctx context.Context, tag, dockerfile string, files, lbls map[string]string) error {
	buildContext, err := dockerfileContext(dockerfile+labelInstruction(lbls), files)
	if err != nil {
		return err
	}
	resp, err := b.docker.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("start image build: %w", err)
	}
	defer resp.Body.Close()
	out := b.progress.lines("    ")
	err = displayStream(resp.Body, out)
	out.flush()
	var jerr *jsonmessage.JSONError
	if errors.As(err, &jerr) {
		return errors.New(out.failure(jerr.Message))
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("image build: %w", ctx.Err())
		}
		return fmt.Errorf("image build: %w", err)
	}
	return nil
}

// labelInstruction renders lbls as one LABEL instruction. The builder's own
// Labels option would add one step, and one container, per label.
func labelInstruction(lbls map[string]string) string {
	if len(lbls) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("LABEL")
	for _, k := range sortedKeys(lbls) {
		fmt.Fprintf(&b, " %s=%q", k, lbls[k])
	}
	b.WriteString("\n")
	return b.String()
}

// displayStream writes a stream of the engine's JSON progress messages to
// out as plain lines. An error message in the stream is returned as a
// *jsonmessage.JSONError.
func displayStream(in io.Reader, out io.Writer) error {
	return jsonmessage.DisplayJSONMessagesStream(in, out, 0, false, func(jsonmessage.JSONMessage) {})
}

// dockerfileContext returns a build context holding a Dockerfile and files
// (name -> content, executable, in name order).
func dockerfileContext(dockerfile string, files map[string]string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, content string, mode int64) error {
		hdr := &tar.Header{
			Name:    name,
			Mode:    mode,
			Size:    int64(len(content)),
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write build context: %w", err)
		}
		if _, err := io.WriteString(tw, content); err != nil {
			return fmt.Errorf("write build context: %w", err)
		}
		return nil
	}
	if err := add("Dockerfile", dockerfile, 0o644); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(files) {
		if err := add(name, files[name], 0o755); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write build context: %w", err)
	}
	return &buf, nil
}
