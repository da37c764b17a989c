package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// baselineBenchmark runs each job as the original does: a fresh workspace
// output directory and one `docker run --rm` with the original's hardening
// flags and the job type's limits. The code and the input are written once,
// to a temporary directory that cleanup removes.
func baselineBenchmark(cfg Config, lim Limits) (benchmark, func(), error) {
	dir, err := os.MkdirTemp("", "tako-bench-")
	if err != nil {
		return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	// The container runs as uid 1000, and tako may run as root with a
	// private umask: the workspace must be readable by anyone.
	files := []struct {
		path, content string
	}{{"code/main.py", cfg.Code}, {"input/data.json", "{}"}}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, []byte(f.content), 0o444)
		}
		if err == nil {
			err = os.Chmod(filepath.Dir(p), 0o755)
		}
		if err == nil {
			err = os.Chmod(p, 0o444)
		}
		if err != nil {
			cleanup()
			return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanup()
		return benchmark{}, nil, fmt.Errorf("baseline workspace: %w", err)
	}
	var seq atomic.Int64
	do := func(ctx context.Context) sample {
		t0 := time.Now()
		out := filepath.Join(dir, fmt.Sprintf("output-%d", seq.Add(1)))
		if err := os.Mkdir(out, 0o777); err != nil {
			return sample{latency: time.Since(t0), err: &requestError{kind: "workspace", detail: err.Error()}}
		}
		defer os.RemoveAll(out)
		os.Chmod(out, 0o777) // past the umask: uid 1000 writes here
		name := "tako-bench-" + randHex(6)
		args := baselineArgs(name, cfg.Image, dir, out, lim)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		lat := time.Since(t0)
		if ctx.Err() != nil {
			// Killing the CLI does not stop the container: remove it.
			rmCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			exec.CommandContext(rmCtx, "docker", "rm", "-f", name).Run()
			cancel()
			return coldSample(lat, ctx.Err())
		}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			return coldSample(lat, &requestError{kind: fmt.Sprintf("exit %d", exitErr.ExitCode()), detail: stderr.String()})
		case err != nil:
			return coldSample(lat, &requestError{kind: "docker", detail: err.Error()})
		case strings.TrimSpace(stdout.String()) == "":
			return coldSample(lat, &requestError{kind: "empty stdout", detail: stderr.String()})
		}
		return coldSample(lat, nil)
	}
	return benchmark{name: "baseline", do: do}, cleanup, nil
}

// coldSample is a baseline job's sample: every one starts a container.
func coldSample(lat time.Duration, err error) sample {
	return sample{latency: lat, start: "cold", err: err}
}

// baselineArgs is the docker CLI argv of one baseline job: the original's
// hardening flags, the job type's limits, the workspace in dir (code and
// input, read-only) and out (output), then python3 -u /code/main.py.
func baselineArgs(name, image, dir, out string, lim Limits) []string {
	args := []string{"run", "--rm", "--name", name,
		"--network=none", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"}
	if lim.MemoryBytes > 0 {
		mem := strconv.FormatInt(lim.MemoryBytes, 10)
		args = append(args, "--memory="+mem, "--memory-swap="+mem)
	}
	if lim.CPUs > 0 {
		args = append(args, "--cpus="+strconv.FormatFloat(lim.CPUs, 'f', -1, 64))
	}
	if lim.Pids > 0 {
		args = append(args, "--pids-limit="+strconv.FormatInt(lim.Pids, 10))
	}
	return append(args,
		"--ulimit", "nofile=256:256",
		"--ulimit", "fsize=104857600",
		"--tmpfs", "/tmp:rw,noexec,nosuid,size=64m",
		"--user", "1000:1000",
		"--init",
		"--label", "tako.managed=true",
		"--label", "tako.kind=bench-baseline",
		"-v", filepath.Join(dir, "code")+":/code:ro",
		"-v", filepath.Join(dir, "input")+":/input:ro",
		"-v", out+":/output:rw",
		image, "python3", "-u", "/code/main.py")
}

// randHex returns n random bytes in hex: a unique container name suffix.
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
