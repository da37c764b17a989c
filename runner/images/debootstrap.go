package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/tako-run/tako/internal/mountinfo"
)

// errNoDebootstrap says what to do when debootstrap is missing.
var errNoDebootstrap = errors.New("debootstrap is not installed; install it with `apt-get install debootstrap` (needed to build the executor image without a registry)")

// errNotRoot says why a debootstrap build needs root.
var errNotRoot = errors.New("building the executor image with debootstrap needs root (it creates device nodes and files owned by other users); run `tako setup` as root, or make the base image available locally")

// ensureRootfs makes sure the image rootfs exists: a Debian root filesystem
// with the executor packages, made by debootstrap from mirror and imported
// into Docker. A rootfs left by an earlier, failed build is reused.
func (b *Builder) ensureRootfs(ctx context.Context, rootfs, mirror, hash string) error {
	if _, ok, err := b.inspect(ctx, rootfs); err != nil || ok {
		return err
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return errNoDebootstrap
	}
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	workDir := b.opts.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	dir, err := os.MkdirTemp(workDir, "executor-rootfs-")
	if err != nil {
		return fmt.Errorf("create rootfs dir: %w", err)
	}
	defer b.removeRootfs(dir)
	// MkdirTemp makes the directory private; it becomes the image's "/".
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("create rootfs dir: %w", err)
	}

	if err := b.debootstrap(ctx, dir, mirror); err != nil {
		return err
	}
	if err := trimRootfs(dir); err != nil {
		return err
	}
	return b.importRootfs(ctx, dir, rootfs, hash)
}

// debootstrap installs a minimal Debian with the executor packages into dir,
// streaming its output to the progress writer.
func (b *Builder) debootstrap(ctx context.Context, dir, mirror string) error {
	cmd := exec.CommandContext(ctx, "debootstrap",
		"--variant=minbase",
		"--include="+strings.Join(executorPackages, ","),
		b.opts.DebianSuite, dir, mirror)
	// debootstrap is a shell script that runs wget, dpkg and chroot; on
	// cancellation the whole process group must go, or its children keep
	// writing into (and mounting inside) the directory being removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out := b.progress.lines("    debootstrap: ")
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("debootstrap: %w", ctx.Err())
		}
		return fmt.Errorf("debootstrap %s from %s failed (%v): %s", b.opts.DebianSuite, mirror, err, lastLines(out.tail, 3))
	}
	return nil
}

// trimRootfs removes apt's caches from the root filesystem: downloaded
// packages and package lists are not needed in the image (builds on top of
// it run apt-get update first) and would double its size.
func trimRootfs(dir string) error {
	for _, pattern := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"} {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return fmt.Errorf("trim rootfs: %w", err)
		}
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("trim rootfs: %w", err)
			}
		}
	}
	return nil
}

// importRootfs imports dir as the image ref: tar streams the tree (numeric
// owners, so the image does not depend on the host's user names) straight
// into the engine.
func (b *Builder) importRootfs(ctx context.Context, dir, ref, hash string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", dir, "-cf", "-", ".")
	var stderr strings.Builder
	tar.Stderr = &stderr
	stdout, err := tar.StdoutPipe()
	if err != nil {
		return fmt.Errorf("import rootfs: %w", err)
	}
	if err := tar.Start(); err != nil {
		return fmt.Errorf("import rootfs: start tar: %w", err)
	}
	changes := []string{"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if v := pythonVersionIn(dir); v != "" {
		// The same variable the official Python images set: what GET
		// /job-types reports as python_version.
		changes = append(changes, "ENV "+PythonVersionEnv+"="+v)
	}
	lbls := labels(kindExecutorRootfs, hash, "")
	for _, k := range sortedKeys(lbls) {
		changes = append(changes, fmt.Sprintf("LABEL %s=%s", k, lbls[k]))
	}
	body, err := b.docker.ImageImport(ctx, image.ImportSource{Source: stdout, SourceName: "-"}, ref, image.ImportOptions{
		Changes: changes,
		Message: "tako executor root filesystem (debootstrap)",
	})
	if err == nil {
		out := b.progress.lines("    ")
		err = displayStream(body, out)
		out.flush()
		body.Close()
	}
	if err != nil {
		cancel() // tar may be blocked writing to a reader nobody reads
		_ = tar.Wait()
		return fmt.Errorf("import rootfs: %w", err)
	}
	if err := tar.Wait(); err != nil {
		b.removeImage(ctx, ref)
		return fmt.Errorf("import rootfs: tar: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// removeRootfs removes a debootstrap target directory. debootstrap mounts
// /proc and /sys inside it while it runs and may leave them mounted when it
// fails; those are unmounted first so that removal never reaches into them.
func (b *Builder) removeRootfs(dir string) {
	mounts, _ := mountinfo.Under(dir) // none found: nothing to unmount
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			b.logger.Warn("unmount in rootfs failed", "path", m, "error", err)
			return // leave the directory rather than delete through a mount
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		b.logger.Warn("remove rootfs dir failed", "path", dir, "error", err)
	}
}

// pythonVersionIn returns the major.minor version of the Python 3 that a
// root filesystem holds, from its /usr/bin/python3.N, or "" when it holds
// none (or several, when it cannot tell which python3 is).
func pythonVersionIn(rootfs string) string {
	matches, _ := filepath.Glob(filepath.Join(rootfs, "usr", "bin", "python3.*"))
	version := ""
	for _, m := range matches {
		minor := strings.TrimPrefix(filepath.Base(m), "python3.")
		if minor == "" || strings.Trim(minor, "0123456789") != "" {
			continue // python3.11-config and the like
		}
		if version != "" {
			return ""
		}
		version = "3." + minor
	}
	return version
}
