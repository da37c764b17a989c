// Package metrics is tako's Prometheus instrumentation: its own registry,
// the instruments every component records into, and the /metrics handler.
//
// Labels stay bounded: job types come from the configuration, statuses,
// phases and error types from fixed sets, HTTP routes are templates. No
// label ever carries a job id, code or other user string.
package metrics

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tako-run/tako/jobs"
)

// latencyBuckets resolve a 5 ms warm job as well as a 5 minute one.
var latencyBuckets = []float64{
	0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600,
}

// buildBuckets cover image builds, from a cache check to a half-hour
// debootstrap.
var buildBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800}

// Phases of a job, for tako_job_phase_seconds.
const (
	PhaseQueue   = "queue"   // accepted until a container is being got
	PhaseStart   = "start"   // getting a container until the program is triggered
	PhaseRun     = "run"     // trigger until the program ended
	PhaseCollect = "collect" // reading output and artifacts
)

// startNone labels jobs that never got a container.
const startNone = "none"

// Metrics holds tako's registry and instruments. Its methods are safe for
// concurrent use. A nil *Metrics records nothing, so components may take
// one optionally.
type Metrics struct {
	reg *prometheus.Registry

	jobDuration *prometheus.HistogramVec
	jobPhase    *prometheus.HistogramVec
	jobs        *prometheus.CounterVec
	jobErrors   *prometheus.CounterVec
	jobsRunning *prometheus.GaugeVec
	checkouts   *prometheus.CounterVec

	queueDepth    *prometheus.GaugeVec
	queueMax      prometheus.Gauge
	maxConcurrent prometheus.Gauge

	builds        *prometheus.CounterVec
	buildDuration *prometheus.HistogramVec
	reqCache      *prometheus.CounterVec
	reqImages     prometheus.Gauge
	reqBytes      prometheus.Gauge

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	dockerUp   prometheus.Gauge
	databaseUp prometheus.Gauge

	pools    *poolCollector
	removals *sourceGauge

	streamsOpen      prometheus.Gauge
	streams          *prometheus.CounterVec
	webhookAttempts  *prometheus.CounterVec
	webhookDuration  prometheus.Histogram
	webhookDelivered prometheus.Histogram

	egress egressMetrics
}

// New returns Metrics on a fresh registry that also carries the Go and
// process collectors and tako_build_info for version.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		jobDuration: histogramVec("tako_job_duration_seconds",
			"Time from a job's acceptance to its stored result, by job type, final status and whether its container was prewarmed.",
			latencyBuckets, "job_type", "status", "start"),
		jobPhase: histogramVec("tako_job_phase_seconds",
			"Time a job spent in each phase: queue (waiting for the queue and a slot), start (getting a container ready), run, collect (reading output).",
			latencyBuckets, "job_type", "phase"),
		jobs: counterVec("tako_jobs_total",
			"Jobs that ended, by job type and final status.",
			"job_type", "status"),
		jobErrors: counterVec("tako_job_errors_total",
			"Jobs that ended with an error, by job type and error type (the original's taxonomy).",
			"job_type", "error_type"),
		jobsRunning: gaugeVec("tako_jobs_running",
			"Jobs holding an execution slot on this node.",
			"job_type"),
		checkouts: counterVec("tako_pool_checkouts_total",
			"Containers jobs got, by job type: hit when a prewarmed one was ready, miss when one had to be started.",
			"job_type", "result"),
		queueDepth: gaugeVec("tako_queue_depth",
			"Async executions waiting in the queue, over all nodes, sampled periodically.",
			"job_type"),
		queueMax: gauge("tako_queue_max_pending",
			"The most executions the queue accepts (queue.max_pending)."),
		maxConcurrent: gauge("tako_runner_max_concurrent",
			"Execution slots on this node (runner.max_concurrent)."),
		builds: counterVec("tako_image_builds_total",
			"Image builds, by kind (executor, job_type, requirements, postgres) and outcome (success, failure).",
			"kind", "outcome"),
		buildDuration: histogramVec("tako_image_build_duration_seconds",
			"Time an image build took, verification included, by kind.",
			buildBuckets, "kind"),
		reqCache: counterVec("tako_requirements_cache_requests_total",
			"Requests with ad-hoc requirements: hit when their image existed, miss when it had to be built.",
			"result"),
		reqImages: gauge("tako_requirements_cached_images",
			"Ad-hoc requirement images on this Docker engine."),
		reqBytes: gauge("tako_requirements_cached_bytes",
			"Bytes the ad-hoc requirement images take."),
		httpRequests: counterVec("tako_http_requests_total",
			"HTTP requests, by route template, method and status code.",
			"route", "method", "code"),
		httpDuration: histogramVec("tako_http_request_duration_seconds",
			"HTTP request latency, by route template and method.",
			latencyBuckets, "route", "method"),
		dockerUp: gauge("tako_docker_up",
			"1 when the Docker engine answered the last probe."),
		databaseUp: gauge("tako_database_up",
			"1 when the database answered the last probe."),
		pools: &poolCollector{},
		removals: &sourceGauge{desc: prometheus.NewDesc("tako_container_removals_pending",
			"Used containers waiting for their removal on this node's engine; pool refills wait while there are more than four per concurrent start.", nil, nil)},
	}
	m.streamsOpen = gauge("tako_event_streams_open",
		"Event streams (GET /jobs/{id}/events, or POST /execute with Accept: text/event-stream) this node is serving.")
	m.streams = counterVec("tako_event_streams_total",
		"Event streams asked of this node: opened, or rejected past streaming.max_streams.",
		"result")
	m.webhookAttempts = counterVec("tako_webhook_attempts_total",
		"Webhook delivery attempts, by outcome: delivered, retry, stopped (410), failed (schedule used up), refused (address not allowed).",
		"outcome")
	m.webhookDuration = histogram("tako_webhook_attempt_duration_seconds",
		"Time one webhook delivery attempt took, until the receiver answered or the attempt failed.",
		latencyBuckets)
	m.webhookDelivered = histogram("tako_webhook_delivery_delay_seconds",
		"Time from a job's end to the delivery of its webhook, retries included.",
		latencyBuckets)
	m.egress = newEgressMetrics()
	for _, r := range []string{"opened", "rejected"} {
		m.streams.WithLabelValues(r)
	}
	for _, o := range []string{"delivered", "retry", "stopped", "failed", "refused"} {
		m.webhookAttempts.WithLabelValues(o)
	}
	buildInfo := gaugeVec("tako_build_info",
		"Always 1; its labels say which tako this is.",
		"version", "goversion", "revision")
	buildInfo.WithLabelValues(version, runtime.Version(), revision()).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.jobDuration, m.jobPhase, m.jobs, m.jobErrors, m.jobsRunning, m.checkouts,
		m.queueDepth, m.queueMax, m.maxConcurrent,
		m.builds, m.buildDuration, m.reqCache, m.reqImages, m.reqBytes,
		m.httpRequests, m.httpDuration,
		m.dockerUp, m.databaseUp,
		m.pools, m.removals,
		m.streamsOpen, m.streams, m.webhookAttempts, m.webhookDuration, m.webhookDelivered,
	)
	m.reg.MustRegister(m.egress.collectors()...)
	return m
}

