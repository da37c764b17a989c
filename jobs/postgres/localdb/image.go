package localdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/runner/images"
)

// ImageBuilder is the part of tako's image builder EnsureImage uses;
// *images.Builder satisfies it.
type ImageBuilder interface {
	BuildVerified(ctx context.Context, ref string, r images.Recipe) error
	EnsureExecutor(ctx context.Context) (string, error)
	ExecutorRef() string
	ImageID(ctx context.Context, ref string) (id string, exists bool, err error)
	Logger() *slog.Logger
	Progressf(format string, args ...any)
	Pull(ctx context.Context, ref string) error
}

// postgresEntrypoint is the entrypoint script of tako's PostgreSQL image. It
// honours the official postgres image's environment contract
// (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA).
//
//go:embed postgres-entrypoint.sh
var postgresEntrypoint string

// Names and versions of tako's PostgreSQL image.
const (
	// postgresRepo is the repository of tako's PostgreSQL image.
	postgresRepo = "tako-postgres"
	// postgresMajor is the PostgreSQL major version Debian bookworm ships.
	postgresMajor = "15"
	// postgresRecipeVersion is part of the image's hash: bump it when the
	// recipe changes in a way the hashed text does not show.
	postgresRecipeVersion = "1"
	// postgresEntrypointPath is where the entrypoint script lives in the
	// image; its base name is also its name in the build context.
	postgresEntrypointPath = "/usr/local/bin/tako-postgres-entrypoint"

	// kindPostgres is the image's tako.kind label and its build kind in
	// the metrics (metrics.BuildPostgres).
	kindPostgres = "postgres"
)

// postgresDockerfile renders the Dockerfile of tako's PostgreSQL image on
// top of the executor image from. The Debian package's own cluster is not
// created: the entrypoint initialises PGDATA on first start, as the official
// image does.
func postgresDockerfile(from string) string {
	return fmt.Sprintf(`FROM %[1]s
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-%[2]s \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY tako-postgres-entrypoint %[3]s
ENV PATH=$PATH:/usr/lib/postgresql/%[2]s/bin PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["tako-postgres-entrypoint"]
CMD ["postgres"]
`, from, postgresMajor, postgresEntrypointPath)
}

// postgresRef is the tag of tako's PostgreSQL image built on the executor
// image whose ID is executorID: "tako-postgres:<hash>", the hash covering
// the recipe version, the executor's ID, the Dockerfile and the entrypoint.
func postgresRef(executorID string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\nbase=%s\n%s\n%s",
		postgresRecipeVersion, executorID, postgresDockerfile("executor"), postgresEntrypoint)
	return postgresRepo + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// EnsureImage returns the ref of an image that runs PostgreSQL with the
// official postgres image's environment contract (POSTGRES_PASSWORD,
// POSTGRES_USER, POSTGRES_DB, PGDATA; data in /var/lib/postgresql/data,
// port 5432). That is image (config database.auto_start.image, e.g.
// "postgres:16-alpine") when it exists locally; otherwise tako's own
// "tako-postgres:<hash>" when it was built before; otherwise image when it
// can be pulled; otherwise it builds and verifies tako-postgres from
// Debian's postgresql-15 on the executor image, through b, building the
// executor first when needed. An already-built tako-postgres is preferred
// to a pull so that a host keeps one PostgreSQL major version for its data
// volume and does not ask a registry on every start. An empty image skips
// the pull. Concurrent calls share one build. An unreachable Docker engine
// is an *images.UnreachableError.
func EnsureImage(ctx context.Context, b ImageBuilder, image string) (ref string, err error) {
	ref, err = ensureImage(ctx, b, image)
	return ref, unreachable(err)
}

