package images

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/jobtypes"
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

// lockImages makes test processes that build shared images take turns (the
// same lock file runnertest.ExecutorImage uses), so each image is built once.
func lockImages(t *testing.T) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "tako-test-images.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lock %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

func TestEnsurePostgres(t *testing.T) {
	cli := dockerClient(t)
	var progress syncBuffer
	b := newTestBuilder(t, cli, jobtypes.PipIndex{}, &progress)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	// Nothing can be pulled here, and in CI this name does not exist.
	const unpullable = "tako-test/no-such-postgres:none"

	lockImages(t)
	start := time.Now()
	ref, err := b.EnsurePostgres(ctx, unpullable)
	if err != nil {
		t.Fatalf("EnsurePostgres: %v", err)
	}
	t.Logf("first EnsurePostgres took %s", time.Since(start))
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
	info, ok, err := b.inspect(ctx, ref)
	if err != nil || !ok {
		t.Fatalf("inspect %s: %v (exists %v)", ref, err, ok)
	}
	if got := info.Config.Labels; got[labelManaged] != "true" || got[labelKind] != kindPostgres {
		t.Errorf("labels = %v, want tako.managed=true and tako.kind=postgres", got)
	}

	before := progress.String()
	start = time.Now()
	again, err := b.EnsurePostgres(ctx, unpullable)
	took := time.Since(start)
	if err != nil || again != ref {
		t.Fatalf("second EnsurePostgres = %q, %v; want %q", again, err, ref)
	}
	if after := progress.String(); after != before {
		t.Errorf("second EnsurePostgres did work:\n%s", strings.TrimPrefix(after, before))
	}
	t.Logf("second EnsurePostgres took %s", took)

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
				text, code, err := b.testRun(ctx, ref, &container.Config{
					Image:      ref,
					Entrypoint: []string{"bash", "-c", postgresVerifyScript},
					Env:        tc.env,
					Labels:     map[string]string{labelManaged: "true", labelKind: kindVerify},
				}, &container.HostConfig{NetworkMode: "none"})
				if err != nil {
					t.Fatal(err)
				}
				if (code == 0) != tc.ok || !strings.Contains(text, tc.want) {
					t.Errorf("exit code %d, output:\n%s\nwant ok=%v and %q", code, text, tc.ok, tc.want)
				}
			})
		}
	})
}