// revision is the VCS revision the binary was built from, or "unknown".
func revision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// Registry returns the registry the instruments are on, for tests and for
// adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// endStatuses are the statuses a job can end with; their series exist from
// the start so that rates and alerts see zeros, not gaps.
var endStatuses = []jobs.Status{
	jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusTimeout, jobs.StatusOOM, jobs.StatusCancelled,
}

// AddJobType creates the series of a job type at zero.
func (m *Metrics) AddJobType(name string) {
	if m == nil {
		return
	}
	for _, s := range endStatuses {
		m.jobs.WithLabelValues(name, string(s))
	}
	m.checkouts.WithLabelValues(name, "hit")
	m.checkouts.WithLabelValues(name, "miss")
	m.jobsRunning.WithLabelValues(name)
	m.queueDepth.WithLabelValues(name)
}

// JobEnded records a job that ended with res, total after it was accepted.
// queued is the time it spent in the durable queue before a node picked it
// up (zero for sync jobs); the runner's own slot wait is in res.Timing.
func (m *Metrics) JobEnded(jobType string, res *jobs.Result, queued, total time.Duration) {
	if m == nil || res == nil {
		return
	}
	start := string(res.Start)
	if start == "" {
		start = startNone
	}
	m.jobs.WithLabelValues(jobType, string(res.Status)).Inc()
	m.jobDuration.WithLabelValues(jobType, string(res.Status), start).Observe(total.Seconds())
	if res.Error != nil {
		m.jobErrors.WithLabelValues(jobType, string(res.Error.Type)).Inc()
	}
	if res.Start == "" {
		return // it never ran: there are no phases to tell
	}
	m.jobPhase.WithLabelValues(jobType, PhaseQueue).Observe((queued + res.Timing.Queue).Seconds())
	m.jobPhase.WithLabelValues(jobType, PhaseStart).Observe(res.Timing.Start.Seconds())
	m.jobPhase.WithLabelValues(jobType, PhaseRun).Observe(res.Timing.Run.Seconds())
	m.jobPhase.WithLabelValues(jobType, PhaseCollect).Observe(res.Timing.Collect.Seconds())
}

// JobStarted counts a job as running on this node until the returned
// function is called.
func (m *Metrics) JobStarted(jobType string) (done func()) {
	if m == nil {
		return func() {}
	}
	g := m.jobsRunning.WithLabelValues(jobType)
	g.Inc()
	return func() { g.Dec() }
}

