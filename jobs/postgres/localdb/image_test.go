package localdb

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/runner/images"
	"github.com/tako-run/tako/runner/runnertest"
)

func TestPostgresRef(t *testing.T) {
	t.Parallel()
	ref := postgresRef("sha256:aaa")
	if !strings.HasPrefix(ref, "tako-postgres:") || len(ref) != len("tako-postgres:")+12 {
		t.Fatalf("ref = %q, want tako-postgres:<12 hex digits>", ref)
	}
	if postgresRef("sha256:aaa") != ref {
		t.Error("ref is not stable")
	}
	if postgresRef("sha256:bbb") == ref {
		t.Error("another executor image kept the ref")
	}
}

func TestPostgresDockerfile(t *testing.T) {
	t.Parallel()
	df := postgresDockerfile("tako-executor:abc")
	for _, want := range []string{
		"FROM tako-executor:abc\n",
		"apt-get install -y --no-install-recommends postgresql-15",
		"rm -rf /var/lib/apt/lists/*",
		"COPY tako-postgres-entrypoint /usr/local/bin/tako-postgres-entrypoint\n",
		"PGDATA=/var/lib/postgresql/data",
		`ENTRYPOINT ["tako-postgres-entrypoint"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, df)
		}
	}
	if !strings.HasPrefix(postgresEntrypoint, "#!/bin/bash\n") {
		t.Error("entrypoint script has no bash shebang")
	}
}

// testRun runs a container made from cfg and hostCfg to its end, removes
// it, and returns its combined output and exit code.
func testRun(t *testing.T, ctx context.Context, dc *client.Client, cfg *container.Config, hostCfg *container.HostConfig) (string, int64) {
	t.Helper()
	created, err := dc.ContainerCreate(ctx, cfg, hostCfg, nil, nil, "")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = dc.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true})
	}()
	waitCh, waitErrCh := dc.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := dc.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	var code int64
	select {
	case res := <-waitCh:
		code = res.StatusCode
	case err := <-waitErrCh:
		t.Fatalf("wait: %v", err)
	}
	logs, err := dc.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatalf("read logs: %v", err)
	}
	return strings.TrimSpace(out.String()), code
}

func TestEnsureImage(t *testing.T) {
	dc := runnertest.Docker(t)
	var progress testsync.Buffer
	b := images.NewBuilder(dc, images.Options{
		BaseImage:    "debian:bookworm-slim",
		BuildTimeout: 15 * time.Minute,
		DebianSuite:  "bookworm",
		Executor:     "tako-executor",
		WorkDir:      t.TempDir(),
	}, testLogger(t), &progress)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// Nothing can be pulled here, and in CI this name does not exist.
	const unpullable = "tako-test/no-such-postgres:none"

	testsync.LockImages(t)
	start := time.Now()
	ref, err := EnsureImage(ctx, b, unpullable)
	if err != nil {
		t.Fatalf("EnsureImage: %v", err)
	}
	t.Logf("first EnsureImage took %s", time.Since(start))
	if !strings.HasPrefix(ref, "tako-postgres:") {
		t.Fatalf("ref = %q, want tako-postgres:<hash>", ref)
	}
	if out := progress.String(); strings.Contains(out, "==> building PostgreSQL image") {
		for _, want := range []string{
			"building PostgreSQL from Debian packages instead",
			"==> building PostgreSQL image " + ref + " (Debian postgresql-15)",
			"==> verifying " + ref,
			"==> ok " + ref,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("progress lacks %q:\n%s", want, out)
			}
		}
	}
	info, err := dc.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	if got := info.Config.Labels; got["tako.managed"] != "true" || got["tako.kind"] != kindPostgres {
		t.Errorf("labels = %v, want tako.managed=true and tako.kind=postgres", got)
	}

	before := progress.String()
	start = time.Now()
	again, err := EnsureImage(ctx, b, unpullable)
	took := time.Since(start)
	if err != nil || again != ref {
		t.Fatalf("second EnsureImage = %q, %v; want %q", again, err, ref)
	}
	if after := progress.String(); after != before {
		t.Errorf("second EnsureImage did work:\n%s", strings.TrimPrefix(after, before))
	}
	t.Logf("second EnsureImage took %s", took)

	// The entrypoint follows the official image's contract beyond tako's
	// own use: another superuser whose name is the default database, and a
	// clear refusal without a password.
	t.Run("contract", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			ok   bool
			want string
		}{
			{"custom user", []string{"POSTGRES_USER=alice", "POSTGRES_PASSWORD=s3cret 'q\""}, true, "tako-ok"},
			{"no password", nil, false, "POSTGRES_PASSWORD is not set"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				text, code := testRun(t, ctx, dc, &container.Config{
					Image:      ref,
					Entrypoint: []string{"bash", "-c", postgresVerifyScript},
					Env:        tc.env,
					Labels:     map[string]string{"tako.managed": "true", "tako.kind": "image_verify"},
				}, &container.HostConfig{NetworkMode: "none"})
				if (code == 0) != tc.ok || !strings.Contains(text, tc.want) {
					t.Errorf("exit code %d, output:\n%s\nwant ok=%v and %q", code, text, tc.ok, tc.want)
				}
			})
		}
	})
}
