// Package api is tako's HTTP front door: the fiber application, its
// handlers, the request and response types of the Tako VM compatible API and
// the single mapping from domain errors to HTTP statuses.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/tako-run/tako/jobtypes"
	"github.com/tako-run/tako/metrics"
	"github.com/tako-run/tako/runner"
	"github.com/tako-run/tako/ui"
)

// Runner is what the API needs from the execution engine on this node: the
// job types it can run and the health of its dependencies. Executions go
// through the Service. *runner.Runner satisfies it; tests use a fake.
type Runner interface {
	// Availability says whether jt can run on this node.
	Availability(jt jobtypes.JobType) runner.Availability
	// Health reports the runner's dependencies.
	Health(ctx context.Context) runner.Health
	// Build makes sure jt's image exists, building it when missing, and
	// returns it.
	Build(ctx context.Context, jt jobtypes.JobType) (string, error)
}

// Limits are the request ceilings the API enforces before any work starts.
// A zero field takes its default (see DefaultLimits).
type Limits struct {
	MaxBodyBytes  int64         // largest request body; larger gets 413
	MaxCodeBytes  int64         // largest "code", in bytes
	MaxInputBytes int64         // largest "input_data", serialized compactly
	MaxTimeout    time.Duration // largest "timeout" a request may ask for
	AdHocDisabled bool          // requests with requirements get 403
}

// DefaultLimits are the limits of the original Tako VM: a 2 MiB body, 100 000
// bytes of code, 1 MiB of input and a 300 s timeout.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:  2 << 20,
		MaxCodeBytes:  100_000,
		MaxInputBytes: 1 << 20,
		MaxTimeout:    300 * time.Second,
	}
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxCodeBytes <= 0 {
		l.MaxCodeBytes = d.MaxCodeBytes
	}
	if l.MaxInputBytes <= 0 {
		l.MaxInputBytes = d.MaxInputBytes
	}
	if l.MaxTimeout <= 0 {
		l.MaxTimeout = d.MaxTimeout
	}
	return l
}

// Roles of Options.Role, as in server.role.
const (
	// RoleAPI serves the API with the view of the workers as its Runner.
	RoleAPI = "api"
	// RoleWorker serves only /health and /metrics.
	RoleWorker = "worker"
)

// Options configure a Server. Registry, Runner and Service are required; a
// nil Logger discards logs.
type Options struct {
	// AllowedHosts are the Host header values the server answers (see
	// newHostPolicy for their form); any other gets 421. Empty answers
	// any host.
	AllowedHosts []string
	// Auth is who may call the API; no keys means anyone who can reach it.
	Auth Auth
	// CORSOrigins are the web origins whose pages may call the API: they
	// get CORS headers, and may send requests that change something. None
	// means no CORS headers at all.
	CORSOrigins []string
	Limits      Limits
	Logger      *slog.Logger
	// Metrics, when set, records every request and is served at GET
	// /metrics.
	Metrics  *metrics.Metrics
	Registry *jobtypes.Registry
	Runner   Runner
	// MaxStreams is the most event streams served at once; more get 503.
	// 0 means 1000.
	MaxStreams int
	// RateLimit meters each caller; zero means no limit.
	RateLimit RateLimit
	// Node is this node's id, shown in /health.
	Node string
	// Role is the node's server.role: "all" (or ""), "api" (Runner is
	// the view of the workers) or "worker" (only /health and /metrics
	// are served; every other route is 404).
	Role    string
	Service Service
	// Console serves the web console at /ui (ui.enabled); its pages need
	// no key, and everything they show comes from this API with the key
	// the user gives them.
	Console bool
	Version string
	// Warnings are shown in /health's problems, such as an open API on a
	// network address.
	Warnings []string
}

