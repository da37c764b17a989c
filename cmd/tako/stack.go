package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/jobs/postgres/localdb"
	"github.com/tako-run/tako/runner/images"
)

// The repositories of the images deploy/compose.yaml names besides
// tako-server; `tako image --stack` tags each with the server's tag.
const (
	stackPostgresRepo   = "tako-postgres"
	stackLBRepo         = "tako-lb"
	stackPrometheusRepo = "tako-prometheus"
)

// stackRecipeVersion is part of the hash of the load balancer's and
// Prometheus's images: bump it when a recipe changes in a way the hashed
// text does not show.
const stackRecipeVersion = "1"

// lbDockerfile renders the load balancer's image: Debian's nginx on the
// executor image from. Its configuration, deploy/lb/nginx.conf, comes from
// the stack (a compose or swarm config), so that editing it needs no
// rebuild; the image's own is Debian's, which serves nothing tako needs.
func lbDockerfile(from string) string {
	return fmt.Sprintf(`FROM %s
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
WORKDIR /
EXPOSE 8000
STOPSIGNAL SIGQUIT
ENTRYPOINT ["nginx", "-g", "daemon off;"]
`, from)
}

// lbVerifyScript checks that nginx runs and accepts Debian's configuration.
const lbVerifyScript = `nginx -t 2>&1 && nginx -v 2>&1 && echo tako-ok`

// prometheusDockerfile renders Prometheus's image: Debian's prometheus
// package on the executor image from, running as its prometheus user with
// its data in /var/lib/prometheus. The stack gives it its configuration
// (deploy/prometheus/stack.yml) and rules (deploy/prometheus/rules.yml).
func prometheusDockerfile(from string) string {
	return fmt.Sprintf(`FROM %s
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/prometheus/data \
 && chown -R prometheus:prometheus /var/lib/prometheus
USER prometheus
WORKDIR /var/lib/prometheus
VOLUME /var/lib/prometheus/data
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/data", "--web.listen-address=:9090"]
`, from)
}

// prometheusVerifyScript checks that Prometheus and promtool run and that
// promtool accepts a configuration that loads a rule file.
const prometheusVerifyScript = `set -e
cd "$(mktemp -d)"
printf 'groups: []\n' > rules.yml
printf 'rule_files: [rules.yml]\nscrape_configs: [{job_name: tako, dns_sd_configs: [{names: [api], type: A, port: 8000}]}]\n' > prometheus.yml
prometheus --version 2>&1
promtool check config prometheus.yml 2>&1
echo tako-ok`

// stackRef is the content-addressed tag of a stack image of repo built
// from dockerfile on the executor image whose ID is executorID.
func stackRef(repo, executorID, dockerfile string) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s\nbase=%s\n%s", stackRecipeVersion, executorID, dockerfile)
	return repo + ":" + hex.EncodeToString(h.Sum(nil))[:12]
}

// stackRecipe is one of the stack's images built on the executor image.
type stackRecipe struct {
	repo       string                   // the image's repository
	name       string                   // what it is, in errors
	kind       string                   // its tako.kind label
	pkg        string                   // the Debian package it runs
	dockerfile func(from string) string // its Dockerfile on the image from
	verify     string                   // a shell script that prints tako-ok
}

// stackRecipes are the images of deploy/compose.yaml that tako builds on
// its executor image.
var stackRecipes = []stackRecipe{
	{repo: stackLBRepo, name: "the load balancer's image", kind: "lb", pkg: "nginx", dockerfile: lbDockerfile, verify: lbVerifyScript},
	{repo: stackPrometheusRepo, name: "Prometheus's image", kind: "prometheus", pkg: "prometheus", dockerfile: prometheusDockerfile, verify: prometheusVerifyScript},
}

// buildStack builds (or finds) the images deploy/compose.yaml names besides
// the server's and tags each <repo>:<tag>: tako's PostgreSQL image
// (localdb.EnsureImage), the load balancer's (Debian's nginx) and
// Prometheus's (Debian's prometheus), the last two on the executor image,
// which it builds first when needed. Each image is built once under a
// content-addressed tag, so a second run only tags. It prints a line per
// image to out, "built <repo>:<tag> (<ref>) in <duration>" when done.
func buildStack(ctx context.Context, b *images.Builder, dc imageTagger, tag string, out io.Writer) error {
	tagAs := func(ref, repo string, began time.Time) error {
		final := repo + ":" + tag
		if err := dc.ImageTag(ctx, ref, final); err != nil {
			return fmt.Errorf("image: tag %s as %s: %w", ref, final, err)
		}
		fmt.Fprintf(out, "built %s (%s) in %s\n", final, ref, time.Since(began).Round(100*time.Millisecond))
		return nil
	}

	began := time.Now()
	fmt.Fprintf(out, "==> %s:%s: PostgreSQL\n", stackPostgresRepo, tag)
	// No image name: tako's own PostgreSQL, built from Debian's packages
	// unless it was built before; never a pull.
	ref, err := localdb.EnsureImage(ctx, b, "")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := tagAs(ref, stackPostgresRepo, began); err != nil {
		return err
	}

	executor, err := b.EnsureExecutor(ctx)
	if err != nil {
		return fmt.Errorf("image: executor image: %w", err)
	}
	executorID, ok, err := b.ImageID(ctx, executor)
	if err != nil {
		return fmt.Errorf("image: executor image: %w", err)
	}
	if !ok {
		return fmt.Errorf("image: executor image %s disappeared", executor)
	}
	for _, r := range stackRecipes {
		began := time.Now()
		fmt.Fprintf(out, "==> %s:%s: Debian's %s\n", r.repo, tag, r.pkg)
		dockerfile := r.dockerfile(executor)
		ref := stackRef(r.repo, executorID, r.dockerfile("executor"))
		err := b.BuildVerified(ctx, ref, images.Recipe{
			Name:       r.name,
			Kind:       r.kind,
			Headline:   fmt.Sprintf("building %s (Debian %s on %s)", ref, r.pkg, executor),
			Dockerfile: dockerfile,
			Verify: container.Config{
				Entrypoint: []string{"sh", "-c", r.verify},
				Cmd:        []string{},
				User:       "root",
			},
			VerifyHost: container.HostConfig{NetworkMode: "none"},
		})
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		if err := tagAs(ref, r.repo, began); err != nil {
			return err
		}
	}
	return nil
}

// imageTagger is the part of the Docker client buildStack uses.
type imageTagger interface {
	ImageTag(ctx context.Context, source, target string) error
}

// stackTag is the tag part of an image reference ("tako-server:1.0" ->
// "1.0"), the tag `tako image --stack` gives every image of the stack;
// "latest" when ref has none.
func stackTag(ref string) string {
	i := strings.LastIndexAny(ref, ":/")
	if i < 0 || ref[i] != ':' {
		return "latest"
	}
	return ref[i+1:]
}
