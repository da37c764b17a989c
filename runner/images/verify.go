package images

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// verifyScript imports the modules named in argv and prints a marker. The
// modules travel as arguments, never as code.
const verifyScript = `import sys, importlib
for m in sys.argv[1:]:
    importlib.import_module(m)
print('tako-ok', tuple(sys.version_info[:2]))`

// verifyTimeout bounds one verification run; importing a heavy module on a
// cold cache can take a while.
const verifyTimeout = 2 * time.Minute

// verify runs a hardened container from ref, as tako runs user code (an
// unprivileged uid, no network, read-only root, no capabilities, no new
// privileges), that imports the preload modules. It fails unless the run exits 0 and
// prints the marker; the error quotes the container's output.
func (b *Builder) verify(ctx context.Context, ref string, preload []string) error {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	cmd := append([]string{"python3", "-c", verifyScript}, preload...)
	text, code, err := b.testRun(ctx, ref, &container.Config{
		Image:           ref,
		Cmd:             cmd,
		User:            uidUser(b.opts.BuildUID),
		NetworkDisabled: true,
		Labels:          map[string]string{labelManaged: "true", labelKind: kindVerify},
	}, &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Tmpfs:          map[string]string{"/tmp": "rw,noexec,nosuid,size=16m"},
		Resources: container.Resources{
			Memory:    1 << 30,
			PidsLimit: ptr(int64(128)),
		},
	})
	if err != nil {
		return err
	}
	if code != 0 || !strings.Contains(text, "tako-ok") {
		return fmt.Errorf("verify %s: test run exited with code %d: %s", ref, code, quoteOutput(text))
	}
	return nil
}

// testRun runs a container made from cfg and hostCfg to its end and returns
// its combined output (capped, trimmed) and exit code. ctx bounds the run;
// the container is removed on every path.
func (b *Builder) testRun(ctx context.Context, ref string, cfg *container.Config, hostCfg *container.HostConfig) (string, int64, error) {
	text, code, _, err := b.runContainer(ctx, cfg, hostCfg, false)
	if err != nil {
		return "", 0, fmt.Errorf("verify %s: %w", ref, err)
	}
	return text, code, nil
}

// runContainer runs a container made from cfg and hostCfg to its end and
// returns its combined output (capped, trimmed) and exit code. ctx bounds
// the run. The container is removed on every path, unless keep is set and
// it ran: then its id is returned and the caller removes it.
func (b *Builder) runContainer(ctx context.Context, cfg *container.Config, hostCfg *container.HostConfig, keep bool) (string, int64, string, error) {
	created, err := b.docker.ContainerCreate(ctx, cfg, hostCfg, nil, nil, "")
	if err != nil {
		return "", 0, "", fmt.Errorf("create container: %w", err)
	}
	kept := false
	defer func() {
		if !kept {
			b.removeContainer(ctx, created.ID)
		}
	}()

	attach, err := b.docker.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return "", 0, "", fmt.Errorf("attach: %w", err)
	}
	defer attach.Close()
	waitCh, waitErrCh := b.docker.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := b.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", 0, "", fmt.Errorf("start container: %w", err)
	}
	var out limitedBuffer
	out.limit = stepOutputLimit
	if _, err := stdcopy.StdCopy(&out, &out, attach.Reader); err != nil && ctx.Err() == nil {
		return "", 0, "", fmt.Errorf("read output: %w", err)
	}

	var code int64
	select {
	case res := <-waitCh:
		if res.Error != nil {
			return "", 0, "", fmt.Errorf("wait: %s", res.Error.Message)
		}
		code = res.StatusCode
	case err := <-waitErrCh:
		if ctx.Err() != nil {
			return "", 0, "", fmt.Errorf("no answer in time: %w", ctx.Err())
		}
		return "", 0, "", fmt.Errorf("wait: %w", err)
	}
	kept = keep
	return strings.TrimSpace(out.String()), code, created.ID, nil
}

// quoteOutput condenses a test run's output for an error message: the last
// lines, where Python puts the exception.
func quoteOutput(text string) string {
	if text == "" {
		return "(no output)"
	}
	return lastLines(strings.Split(text, "\n"), 4)
}

// removeContainer force-removes a container, treating "not found" as done.
// It runs even when ctx is cancelled, since it cleans up.
func (b *Builder) removeContainer(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := b.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		b.logger.Warn("remove container failed", "container_id", id, "error", err)
	}
}

// limitedBuffer keeps the first limit bytes written to it and drops the
// rest, so a runaway test run cannot exhaust memory.
type limitedBuffer struct {
	bytes.Buffer
	limit int
}

// Write implements io.Writer; it never fails.
func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.limit - l.Len(); room > 0 {
		if len(p) > room {
			l.Buffer.Write(p[:room])
		} else {
			l.Buffer.Write(p)
		}
	}
	return len(p), nil
}

func ptr[T any](v T) *T { return &v }
