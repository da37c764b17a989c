package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/images"
)

// doctorTimeout bounds each of doctor's probes.
const doctorTimeout = 10 * time.Second

// report collects doctor's findings and prints one line each.
type report struct {
	w        io.Writer
	failures int
	warnings int
}

func (r *report) ok(check, format string, args ...any) { r.line("ok  ", check, format, args...) }

func (r *report) warn(check, format string, args ...any) {
	r.warnings++
	r.line("warn", check, format, args...)
}

func (r *report) fail(check, format string, args ...any) {
	r.failures++
	r.line("FAIL", check, format, args...)
}

func (r *report) line(level, check, format string, args ...any) {
	fmt.Fprintf(r.w, "%s %-9s %s\n", level, check, fmt.Sprintf(format, args...))
}

// runDoctor checks what tako needs on this machine: the configuration,
// Docker, the container runtimes, the images, the database and the work
// directory. It prints a line per finding and returns an error when any
// check failed; warnings alone do not fail it.
func runDoctor(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("doctor", environ, stderr)
	if err := c.parse(args); err != nil {
		return err
	}
	r := &report{w: stdout}
	defer func() {
		fmt.Fprintf(stdout, "%d failed, %d warnings\n", r.failures, r.warnings)
	}()

	if err := c.load(); err != nil {
		r.fail("config", "%v", err)
		return errDoctor(r)
	}
	cfg, reg := c.cfg, c.reg
	source := cfg.Path
	if source == "" {
		source = "built-in defaults"
	}
	r.ok("config", "%s: %d job types (%s)", source, len(reg.Names()), strings.Join(reg.Names(), ", "))
	doctorAuth(r, cfg)
	work := doctorWorkDir(r, cfg, environ)

	if err := c.dialDocker(ctx); err != nil {
		r.fail("docker", "%v", err)
		r.fail("runtimes", "not checked: Docker does not answer")
		r.fail("images", "not checked: Docker does not answer")
		doctorDatabase(ctx, r, cfg, nil)
		return errDoctor(r)
	}
	defer c.close()
	dc := c.docker
	if doctorDocker(ctx, r, dc) && work != "" {
		b := newBuilder(dc, cfg, work, nil, nil, io.Discard)
		doctorRuntimes(ctx, r, dc, cfg, reg, b, work)
		doctorImages(ctx, r, b, reg)
	}
	doctorDatabase(ctx, r, cfg, dc)
	return errDoctor(r)
}

// errDoctor is doctor's result: nil unless a check failed.
func errDoctor(r *report) error {
	if r.failures == 0 {
		return nil
	}
	return fmt.Errorf("doctor: %d checks failed", r.failures)
}

// doctorAuth checks the API keys and who can reach the API.
func doctorAuth(r *report, cfg *config.Config) {
	keys, err := cfg.APIKeys()
	if err != nil {
		r.fail("auth", "%v", err)
		return
	}
	warning, err := checkBind(cfg.Server.Host, len(keys), cfg.Server.AllowUnauthenticatedNetworkAccess)
	switch {
	case err != nil:
		r.fail("auth", "%v", err)
	case warning != "":
		r.warn("auth", "%s", warning)
	case len(keys) == 0:
		r.ok("auth", "no API keys; the API listens on %s only", displayHost(cfg.Server.Host))
	default:
		admins := 0
		for _, k := range keys {
			if k.Admin() {
				admins++
			}
		}
		r.ok("auth", "%d API keys (%d admin); answers Host %s", len(keys), admins, strings.Join(cfg.AllowedHosts(true), ", "))
	}
}

// doctorWorkDir checks that the work directory exists or can be created,
// and is writable. It returns the directory, "" when there is none.
func doctorWorkDir(r *report, cfg *config.Config, environ []string) string {
	dir, err := workDir(cfg, environ)
	if err != nil {
		r.fail("work dir", "%v", err)
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.fail("work dir", "%s cannot be created: %v", dir, err)
		return dir
	}
	probe, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		r.fail("work dir", "%s is not writable: %v", dir, err)
		return dir
	}
	probe.Close()
	os.Remove(probe.Name())
	r.ok("work dir", "%s is writable", filepath.Clean(dir))
	return dir
}

// doctorDocker checks that the engine answers and lists its runtimes.
func doctorDocker(ctx context.Context, r *report, dc *client.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	info, err := dc.Info(ctx)
	if err != nil {
		r.fail("docker", "docker info: %v", err)
		return false
	}
	runtimes := slices.Sorted(maps.Keys(info.Runtimes))
	r.ok("docker", "engine %s, API %s, storage driver %s, cgroup v%s, runtimes %s", info.ServerVersion, dc.ClientVersion(), info.Driver, info.CgroupVersion, strings.Join(runtimes, ", "))
	return true
}