// Server is tako's HTTP API. Its methods are safe for concurrent use.
type Server struct {
	app      *fiber.App
	base     context.Context // parent of every execution; cancelled by Shutdown
	cancel   context.CancelFunc
	health   *healthMonitor
	deps     dependencies
	hosts    hostPolicy
	keys     *keyring
	limiter  *limiter
	limits   Limits
	logger   *slog.Logger
	openapi  []byte // GET /openapi.json
	origins  map[string]bool
	metrics  *metrics.Metrics
	registry *jobtypes.Registry
	node     string
	role     string
	runner   Runner
	service  Service
	version  string
	warnings []string

	openMetrics bool
	console     bool

	// streams counts the open event streams; streamsCtx ends them when
	// the server shuts down, before it waits for its requests.
	streams     *streamSlots
	streamsCtx  context.Context
	stopStreams context.CancelFunc
}

// The fasthttp timeouts. Reads are bounded to stop slow-loris clients; a sync
// execution or a long poll runs inside the handler, so it is not bounded by
// these (fasthttp sets the write deadline after the handler returns).
const (
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 120 * time.Second
)

// New builds the server and its routes. It panics when Registry, Runner or
// Service is nil, which is a programming error.
func New(opts Options) *Server {
	if opts.Registry == nil || opts.Runner == nil || opts.Service == nil {
		panic("api.New: Registry, Runner and Service are required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	streamsCtx, stopStreams := context.WithCancel(base)
	s := &Server{
		streams:     &streamSlots{max: int64(cmp.Or(opts.MaxStreams, 1000))},
		streamsCtx:  streamsCtx,
		stopStreams: stopStreams,
		base:        base,
		cancel:      cancel,
		hosts:       newHostPolicy(opts.AllowedHosts),
		limits:      opts.Limits.withDefaults(),
		logger:      logger.With("component", "api"),
		keys:        newKeyring(opts.Auth),
		origins:     map[string]bool{},
		limiter:     newLimiter(opts.RateLimit, time.Now),
		metrics:     opts.Metrics,
		registry:    opts.Registry,
		node:        opts.Node,
		role:        opts.Role,
		runner:      opts.Runner,
		service:     opts.Service,
		version:     opts.Version,
		warnings:    opts.Warnings,

		openMetrics: opts.Auth.OpenMetrics,
		console:     opts.Console && opts.Role != RoleWorker,
	}
	for _, o := range opts.CORSOrigins {
		s.origins[normalizeOrigin(o)] = true
	}
	s.health = newHealthMonitor(base, s.probeHealth)
	doc, err := openAPIDocument(opts.Version, s.keys.header)
	if err != nil {
		panic("api.New: the OpenAPI document does not encode: " + err.Error())
	}
	s.openapi = doc
	s.app = fiber.New(fiber.Config{
		AppName:               "tako",
		BodyLimit:             int(min(s.limits.MaxBodyBytes, int64(maxInt))),
		CaseSensitive:         true,
		DisableStartupMessage: true,
		ErrorHandler:          s.serverError,
		IdleTimeout:           idleTimeout,
		// Strings from *fiber.Ctx are copied, so nothing we keep points
		// into fasthttp's reused buffers.
		Immutable:    true,
		JSONDecoder:  json.Unmarshal,
		JSONEncoder:  json.Marshal,
		ReadTimeout:  readTimeout,
		WriteTimeout: writeTimeout,
	})
	s.app.Use(s.middleware)
	s.app.Use(s.fence)
	if h := corsHandler(opts.CORSOrigins, s.keys.header); h != nil {
		// Before the key check: a preflight carries no key.
		s.app.Use(h)
	}
	s.app.Use(s.guard)
	if opts.Metrics != nil {
		s.app.Get("/metrics", adaptor.HTTPHandler(opts.Metrics.Handler()))
	}
	s.app.Get("/health", s.handleHealth)
	if opts.Role == RoleWorker {
		return s // it runs jobs; the api nodes take the requests
	}
	s.app.Post("/execute", s.handleExecute)
	s.app.Post("/execute/async", s.handleSubmit)
	s.app.Get("/jobs/:id", s.handleJob)
	s.app.Get("/jobs/:id/result", s.handleResult)
	s.app.Get("/jobs/:id/events", s.handleEvents)
	s.app.Get("/jobs/:id/deliveries", s.handleDeliveries)
	s.app.Post("/jobs/:id/deliveries/retry", s.handleRetryDelivery)
	s.app.Post("/jobs/:id/cancel", s.handleCancel)
	s.app.Post("/jobs/:id/rerun", s.handleRerun)
	s.app.Post("/jobs/:id/fork", s.handleFork)
	// A wildcard, not :name, so that a name with a slash in it reaches the
	// handler and gets its 400 instead of a routing 404. Get also answers
	// HEAD.
	s.app.Get("/jobs/:id/artifacts/*", s.handleArtifact)
	s.app.Get("/executions", s.handleExecutions)
	s.app.Get("/executions/:id", s.handleExecution)
	s.app.Get("/job-types", s.handleJobTypes)
	s.app.Get("/job-types/:name", s.handleJobType)
	s.app.Post("/job-types/:name/build", s.handleBuild)
	s.app.Get("/openapi.json", s.handleOpenAPI)
	s.app.Get("/", s.handleRoot)
	s.app.Get("/docs", s.handleDocs)
	s.app.Get("/docs/*", s.handleDocsAsset)
	s.app.Get("/pool/stats", s.handlePoolStats)
	s.app.Get("/dlq", s.handleDeadLetters)
	s.app.Get("/dlq/stats", s.handleDeadLetterStats)
	s.app.Delete("/dlq/:id", s.handleRemoveDeadLetter)
	s.app.Post("/dlq/:id/retry", s.handleRetryDeadLetter)
	if s.console {
		if err := ui.Register(s.app, ui.Options{KeyHeader: s.keys.header, Version: opts.Version}); err != nil {
			panic("api.New: " + err.Error())
		}
	}
	return s
}

// opTimeout bounds a short Service call (a read, a submit, a cancel) so a
// stuck database cannot hold a request forever.
const opTimeout = 30 * time.Second

// opContext returns the context for a short Service call: the server's, so
// Shutdown can stop it (fiber never cancels a request's), bounded by
// opTimeout.
func (s *Server) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, opTimeout)
}