// Checkout counts a container a job got: warm from its pool or not.
func (m *Metrics) Checkout(jobType string, warm bool) {
	if m == nil {
		return
	}
	result := "miss"
	if warm {
		result = "hit"
	}
	m.checkouts.WithLabelValues(jobType, result).Inc()
}

// SetQueueDepth sets the queued executions of every job type in depth;
// the job types it does not name have none.
func (m *Metrics) SetQueueDepth(jobTypes []string, depth map[string]int) {
	if m == nil {
		return
	}
	for _, name := range jobTypes {
		m.queueDepth.WithLabelValues(name).Set(float64(depth[name]))
	}
}

// SetLimits publishes the queue's and the runner's configured bounds.
func (m *Metrics) SetLimits(maxPending, maxConcurrent int) {
	if m == nil {
		return
	}
	m.queueMax.Set(float64(maxPending))
	m.maxConcurrent.Set(float64(maxConcurrent))
}

// Build kinds, for ImageBuilt.
const (
	BuildExecutor     = "executor"
	BuildJobType      = "job_type"
	BuildRequirements = "requirements"
	BuildPostgres     = "postgres"
)

// ImageBuilt records one image build of kind that took d; err is its
// outcome.
func (m *Metrics) ImageBuilt(kind string, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "success"
	if err != nil {
		outcome = "failure"
	}
	m.builds.WithLabelValues(kind, outcome).Inc()
	m.buildDuration.WithLabelValues(kind).Observe(d.Seconds())
}

// RequirementsLookup counts a request with ad-hoc requirements: hit when
// their image already existed.
func (m *Metrics) RequirementsLookup(hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.reqCache.WithLabelValues(result).Inc()
}

// SetRequirementsCache publishes how many ad-hoc requirement images exist
// and their bytes.
func (m *Metrics) SetRequirementsCache(images int, bytes int64) {
	if m == nil {
		return
	}
	m.reqImages.Set(float64(images))
	m.reqBytes.Set(float64(bytes))
}

// SetAvailability publishes whether Docker and the database answered the
// last probe.
func (m *Metrics) SetAvailability(docker, database bool) {
	if m == nil {
		return
	}
	m.dockerUp.Set(boolFloat(docker))
	m.databaseUp.Set(boolFloat(database))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// httpMethods are the methods that get their own label value; anything
// else is "other", so a client cannot mint series.
var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// HTTPRequest records one HTTP request. route must be a route template
// ("/jobs/:id"), never the raw path.
func (m *Metrics) HTTPRequest(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	if !httpMethods[method] {
		method = "other"
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// PoolSample is one job type's prewarmed containers at scrape time.
type PoolSample struct {
	JobType            string
	Warm, Busy, Target int
}

// SetPoolSource makes each scrape read the pools from f, which must be
// cheap (no I/O) and safe for concurrent use.
func (m *Metrics) SetPoolSource(f func() []PoolSample) {
	if m == nil {
		return
	}
	m.pools.mu.Lock()
	m.pools.source = f
	m.pools.mu.Unlock()
}

// SetRemovalSource makes each scrape read from f how many used containers
// wait for their removal; f must be cheap (no I/O) and safe for concurrent
// use.
func (m *Metrics) SetRemovalSource(f func() int) {
	if m == nil {
		return
	}
	m.removals.mu.Lock()
	m.removals.source = f
	m.removals.mu.Unlock()
}

// sourceGauge is a gauge without labels read from a function when scraped;
// without a function it has no series.
type sourceGauge struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	source func() int
}

// Describe implements prometheus.Collector.
func (g *sourceGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *sourceGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	source := g.source
	g.mu.Unlock()
	if source != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(source()))
	}
}

// poolCollector reads pool sizes when scraped: they change on every job,
// and the runner already keeps them.
type poolCollector struct {
	mu     sync.Mutex
	source func() []PoolSample
}

var (
	poolWarmDesc   = prometheus.NewDesc("tako_pool_warm_containers", "Prewarmed containers ready for a job, by job type.", []string{"job_type"}, nil)
	poolBusyDesc   = prometheus.NewDesc("tako_pool_busy_containers", "Pool containers running a job, by job type.", []string{"job_type"}, nil)
	poolTargetDesc = prometheus.NewDesc("tako_pool_target_containers", "Containers the pool of a job type aims to keep, by job type.", []string{"job_type"}, nil)
)

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolWarmDesc
	ch <- poolBusyDesc
	ch <- poolTargetDesc
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	for _, p := range source() {
		ch <- prometheus.MustNewConstMetric(poolWarmDesc, prometheus.GaugeValue, float64(p.Warm), p.JobType)
		ch <- prometheus.MustNewConstMetric(poolBusyDesc, prometheus.GaugeValue, float64(p.Busy), p.JobType)
		ch <- prometheus.MustNewConstMetric(poolTargetDesc, prometheus.GaugeValue, float64(p.Target), p.JobType)
	}
}

// The instruments' constructors: a name, its help and its labels.

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}
