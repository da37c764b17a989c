package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobtypes"
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
	f := newFlags("doctor", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	r := &report{w: stdout}
	defer func() {
		fmt.Fprintf(stdout, "%d failed, %d warnings\n", r.failures, r.warnings)
	}()

	cfg, err := f.load(environ)
	if err != nil {
		r.fail("config", "%v", err)
		return errDoctor(r)
	}
	reg, err := cfg.Registry()
	if err != nil {
		r.fail("config", "%v", err)
		return errDoctor(r)
	}
	source := cfg.Path
	if source == "" {
		source = "built-in defaults"
	}
	r.ok("config", "%s: %d job types (%s)", source, len(reg.Names()), strings.Join(reg.Names(), ", "))
	doctorAuth(r, cfg)
	work := doctorWorkDir(r, cfg, environ)

	dc, err := dockerClient(ctx, environ)
	if err != nil {
		r.fail("docker", "%v", err)
		r.fail("runtimes", "not checked: Docker does not answer")
		r.fail("images", "not checked: Docker does not answer")
		doctorDatabase(ctx, r, cfg, nil)
		return errDoctor(r)
	}
	defer dc.Close()
	doctorDocker(ctx, r, dc, reg)
	if work != "" {
		doctorImages(ctx, r, newBuilder(dc, cfg, work, nil, nil, io.Discard), reg)
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

// doctorDocker checks the engine and its runtimes against the job types'
// security modes.
func doctorDocker(ctx context.Context, r *report, dc *client.Client, reg *jobtypes.Registry) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	info, err := dc.Info(ctx)
	if err != nil {
		r.fail("docker", "docker info: %v", err)
		return
	}
	r.ok("docker", "engine %s, API %s, storage driver %s, cgroup v%s", info.ServerVersion, dc.ClientVersion(), info.Driver, info.CgroupVersion)
	runtimes := make([]string, 0, len(info.Runtimes))
	for name := range info.Runtimes {
		runtimes = append(runtimes, name)
	}
	sort.Strings(runtimes)
	if _, ok := info.Runtimes["runsc"]; ok {
		r.ok("runtimes", "gVisor (runsc) is installed; runtimes: %s", strings.Join(runtimes, ", "))
		return
	}
	var strict, permissive []string
	for _, jt := range reg.All() {
		if jt.SecurityMode == jobtypes.Strict {
			strict = append(strict, jt.Name)
		} else {
			permissive = append(permissive, jt.Name)
		}
	}
	for _, name := range strict {
		r.fail("runtimes", "job type %s is strict but gVisor (runsc) is not installed: it cannot run; install gVisor or set its security_mode to permissive", name)
	}
	if len(permissive) > 0 {
		r.warn("runtimes", "gVisor (runsc) is not installed (runtimes: %s): %s run under runc, which shares the host kernel with untrusted code", strings.Join(runtimes, ", "), strings.Join(permissive, ", "))
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
