package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/docker/docker/client"

	"github.com/tako-run/tako/api"
	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/dispatch"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/egress"
	"github.com/tako-run/tako/runner/images"
)

// shutdownGrace is how long running jobs get to finish when the server stops.
const shutdownGrace = 30 * time.Second

func runServer(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newFlags("server", stderr)
	f.key("host", "server.host", "address to listen on (default 127.0.0.1)")
	f.key("port", "server.port", "port to listen on (default 8000; 0 picks a free port)")
	f.key("workers", "runner.max_concurrent", "jobs run at once on this node (runner.max_concurrent; Tako VM's --workers)")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := f.load(environ)
	if err != nil {
		return err
	}
	reg, err := cfg.Registry()
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	keys, err := cfg.APIKeys()
	if err != nil {
		return err
	}
	exposure, err := checkBind(cfg.Server.Host, len(keys), cfg.Server.AllowUnauthenticatedNetworkAccess)
	if err != nil {
		return err
	}
	var warnings []string
	if exposure != "" {
		logger.Warn(exposure)
		fmt.Fprintf(stderr, "WARNING: %s\n", exposure)
		warnings = append(warnings, exposure)
	}
	work, err := workDir(cfg, environ)
	if err != nil {
		return err
	}
	dc, err := dockerClient(ctx, environ)
	if err != nil {
		return err
	}
	defer dc.Close()

	m := metrics.New(version)
	instance := runner.NewInstanceID()
	b := newBuilder(dc, cfg, work, m, logger, stderr)
	set, err := prepareImages(ctx, b, reg)
	if err != nil {
		return err
	}
	for name, reason := range set.errors {
		logger.Error("job type unavailable: its image could not be built", "job_type", name, "reason", reason)
	}
	pool, err := openDatabase(ctx, dc, b, cfg, work, logger, stderr)
	if err != nil {
		return err
	}
	defer pool.Close()

	uidFirst, uidCount, _ := config.ParseUIDRange(cfg.Runner.UIDRange) // validated
	run := runner.New(dc, runner.Options{
		AcquireTimeout: cfg.Runner.AcquireTimeout.Std(),
		GVisor:         gvisorOptions(cfg, set.refs),
		ImageErrors:    set.errors,
		Images:         set.refs,
		PythonVersions: set.python,
		InstanceID:     instance,
		JobTypes:       reg.All(),
		Limits:         outputLimits(cfg),
		MaxConcurrent:  cfg.Runner.MaxConcurrent,
		Metrics:        m,
		ReapInterval:   cfg.Runner.ReapInterval.Std(),
		RequirementCache: runner.CacheLimits{
			MaxBytes:  int64(cfg.Requirements.Cache.MaxBytes),
			MaxImages: cfg.Requirements.Cache.MaxImages,
		},
		Requirements: b,
		UIDs:         runner.UIDRange{First: uidFirst, Count: uidCount},
		WorkDir:      work,
	}, logger)
	if err := run.Start(ctx); err != nil {
		return err
	}
	defer run.Stop()
	// The egress gateway is labelled with the instance's lock, which Start
	// took: another node's reaper leaves it alone from the first moment.
	if g, err := egress.Start(ctx, dc, egress.Options{Instance: instance, LockPath: runner.LockPath(work, instance), Logger: logger}); err != nil {
		logger.Error("egress gateway unavailable: requests with requirements will be refused", "error", err)
	} else {
		defer g.Close()
		b.SetEgress(g)
	}
	for _, jt := range reg.All() {
		if a := run.Availability(jt); !a.Available {
			logger.Warn("job type unavailable", "job_type", jt.Name, "reason", a.Reason)
		}
	}

	svc, err := dispatch.New(pool, reg, run, dispatch.Options{
		BuildTimeout: cfg.Images.BuildTimeout.Std(),
		Heartbeat:    cfg.Cluster.HeartbeatInterval.Std(),
		NodeTimeout:  cfg.Cluster.NodeTimeout.Std(),
		MaxAttempts:  cfg.Queue.MaxAttempts,
		MaxPending:   cfg.Queue.MaxPending,
		Metrics:      m,
		Node:         run.InstanceID(),
		Quotas:       quotas(keys),
		RescueAfter:  cfg.Rescue(),
		Retention:    time.Duration(cfg.Queue.RetentionDays) * 24 * time.Hour,
	}, logger)
	if err != nil {
		return err
	}
	// Not ctx: cancelling River's start context cancels running jobs at
	// once, and a signal should drain them instead (see below).
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}

	sampling := startSampling(ctx, cfg, m, reg, run, svc, b, logger)
	defer sampling()

	var served *metrics.Metrics
	if cfg.Metrics.Enabled {
		served = m
	}
	srv := api.New(api.Options{
		AllowedHosts: cfg.AllowedHosts(len(keys) > 0),
		Auth: api.Auth{
			Header:      cfg.Auth.Header,
			Keys:        apiKeys(keys),
			OpenMetrics: !cfg.Metrics.RequireAuth,
		},
		CORSOrigins: cfg.Server.CORSOrigins,
		Limits: api.Limits{
			MaxBodyBytes:  int64(cfg.Server.MaxBodyBytes),
			MaxCodeBytes:  int64(cfg.Limits.MaxCodeBytes),
			MaxInputBytes: int64(cfg.Limits.MaxInputBytes),
			MaxTimeout:    cfg.Limits.MaxTimeout.Std(),
			AdHocDisabled: !cfg.Requirements.AllowAdHoc,
		},
		Logger:    logger,
		Metrics:   served,
		RateLimit: api.RateLimit{PerSecond: cfg.Server.RateLimit.RequestsPerSecond, Burst: cfg.Server.RateLimit.Burst},
		Registry:  reg,
		Runner:    run,
		Service:   svc,
		Version:   version,
		Warnings:  warnings,
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.Port)))
	if err != nil {
		svc.Stop(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "instance", run.InstanceID(), "job_types", reg.Names())
	fmt.Fprintf(stdout, "tako %s serving on http://%s\n", version, ln.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		svc.Stop(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Stop taking requests, then stop claiming jobs and let the running
	// ones finish until the deadline; the queue cancels the rest and puts
	// them back for the next node. Deferred: the runner, then the database.
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "error", err)
	}
	svc.Stop(shutdownCtx)
	return nil
}