const maxInt = int(^uint(0) >> 1)

// App returns the fiber application, for tests (App().Test) and embedding.
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts HTTP connections on ln until Shutdown is called. It returns
// nil after a clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.app.Listener(ln)
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx is done; then it cancels the executions still running. It
// returns ctx's error when the wait was cut short.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	err := s.app.ShutdownWithContext(ctx)
	s.cancel()
	s.health.stop()
	s.deps.done.Wait()
	return err
}

// Locals keys.
const (
	localCorrelationID = "tako.correlation_id"
)

// middleware runs around every request: it sets the correlation id and the
// security headers, turns a handler's error or panic into the JSON error
// body, and logs one line.
func (s *Server) middleware(c *fiber.Ctx) error {
	start := time.Now()
	cid := s.correlate(c)
	own := c.Route()
	if err := callNext(c); err != nil {
		s.writeError(c, err)
	}
	route := c.Route().Path
	if c.Route() == own {
		route = "unmatched" // bounded, unlike the raw path
	}
	s.logRequest(c, route, cid, start)
	return nil
}

// callNext runs the rest of the chain, turning a panic into an error so one
// bad request cannot take the server down.
func callNext(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.Next()
}

// serverError is fiber's ErrorHandler. Handler errors never get here (the
// middleware writes them); this sees what fasthttp rejects before routing,
// such as a body over BodyLimit.
func (s *Server) serverError(c *fiber.Ctx, err error) error {
	start := time.Now()
	cid := s.correlate(c)
	s.writeError(c, err)
	s.logRequest(c, "unrouted", cid, start)
	return nil
}

// logRequest logs one line about a request and records it in the metrics,
// under its route template.
func (s *Server) logRequest(c *fiber.Ctx, route, cid string, start time.Time) {
	took, code := time.Since(start), c.Response().StatusCode()
	s.metrics.HTTPRequest(route, c.Method(), code, took)
	s.logger.LogAttrs(s.base, slog.LevelInfo, "http request",
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.Int("status", code),
		slog.Float64("duration_ms", float64(took)/float64(time.Millisecond)),
		slog.String("correlation_id", cid),
	)
}
