package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tako-run/tako/api"
	"github.com/tako-run/tako/config"
	"github.com/tako-run/tako/dispatch"
	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/runner/images"
	"github.com/tako-run/tako/webhook"
)

// shutdownGrace is how long running jobs get to finish when the server stops.
const shutdownGrace = 30 * time.Second

// runServer is `tako server`: it builds the images it misses, starts the
// server's components and serves the API until ctx ends, then shuts them
// down in order.
func runServer(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	c := newCommand("server", environ, stderr)
	c.flags.key("host", "server.host", "address to listen on (default 127.0.0.1)")
	c.flags.key("port", "server.port", "port to listen on (default 8000; 0 picks a free port)")
	c.flags.key("workers", "runner.max_concurrent", "jobs run at once on this node (runner.max_concurrent; Tako VM's --workers)")
	c.flags.key("role", "server.role", "what this node does: all (the default), api (the API, no Docker) or worker (runs jobs; serves only /health and /metrics)")
	if err := c.open(args); err != nil {
		return err
	}
	keys, warnings, err := checkExposure(c)
	if err != nil {
		return err
	}
	if c.cfg.Server.Role != config.RoleAPI {
		// An api node runs no jobs: it needs no Docker and no work
		// directory.
		if err := c.connect(ctx); err != nil {
			return err
		}
		defer c.close()
	}
	s, err := startComponents(ctx, c, keys, warnings)
	if err != nil {
		return err
	}
	defer s.release()
	return s.serve(ctx, stdout)
}

// checkExposure returns the configured API keys and the warnings to show
// at start-up and in /health. It refuses an API without keys that other
// hosts can reach (checkBind), and logs and prints the warning of one that
// is allowed to be open.
func checkExposure(c *command) (map[string]config.APIKey, []string, error) {
	keys, err := c.cfg.APIKeys()
	if err != nil {
		return nil, nil, err
	}
	exposure, err := checkBind(c.cfg.Server.Host, len(keys), c.cfg.Server.AllowUnauthenticatedNetworkAccess)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	if exposure != "" {
		c.logger.Warn(exposure)
		fmt.Fprintf(c.stderr, "WARNING: %s\n", exposure)
		warnings = append(warnings, exposure)
	}
	return keys, warnings, nil
}

// components are the parts of a running tako server, in the order
// startComponents starts them. serve runs the API on them; shutdown stops
// them in the documented order: stop accepting HTTP, stop claiming jobs and
// let the running ones finish up to a deadline, then the metrics sampler,
// the runner with its pools and egress gateway, and the database.
type components struct {
	cfg *config.Config
	reg *jobtypes.Registry
	// served is the job types this node runs (worker.job_types); reg
	// when it runs them all or none.
	served *jobtypes.Registry
	logger *slog.Logger

	instance string        // this node's id among those sharing the database
	pool     *pgxpool.Pool // the database
	// syncHistory is the database with asynchronous commit, for the
	// records of sync executions; nil with database.sync_history_commit
	// sync.
	syncHistory *pgxpool.Pool
	runner      *runner.Runner    // started
	service     dispatcherStopper // started; serve and shutdown stop it
	sampling    func()            // stops the metrics sampler
	api         *api.Server
}

// dispatcherStopper is what components do with the dispatcher themselves;
// the API and the sampler get the dispatcher itself.
type dispatcherStopper interface {
	// Stop stops claiming jobs and lets the running ones finish until ctx
	// is done; then it cancels them, back to the queue.
	Stop(ctx context.Context)
}