// apiKeys is the API's view of the configured keys: who they are and who
// is an admin.
func apiKeys(keys map[string]config.APIKey) map[string]api.Key {
	out := make(map[string]api.Key, len(keys))
	for name, k := range keys {
		out[name] = api.Key{Secret: k.Key, Admin: k.Admin()}
	}
	return out
}

// quotas is the job service's view of the configured keys: what each may
// have queued and running.
func quotas(keys map[string]config.APIKey) map[string]jobs.Quota {
	out := make(map[string]jobs.Quota, len(keys))
	for name, k := range keys {
		out[name] = jobs.Quota{MaxPending: k.MaxPending, MaxConcurrent: k.MaxConcurrent}
	}
	return out
}

// checkBind refuses an API without keys on an address other hosts can
// reach, unless allowOpen is set; then it returns the warning to show at
// start-up and in /health.
func checkBind(host string, keys int, allowOpen bool) (warning string, err error) {
	if keys > 0 || loopback(host) {
		return "", nil
	}
	if !allowOpen {
		return "", fmt.Errorf("refusing to serve on %s without API keys: anyone who can reach it could run code on this host; "+
			"set auth.api_keys (or auth.api_keys_file), listen on 127.0.0.1, or set server.allow_unauthenticated_network_access: true", displayHost(host))
	}
	return fmt.Sprintf("the API is open: serving on %s without API keys (server.allow_unauthenticated_network_access); anyone who can reach it can run code", displayHost(host)), nil
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func displayHost(host string) string {
	if host == "" {
		return "all interfaces"
	}
	return host
}

// dockerClient connects to the engine named by DOCKER_HOST in environ (the
// local socket by default) and checks that it answers.
func dockerClient(ctx context.Context, environ []string) (*client.Client, error) {
	dc, err := runner.NewDockerClient(lookup(environ, "DOCKER_HOST"))
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := dc.Ping(pingCtx); err != nil {
		dc.Close()
		return nil, &images.UnreachableError{Err: err}
	}
	return dc, nil
}

// outputLimits is the runner's view of the configured limits.
// gvisorOptions is how the runner finds and probes gVisor: the probe runs
// in the default job type's image, or another job type's when that one
// could not be built.
func gvisorOptions(cfg *config.Config, images map[string]string) runner.GVisorOptions {
	probe := images[jobtypes.DefaultName]
	if probe == "" {
		names := slices.Sorted(maps.Keys(images))
		if len(names) > 0 {
			probe = images[names[0]]
		}
	}
	return runner.GVisorOptions{
		Runtime:      cfg.Runner.GVisorRuntime,
		RequiredArgs: cfg.Runner.GVisorRequiredArgs,
		ProbeImage:   probe,
	}
}

func outputLimits(cfg *config.Config) runner.OutputLimits {
	return runner.OutputLimits{
		MaxArtifactBytes:      int64(cfg.Limits.MaxArtifactBytes),
		MaxArtifacts:          cfg.Limits.MaxArtifacts,
		MaxStderrBytes:        int(cfg.Limits.MaxStderrBytes),
		MaxStdoutBytes:        int(cfg.Limits.MaxStdoutBytes),
		MaxTotalArtifactBytes: int64(cfg.Limits.MaxTotalArtifactBytes),
		MaxOutputBytes:        int64(cfg.Limits.MaxOutputBytes),
	}
}
