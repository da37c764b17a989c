package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

// executorRecipeVersion is part of the executor image's hash: bump it when
// the recipe changes in a way the hashed text does not show.
const executorRecipeVersion = "2"

// executorPackages are the Debian packages of the executor image.
var executorPackages = []string{"python3", "python3-pip", "python3-venv", "ca-certificates"}

// executorSetup is the part of the executor's Dockerfile shared by both
// ways of building it: the sandbox user, the fixed directories and the
// environment user code runs in.
const executorSetup = `RUN groupadd --gid 1000 sandbox \
 && useradd --uid 1000 --gid 1000 --home-dir /home/sandbox --create-home --shell /bin/bash sandbox \
 && mkdir -p /code /input /output /app \
 && chown 1000:1000 /output
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
WORKDIR /app
`

// executorHash is the short hash of the executor recipe: the recipe
// version, the Debian suite, the package list and the shared Dockerfile
// text. How the image was built (FROM the base image or with debootstrap)
// and from which mirror are not part of it: both give Debian's packages of
// the suite, so either finds the other's image. Changing Options.BaseImage
// therefore does not rebuild an existing executor image.
func executorHash(opts Options) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\nsuite=%s\npackages=%s\n%s",
		executorRecipeVersion, opts.DebianSuite,
		strings.Join(executorPackages, ","), executorSetup)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// executorDockerfile renders the executor's Dockerfile. With installPackages
// it apt-installs the executor packages on top of from (a registry Debian
// image); without, from is a debootstrapped root filesystem that has them.
func executorDockerfile(from string, installPackages bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", from)
	if installPackages {
		fmt.Fprintf(&b, "RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s \\\n && rm -rf /var/lib/apt/lists/*\n",
			strings.Join(executorPackages, " "))
	}
	b.WriteString(executorSetup)
	return b.String()
}

// buildExecutor builds and verifies the executor image ref: FROM the base
// image when it is local or can be pulled, otherwise from a root filesystem
// made with debootstrap.
func (b *Builder) buildExecutor(ctx context.Context, ref string) error {
	hash := executorHash(b.opts)
	lbls := labels(kindExecutor, hash, "")
	fromBase, err := b.baseImageAvailable(ctx)
	if err != nil {
		return fmt.Errorf("build executor image: %w", err)
	}
	if fromBase {
		b.progress.printf("==> building executor image %s (FROM %s)", ref, b.opts.BaseImage)
		if err := b.buildVerified(ctx, ref, executorDockerfile(b.opts.BaseImage, true), lbls, nil); err != nil {
			return fmt.Errorf("build executor image: %w", err)
		}
		return nil
	}

	mirror, err := b.mirror()
	if err != nil {
		return fmt.Errorf("build executor image: %w", err)
	}
	b.progress.printf("==> building executor image %s (debootstrap from %s, %s)", ref, mirror, b.opts.DebianSuite)
	rootfs := b.opts.Executor + "-rootfs:" + hash
	start := time.Now()
	if err := b.ensureRootfs(ctx, rootfs, mirror, hash); err != nil {
		return fmt.Errorf("build executor image: %w", err)
	}
	b.progress.printf("==> root filesystem %s ready (%s)", rootfs, seconds(time.Since(start)))
	if err := b.buildVerified(ctx, ref, executorDockerfile(rootfs, false), lbls, nil); err != nil {
		return fmt.Errorf("build executor image: %w", err)
	}
	return nil
}

// baseImageAvailable reports whether Options.BaseImage exists locally or can
// be pulled. On an air-gapped host the pull fails fast and the reason is
// logged and printed, not returned: debootstrap takes over. Only failing to
// reach the engine at all is an error.
func (b *Builder) baseImageAvailable(ctx context.Context) (bool, error) {
	if b.opts.BaseImage == "" {
		return false, nil
	}
	_, ok, err := b.inspect(ctx, b.opts.BaseImage)
	if err != nil || ok {
		return ok, err
	}
	if err := b.pull(ctx, b.opts.BaseImage); err != nil {
		if client.IsErrConnectionFailed(err) || ctx.Err() != nil {
			return false, err
		}
		b.logger.Info("base image not available, using debootstrap", "image", b.opts.BaseImage, "error", err)
		b.progress.printf("==> %s is not available (%v); building from Debian packages instead", b.opts.BaseImage, err)
		return false, nil
	}
	return true, nil
}

// mirror returns the Debian mirror to build from.
func (b *Builder) mirror() (string, error) {
	if b.opts.DebianMirror != "" {
		return strings.TrimRight(b.opts.DebianMirror, "/"), nil
	}
	return findMirror(b.opts.aptDir, b.opts.DebianSuite)
}