// startComponents builds and starts a server's parts with c's
// configuration, Docker client and work directory: the job types' images,
// the database, the runner (and its egress gateway), the dispatcher, the
// metrics sampler and the API, in that order. An api node (server.role
// api) starts no images, runner or sampler: it opens database.url, and its
// API sees the workers through the dispatcher. keys and warnings are
// checkExposure's. On error, what it started is released.
func startComponents(ctx context.Context, c *command, keys map[string]config.APIKey, warnings []string) (_ *components, err error) {
	cfg, reg, logger := c.cfg, c.reg, c.logger
	s := &components{cfg: cfg, reg: reg, served: reg, logger: logger}
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	m := metrics.New(version)
	s.instance = runner.NewInstanceID()
	var run *runner.Runner
	var b *images.Builder
	if cfg.Server.Role == config.RoleAPI {
		// database.url is set: validated.
		if s.pool, err = openDatabase(ctx, nil, nil, cfg, "", logger, c.stderr); err != nil {
			return nil, err
		}
	} else if run, b, err = s.startEngine(ctx, c, m); err != nil {
		return nil, err
	}
	if cfg.Database.SyncHistoryCommit == "async" {
		// One connection per execution slot, and one for the quota's lock.
		if s.syncHistory, err = postgres.AsyncCommit(ctx, s.pool, cfg.Runner.MaxConcurrent+1); err != nil {
			return nil, err
		}
	}
	hooks, err := webhooks(cfg, keys)
	if err != nil {
		return nil, err
	}
	var runs dispatch.Runner // nil on an api node, not a nil *runner.Runner
	if run != nil {
		runs = run
	}
	svc, err := dispatch.New(s.pool, reg, runs, dispatch.Options{
		BuildTimeout:  cfg.Images.BuildTimeout.Std(),
		KeepOutput:    cfg.Streaming.KeepChunks,
		Heartbeat:     cfg.Cluster.HeartbeatInterval.Std(),
		JobTypes:      cfg.Worker.JobTypes,
		NodeTimeout:   cfg.Cluster.NodeTimeout.Std(),
		MaxAttempts:   cfg.Queue.MaxAttempts,
		MaxPending:    cfg.Queue.MaxPending,
		Metrics:       m,
		Node:          s.instance,
		Role:          cfg.Server.Role,
		SyncQueueWait: cfg.Runner.AcquireTimeout.Std(),
		Quotas:        quotas(keys),
		RescueAfter:   cfg.Rescue(),
		Retention:     time.Duration(cfg.Queue.RetentionDays) * 24 * time.Hour,
		SyncHistory:   s.syncHistory,
		Webhooks:      hooks,
	}, logger)
	if err != nil {
		return nil, err
	}
	// Not ctx: cancelling River's start context cancels running jobs at
	// once, and a signal should drain them instead (see shutdown).
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	s.service = svc

	var view api.Runner = svc.Workers()
	if run != nil {
		view = run
		s.sampling = startSampling(ctx, cfg, m, reg, run, svc, b, logger)
	}

	// A worker's /health speaks of the job types it runs; every other
	// node answers for them all.
	apiReg := reg
	if cfg.Server.Role == config.RoleWorker {
		apiReg = s.served
	}
	var served *metrics.Metrics
	if cfg.Metrics.Enabled {
		served = m
	}
	s.api = api.New(api.Options{
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
		Logger:     logger,
		MaxStreams: cfg.Streaming.MaxStreams,
		Metrics:    served,
		RateLimit:  api.RateLimit{PerSecond: cfg.Server.RateLimit.RequestsPerSecond, Burst: cfg.Server.RateLimit.Burst},
		Registry:   apiReg,
		Node:       s.instance,
		Role:       cfg.Server.Role,
		Runner:     view,
		Service:    svc,
		Console:    cfg.UI.Enabled,
		Version:    version,
		Warnings:   warnings,
	})
	return s, nil
}

// startEngine builds the images of the job types this node runs (all, or
// worker.job_types), opens the database (auto-started when database.url
// is empty) and starts the runner with its pools and egress gateway. It
// returns the runner and the image builder.
func (s *components) startEngine(ctx context.Context, c *command, m *metrics.Metrics) (*runner.Runner, *images.Builder, error) {
	cfg, logger, dc := c.cfg, c.logger, c.docker
	reg, err := servedRegistry(s.reg, cfg.Worker.JobTypes)
	if err != nil {
		return nil, nil, err
	}
	s.served = reg
	b := newBuilder(dc, cfg, c.work, m, logger, c.stderr)
	set, err := ensureImages(ctx, b, reg)
	if err != nil {
		return nil, nil, err
	}
	for name, reason := range set.errors {
		logger.Error("job type unavailable: its image could not be built", "job_type", name, "reason", reason)
	}
	if s.pool, err = openDatabase(ctx, dc, b, cfg, c.work, logger, c.stderr); err != nil {
		return nil, nil, err
	}
	if err := runner.CheckWorkDir(ctx, dc, c.work); err != nil {
		return nil, nil, err
	}
	uidFirst, uidCount, _ := config.ParseUIDRange(cfg.Runner.UIDRange) // validated
	run := runner.New(dc, runner.Options{
		AcquireTimeout: cfg.Runner.AcquireTimeout.Std(),
		GVisor:         gvisorOptions(cfg, set.refs),
		ImageErrors:    set.errors,
		Images:         set.refs,
		PythonVersions: set.python,
		InstanceID:     s.instance,
		JobTypes:       reg.All(),
		Limits:         outputLimits(cfg),
		MaxConcurrent:  cfg.Runner.MaxConcurrent,
		MaxStarts:      cfg.Runner.MaxConcurrentStarts,
		Metrics:        m,
		ReapInterval:   cfg.Runner.ReapInterval.Std(),
		RequirementCache: runner.CacheLimits{
			MaxBytes:  int64(cfg.Requirements.Cache.MaxBytes),
			MaxImages: cfg.Requirements.Cache.MaxImages,
		},
		Requirements: b,
		Egress:       &runner.EgressOptions{AllowPrivate: cfg.EgressPrivateNetworks(), Hosts: cfg.EgressHosts()},
		UIDs:         runner.UIDRange{First: uidFirst, Count: uidCount},
		WorkDir:      c.work,
	}, logger)
	if err := run.Start(ctx); err != nil {
		return nil, nil, err
	}
	s.runner = run
	// The runner started the egress gateway, labelled with the instance's
	// lock: another node's reaper leaves it alone from the first moment.
	if g := run.Egress(); g != nil {
		b.SetEgress(g)
	}
	for _, jt := range reg.All() {
		if jt.Network == jobtypes.NetworkBridge {
			logger.Warn("job type has network bridge: its jobs reach everything this host reaches, the internal network and the cloud metadata address included; network: {allow: [hosts]} reaches only the hosts named", "job_type", jt.Name)
		}
		if a := run.Availability(jt); !a.Available {
			logger.Warn("job type unavailable", "job_type", jt.Name, "reason", a.Reason)
		}
	}
	return run, b, nil
}