// doctorRuntimes checks gVisor the way tako server does at start-up: the
// engine has runner.gvisor_runtime, registered with the arguments tako's
// transport needs, and a probe container under it runs Python through the
// real transport. It says which runtime each job type will run under, and
// prints the daemon.json fix when the probe fails.
func doctorRuntimes(ctx context.Context, r *report, dc *client.Client, cfg *config.Config, reg *jobtypes.Registry, b *images.Builder, work string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	refs := map[string]string{}
	for _, jt := range reg.All() {
		if ref, exists, err := b.Lookup(ctx, jt); err == nil && exists {
			refs[jt.Name] = ref
		}
	}
	probe := runner.New(dc, runner.Options{
		GVisor:  gvisorOptions(cfg, refs),
		Images:  refs,
		Limits:  outputLimits(cfg),
		WorkDir: work,
	}, slog.New(slog.DiscardHandler))
	if err := probe.Start(ctx); err != nil {
		r.fail("runtimes", "cannot probe the runtimes: %v", err)
		return
	}
	defer probe.Stop()
	h := probe.Health(ctx)
	switch {
	case h.GVisorAvailable:
		r.ok("runtimes", "gVisor runtime %s passed its probe: it runs Python through tako's transport", h.GVisorRuntime)
	case h.GVisorInstalled:
		r.fail("runtimes", "gVisor runtime %s is registered but unusable: %s; fix: %s", h.GVisorRuntime, h.GVisorReason, h.GVisorFix)
	default:
		r.warn("runtimes", "gVisor is not installed (%s): %s", h.GVisorReason, h.GVisorFix)
	}
	for _, jt := range reg.All() {
		a := probe.Availability(jt)
		switch {
		case a.Runtime == "" && jt.SecurityMode == jobtypes.Strict:
			r.fail("runtimes", "job type %s is strict and cannot run: %s", jt.Name, a.Reason)
		case a.Runtime == "":
			r.fail("runtimes", "job type %s cannot run: %s", jt.Name, a.Reason)
		case a.Runtime == "runc" && jt.Runtime == jobtypes.RuntimeAuto:
			r.warn("runtimes", "job type %s runs under runc, which shares the host kernel with untrusted code", jt.Name)
		default:
			r.ok("runtimes", "job type %s runs under %s", jt.Name, a.Runtime)
		}
	}
}

// doctorImages checks that every job type's image is built, without
// building anything.
func doctorImages(ctx context.Context, r *report, b *images.Builder, reg *jobtypes.Registry) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	for _, jt := range reg.All() {
		ref, exists, err := b.Lookup(ctx, jt)
		switch {
		case err != nil:
			r.fail("images", "job type %s: %v", jt.Name, err)
		case !exists:
			r.fail("images", "job type %s: its image is not built; run `tako setup`", jt.Name)
		default:
			r.ok("images", "job type %s: %s", jt.Name, ref)
		}
	}
}

// doctorDatabase connects to database.url, or looks at the auto-started
// container when there is none. dc may be nil when Docker is down.
func doctorDatabase(ctx context.Context, r *report, cfg *config.Config, dc *client.Client) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	if url := cfg.Database.URL; url != "" {
		pool, err := postgres.Connect(ctx, url, 2)
		if err != nil {
			r.fail("database", "%v", err) // Connect's errors leave the password out
			return
		}
		defer pool.Close()
		var server string
		if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&server); err != nil {
			r.fail("database", "query: %v", err)
			return
		}
		r.ok("database", "PostgreSQL %s answers", server)
		return
	}
	a := cfg.Database.AutoStart
	if dc == nil {
		r.fail("database", "no database.url, and the %s container cannot be checked without Docker", a.Container)
		return
	}
	info, err := dc.ContainerInspect(ctx, a.Container)
	switch {
	case cerrdefs.IsNotFound(err):
		r.ok("database", "no database.url: tako server will create the %s container on 127.0.0.1:%d", a.Container, a.Port)
	case err != nil:
		r.fail("database", "inspect the %s container: %v", a.Container, err)
	case info.State == nil || !info.State.Running:
		r.warn("database", "the %s container exists but is stopped; tako server starts it", a.Container)
	default:
		r.ok("database", "the %s container is running (127.0.0.1:%d)", a.Container, a.Port)
	}
}