// ensureImage is EnsureImage without the final say on an unreachable
// engine.
func ensureImage(ctx context.Context, b ImageBuilder, image string) (string, error) {
	if image != "" {
		if _, ok, err := b.ImageID(ctx, image); err != nil || ok {
			return image, err
		}
	}
	executorID, ok, err := b.ImageID(ctx, b.ExecutorRef())
	if err != nil {
		return "", err
	}
	if ok {
		ref := postgresRef(executorID)
		if _, ok, err := b.ImageID(ctx, ref); err != nil || ok {
			return ref, err
		}
	}
	if image != "" {
		err := b.Pull(ctx, image)
		if err == nil {
			return image, nil
		}
		if images.IsUnreachable(err) || ctx.Err() != nil {
			return "", fmt.Errorf("pull %s: %w", image, err)
		}
		b.Logger().Info("postgres image not available, building from Debian packages", "image", image, "error", err)
		b.Progressf("==> %s is not available (%v); building PostgreSQL from Debian packages instead", image, err)
	}

	executor, err := b.EnsureExecutor(ctx)
	if err != nil {
		return "", fmt.Errorf("build postgres image: %w", err)
	}
	executorID, ok, err = b.ImageID(ctx, executor)
	if err != nil {
		return "", fmt.Errorf("build postgres image: %w", err)
	}
	if !ok {
		return "", fmt.Errorf("build postgres image: executor image %s disappeared", executor)
	}
	ref := postgresRef(executorID)
	return ref, b.BuildVerified(ctx, ref, postgresRecipe(executor, ref))
}

// unreachable returns an unreachable engine's *images.UnreachableError
// alone, as the builder's own methods do: its one sentence replaces the
// context it was wrapped in. Other errors pass through.
func unreachable(err error) error {
	var u *images.UnreachableError
	if errors.As(err, &u) {
		return u
	}
	return err
}

// postgresRecipe is tako's PostgreSQL image ref, built FROM executor and
// verified by starting it with a random password.
func postgresRecipe(executor, ref string) images.Recipe {
	return images.Recipe{
		Name:       "postgres image",
		Kind:       kindPostgres,
		Headline:   fmt.Sprintf("building PostgreSQL image %s (Debian postgresql-%s)", ref, postgresMajor),
		Dockerfile: postgresDockerfile(executor),
		Files:      map[string]string{"tako-postgres-entrypoint": postgresEntrypoint},
		// The server comes up and answers "select 1" over TCP with the
		// password. The container has no network but its own loopback.
		Verify: container.Config{
			Entrypoint:      []string{"bash", "-c", postgresVerifyScript},
			Env:             []string{"POSTGRES_PASSWORD=" + rand.Text(), "POSTGRES_DB=tako_verify"},
			NetworkDisabled: true,
		},
		VerifyHost: container.HostConfig{
			NetworkMode: "none",
			Resources: container.Resources{
				Memory:    1 << 30,
				PidsLimit: ptr(int64(256)),
			},
		},
	}
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// postgresVerifyScript starts the server through the image's entrypoint,
// as a container of the image would, waits until it accepts TCP
// connections, runs "select 1" as the superuser with the password over TCP
// in the database the entrypoint created (both following the official
// image's defaults), checks that a wrong password is
// refused, stops the server and prints a marker.
const postgresVerifyScript = `set -u
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
tako-postgres-entrypoint postgres &
pid=$!
ready=
for _ in $(seq 1 120); do
	if pg_isready -q -h 127.0.0.1 -p 5432; then ready=1; break; fi
	if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; echo "the server exited with code $? before accepting connections"; exit 1; fi
	sleep 0.5
done
[ -n "$ready" ] || { echo "the server did not accept connections within 60s"; exit 1; }
out=$(PGPASSWORD="$POSTGRES_PASSWORD" psql -X -h 127.0.0.1 -U "$user" -d "$db" -tAc 'select 1' 2>&1) || { echo "select 1 failed: $out"; exit 1; }
[ "$out" = 1 ] || { echo "select 1 returned: $out"; exit 1; }
if PGPASSWORD="wrong-$POSTGRES_PASSWORD" psql -X -h 127.0.0.1 -U "$user" -d "$db" -tAc 'select 1' >/dev/null 2>&1; then
	echo "a wrong password was accepted"; exit 1
fi
kill -INT "$pid"
wait "$pid" || { echo "the server did not stop cleanly (code $?)"; exit 1; }
echo tako-ok`