// servedRegistry is reg narrowed to names, the job types a worker runs
// (worker.job_types, validated); all of reg when names is empty.
func servedRegistry(reg *jobtypes.Registry, names []string) (*jobtypes.Registry, error) {
	if len(names) == 0 {
		return reg, nil
	}
	var served []jobtypes.JobType
	for _, jt := range reg.All() {
		if slices.Contains(names, jt.Name) {
			served = append(served, jt)
		}
	}
	return jobtypes.NewRegistry(served)
}

// serve listens on the configured address and serves the API until ctx
// ends, then shuts down (shutdown) and returns nil. When it cannot listen,
// or serving fails, it stops the dispatcher and returns the error; the
// caller releases the rest.
func (s *components) serve(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Server.Host, strconv.Itoa(s.cfg.Server.Port)))
	if err != nil {
		s.service.Stop(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	s.logger.Info("serving", "addr", ln.Addr().String(), "role", s.cfg.Server.Role, "instance", s.instance, "job_types", s.reg.Names())
	fmt.Fprintf(stdout, "tako %s serving on http://%s (role %s)\n", version, ln.Addr(), s.cfg.Server.Role)

	serveErr := make(chan error, 1)
	go func() { serveErr <- s.api.Serve(ln) }()
	select {
	case err := <-serveErr:
		s.service.Stop(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.shutdown()
	return nil
}

// shutdown stops the server in the documented order: it stops taking
// requests, then stops claiming jobs and lets the running ones finish
// until shutdownGrace has passed (the queue cancels the rest and puts them
// back for the next node); then it releases the rest (release).
func (s *components) shutdown() {
	s.logger.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	if err := s.api.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		s.logger.Warn("shutdown", "error", err)
	}
	s.service.Stop(ctx)
	cancel()
	s.release()
}

// release stops what is left once the API and the dispatcher have
// stopped, in reverse order of start: the metrics sampler, the runner
// with its pools and egress gateway, then the database. It skips what was
// never started and is idempotent.
func (s *components) release() {
	if s.sampling != nil {
		s.sampling()
		s.sampling = nil
	}
	if s.runner != nil {
		s.runner.Stop()
		s.runner = nil
	}
	if s.syncHistory != nil {
		s.syncHistory.Close()
		s.syncHistory = nil
	}
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
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

// quotas is the dispatcher's view of the configured keys: what each may
// have queued and running.
func quotas(keys map[string]config.APIKey) map[string]jobs.Quota {
	out := make(map[string]jobs.Quota, len(keys))
	for name, k := range keys {
		out[name] = jobs.Quota{MaxPending: k.MaxPending, MaxConcurrent: k.MaxConcurrent}
	}
	return out
}

// webhooks is the dispatcher's webhook settings: webhooks.*, and each API
// key's own secret and default callback URL.
func webhooks(cfg *config.Config, keys map[string]config.APIKey) (dispatch.Webhooks, error) {
	w := dispatch.Webhooks{
		Policy:       webhook.Policy{AllowHTTP: cfg.Webhooks.AllowHTTP, AllowPrivateNetworks: cfg.Webhooks.AllowPrivateNetworks},
		KeySecrets:   map[string][]webhook.Secret{},
		KeyCallbacks: map[string]string{},
		Schedule:     cfg.RetrySchedule(),
		Timeout:      cfg.Webhooks.Timeout.Std(),
		Render:       api.ResultJSON,
	}
	if len(cfg.Webhooks.Secret) > 0 {
		secrets, err := cfg.WebhookSecrets()
		if err != nil {
			return w, fmt.Errorf("webhooks.secret: %w", err)
		}
		w.Secrets = secrets
	}
	for name, k := range keys {
		if k.CallbackURL != "" {
			w.KeyCallbacks[name] = k.CallbackURL
		}
		if len(k.WebhookSecrets) > 0 {
			secrets, err := webhook.ParseSecrets(k.WebhookSecrets)
			if err != nil {
				return w, fmt.Errorf("auth.api_keys.%s.webhook_secret: %w", name, err)
			}
			w.KeySecrets[name] = secrets
		}
	}
	return w, nil
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

// outputLimits is the runner's view of the configured limits.
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
