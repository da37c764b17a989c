// Package config turns defaults, tako.yaml, TAKO_* environment variables and
// command-line flags into one typed, validated Config. Nothing else in tako
// sees koanf: components receive the typed values they need.
package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

// Size is a byte count written as "512m", "1g", "64KiB" or a plain number.
type Size int64

// Duration is a time span written as "30s", "5m" or a plain number of seconds.
type Duration time.Duration

// Config is tako's whole configuration. Load returns it validated.
type Config struct {
	Auth         AuthConfig               `koanf:"auth"`
	Cluster      ClusterConfig            `koanf:"cluster"`
	Database     DatabaseConfig           `koanf:"database"`
	Egress       EgressConfig             `koanf:"egress"`
	Images       ImagesConfig             `koanf:"images"`
	JobTypes     map[string]JobTypeConfig `koanf:"job_types"`
	Limits       LimitsConfig             `koanf:"limits"`
	Log          LogConfig                `koanf:"log"`
	Metrics      MetricsConfig            `koanf:"metrics"`
	Pip          PipConfig                `koanf:"pip"`
	Queue        QueueConfig              `koanf:"queue"`
	Requirements RequirementsConfig       `koanf:"requirements"`
	Runner       RunnerConfig             `koanf:"runner"`
	SecurityMode string                   `koanf:"security_mode"`
	Worker       WorkerConfig             `koanf:"worker"`
	Server       ServerConfig             `koanf:"server"`
	Streaming    StreamingConfig          `koanf:"streaming"`
	UI           UIConfig                 `koanf:"ui"`
	Webhooks     WebhooksConfig           `koanf:"webhooks"`

	// Path is the file Load read, or "" when no file was found and only
	// defaults, environment and flags apply. It is not a configuration key.
	Path string `koanf:"-"`
}

// ClusterConfig is how the nodes sharing a database tell live ones from
// gone ones.
type ClusterConfig struct {
	// HeartbeatInterval is how often a node tells the database it is alive.
	HeartbeatInterval Duration `koanf:"heartbeat_interval"`
	// NodeTimeout is how long a node may stay silent before it is taken
	// for gone: its sync executions are ended.
	NodeTimeout Duration `koanf:"node_timeout"`
}

// DatabaseConfig is where tako keeps its job history and queue.
type DatabaseConfig struct {
	// AutoStart is the PostgreSQL container tako runs when URL is empty.
	AutoStart AutoStartConfig `koanf:"auto_start"`
	// MaxConns bounds the connection pool.
	MaxConns int `koanf:"max_conns"`
	// SyncHistoryCommit is how the records of sync executions commit:
	// "async" (the default) does not wait for the disk, and a database
	// crash can lose the last moment's records, never an accepted job;
	// "sync" waits like every other write.
	SyncHistoryCommit string `koanf:"sync_history_commit"`
	// URL is a PostgreSQL connection URL; "" means auto-start a local one.
	URL string `koanf:"url"`
}

// AutoStartConfig is the local PostgreSQL container of a server without a
// database URL.
type AutoStartConfig struct {
	// Container is the container's name; tako reuses it across restarts.
	Container string `koanf:"container"`
	// Image is pulled when a registry is reachable; otherwise tako builds a
	// PostgreSQL image from Debian packages.
	Image string `koanf:"image"`
	// Port is the loopback port it listens on.
	Port int `koanf:"port"`
	// Volume is the named volume that keeps its data.
	Volume string `koanf:"volume"`
}

// QueueConfig shapes the durable job queue.
type QueueConfig struct {
	// MaxAttempts bounds how often a job that hits an infrastructure
	// failure runs; a program that fails is never retried.
	MaxAttempts int `koanf:"max_attempts"`
	// MaxPending is the most queued jobs; more get 503.
	MaxPending int `koanf:"max_pending"`
	// RescueAfter is how long a job may stay running before it is taken
	// to belong to a dead node and run again; it must exceed the longest
	// job. 0 means limits.max_timeout plus five minutes (see Rescue).
	RescueAfter Duration `koanf:"rescue_after"`
	// RetentionDays is how long records and artifacts are kept.
	RetentionDays int `koanf:"retention_days"`
}

// StreamingConfig governs live output: the chunks a running job's output
// is written to the database in, and the event streams that read them.
type StreamingConfig struct {
	// KeepChunks keeps a job's output chunks after its record is written,
	// for debugging; by default they are deleted then, since the record
	// holds the whole output.
	KeepChunks bool `koanf:"keep_chunks"`
	// MaxStreams is the most event streams this node serves at once; more
	// get 503.
	MaxStreams int `koanf:"max_streams"`
}

// WebhooksConfig governs the signed callbacks tako sends when a job ends.
type WebhooksConfig struct {
	// AllowHTTP lets callback URLs use plain http; by default only https.
	AllowHTTP bool `koanf:"allow_http"`
	// AllowPrivateNetworks lets callbacks reach loopback, private,
	// link-local (the metadata address included) and CGNAT addresses,
	// for on-premises receivers and tests.
	AllowPrivateNetworks bool `koanf:"allow_private_networks"`
	// RetrySchedule is the wait before each retry of a failed delivery;
	// its length bounds the retries.
	RetrySchedule []Duration `koanf:"retry_schedule"`
	// Secret is the signing secret ("whsec_" and base64), or several to
	// rotate: every one listed signs each delivery. An API key may have
	// its own (auth.api_keys.NAME.webhook_secret).
	Secret []string `koanf:"secret"`
	// Timeout bounds one delivery attempt.
	Timeout Duration `koanf:"timeout"`
}

// RequirementsConfig governs ad-hoc pip requirements in requests.
type RequirementsConfig struct {
	// AllowAdHoc lets requests carry requirements; when false they get 403.
	AllowAdHoc bool `koanf:"allow_ad_hoc"`
	// AllowSourceBuilds lets ad-hoc requirements build packages from
	// source distributions, whose build code then runs (without network);
	// false installs wheels only. A job type may say otherwise.
	AllowSourceBuilds bool `koanf:"allow_source_builds"`
	// MaxConcurrentBuilds bounds the image builds running at once.
	MaxConcurrentBuilds int `koanf:"max_concurrent_builds"`
	// Cache bounds the images built for requirement sets.
	Cache RequirementCacheConfig `koanf:"cache"`
	// FailureTTL is how long a failed build is remembered, so that a bad
	// requirement is not rebuilt on every request.
	FailureTTL Duration `koanf:"failure_ttl"`
}

// RequirementCacheConfig bounds the ad-hoc requirement images kept; the
// least recently used go first, never one in use.
type RequirementCacheConfig struct {
	MaxBytes  Size `koanf:"max_bytes"`
	MaxImages int  `koanf:"max_images"`
}

// ServerConfig is the HTTP front door.
type ServerConfig struct {
	// AllowUnauthenticatedNetworkAccess lets the server listen on a
	// non-loopback address without API keys; it warns at start-up and in
	// /health.
	AllowUnauthenticatedNetworkAccess bool `koanf:"allow_unauthenticated_network_access"`
	// AllowedHosts are the Host header values the API answers ("name",
	// "name:port", "[::1]", "*.example.com" or "*"); any other gets 421.
	// Empty means the default of AllowedHosts.
	AllowedHosts []string `koanf:"allowed_hosts"`
	// CORSOrigins are the web origins ("https://app.example.com") whose
	// pages may call the API; none means no CORS headers at all.
	CORSOrigins []string `koanf:"cors_origins"`
	Host        string   `koanf:"host"`
	// MaxBodyBytes is the largest request body; larger gets 413.
	MaxBodyBytes Size `koanf:"max_body_bytes"`
	Port         int  `koanf:"port"`
	// RateLimit meters each API key, or each client address when there are
	// no keys.
	RateLimit RateLimitConfig `koanf:"rate_limit"`
	// Role is what this node does: RoleAll, RoleAPI or RoleWorker.
	Role string `koanf:"role"`
}

// Server roles (server.role).
const (
	// RoleAll serves the API and runs jobs, sync ones on the node that
	// received them.
	RoleAll = "all"
	// RoleAPI serves the API without Docker: it queues every job,
	// sync ones at high priority, for the workers.
	RoleAPI = "api"
	// RoleWorker runs jobs and pools, and serves only /health and
	// /metrics.
	RoleWorker = "worker"
)

// WorkerConfig is what a node that runs jobs takes on.
type WorkerConfig struct {
	// JobTypes are the job types this node runs; empty means all. The
	// node works only their queues.
	JobTypes []string `koanf:"job_types"`
}

// RateLimitConfig is a token bucket per caller.
type RateLimitConfig struct {
	// Burst is how many requests a caller may send at once.
	Burst int `koanf:"burst"`
	// RequestsPerSecond is the sustained rate; 0 turns rate limiting off.
	RequestsPerSecond float64 `koanf:"requests_per_second"`
}

// RunnerConfig bounds execution on this node.
type RunnerConfig struct {
	// AcquireTimeout is how long a request waits for a free execution slot
	// before it gets 503.
	AcquireTimeout Duration `koanf:"acquire_timeout"`
	// GVisorRuntime is the name under which gVisor's runsc is registered
	// with the Docker engine.
	GVisorRuntime string `koanf:"gvisor_runtime"`
	// GVisorRequiredArgs are the runtime arguments that registration must
	// carry for tako's transport to work (--host-fifo=open): checked
	// against the engine's runtimes before the probe container runs.
	GVisorRequiredArgs []string `koanf:"gvisor_required_args"`
	// MaxConcurrent is the number of executions this node runs at once.
	MaxConcurrent int `koanf:"max_concurrent"`
	// MaxConcurrentStarts is the most job containers this node creates and
	// starts at once on its Docker engine; cold starts go before pool
	// refills.
	MaxConcurrentStarts int `koanf:"max_concurrent_starts"`
	// ReapInterval is how often the node removes containers and slot
	// directories left by tako instances that are gone.
	ReapInterval Duration `koanf:"reap_interval"`
	// UIDRange is "first-last": the host uids job containers run as, one
	// of its own each; requirement builds run as first-1.
	UIDRange string `koanf:"uid_range"`
	// WorkDir holds slot directories and instance locks; "" means a tako
	// directory under the user's state directory.
	WorkDir string `koanf:"work_dir"`
}

// LimitsConfig holds the global ceilings every job type and request obey.
type LimitsConfig struct {
	MaxArtifactBytes Size `koanf:"max_artifact_bytes"`
	MaxArtifacts     int  `koanf:"max_artifacts"`
	MaxCodeBytes     Size `koanf:"max_code_bytes"`
	MaxInputBytes    Size `koanf:"max_input_bytes"`
	// MaxOutputBytes is the disk a running program may take in /output;
	// past it the program is stopped.
	MaxOutputBytes        Size     `koanf:"max_output_bytes"`
	MaxStderrBytes        Size     `koanf:"max_stderr_bytes"`
	MaxStdoutBytes        Size     `koanf:"max_stdout_bytes"`
	MaxTimeout            Duration `koanf:"max_timeout"`
	MaxTotalArtifactBytes Size     `koanf:"max_total_artifact_bytes"`
}

// PipConfig is where image builds find pip packages.
type PipConfig struct {
	ExtraIndexURLs []string `koanf:"extra_index_urls"`
	IndexURL       string   `koanf:"index_url"`
	TrustedHosts   []string `koanf:"trusted_hosts"`
}

// ImagesConfig controls how tako builds its images.
type ImagesConfig struct {
	// BaseImage is the registry image the executor image is built FROM when
	// a registry is reachable.
	BaseImage string `koanf:"base_image"`
	// BuildTimeout bounds one image build.
	BuildTimeout Duration `koanf:"build_timeout"`
	// DebianMirror is the apt mirror debootstrap and apt use; "" means the
	// first Debian mirror in the host's apt sources.
	DebianMirror string `koanf:"debian_mirror"`
	// DebianSuite is the Debian release of the executor image.
	DebianSuite string `koanf:"debian_suite"`
	// Executor is the repository name of tako's executor image.
	Executor string `koanf:"executor"`
	// BuildLimits bound every build step's container.
	BuildLimits BuildLimitsConfig `koanf:"build_limits"`
}

// BuildLimitsConfig bounds the containers that build images.
type BuildLimitsConfig struct {
	CPUs   float64 `koanf:"cpus"`
	Memory Size    `koanf:"memory"`
	Pids   int     `koanf:"pids"`
}

// MetricsConfig controls the Prometheus endpoint, GET /metrics.
type MetricsConfig struct {
	// Enabled serves /metrics.
	Enabled bool `koanf:"enabled"`
	// RequireAuth makes /metrics need an API key like the rest of the API
	// (when keys are configured); false leaves it open for scrapers.
	RequireAuth bool `koanf:"require_auth"`
	// SampleInterval is how often the gauges that need a query (queue
	// depth, Docker and database availability, the requirements cache) are
	// refreshed; a scrape never runs a query itself.
	SampleInterval Duration `koanf:"sample_interval"`
}

// UIConfig controls the web console, GET /ui.
type UIConfig struct {
	// Enabled serves the console; false leaves /ui unrouted (404), for a
	// deployment that wants the JSON API alone.
	Enabled bool `koanf:"enabled"`
}

// LogConfig controls tako's own logs.
type LogConfig struct {
	Format string `koanf:"format"` // auto (text on a TTY, JSON otherwise), json or text
	Level  string `koanf:"level"`  // debug, info, warn or error
}

// JobTypeConfig is one job type as written in tako.yaml. Unset fields
// inherit the built-in job type defaults and the global settings.
type JobTypeConfig struct {
	// AllowSourceBuilds overrides requirements.allow_source_builds for
	// this job type; unset inherits it.
	AllowSourceBuilds *bool `koanf:"allow_source_builds"`
	// CallbackURL is where a webhook goes when a job of this type ends,
	// unless the request or its API key names another.
	CallbackURL string `koanf:"callback_url"`
	// Concurrency is the most jobs of this type running at once on one
	// node; 0 means runner.max_concurrent.
	Concurrency  int               `koanf:"concurrency"`
	Env          map[string]string `koanf:"env"`
	Image        string            `koanf:"image"`
	Limits       JobLimitsConfig   `koanf:"limits"`
	Network      NetworkConfig     `koanf:"network"`
	Pool         PoolConfig        `koanf:"pool"`
	Preload      []string          `koanf:"preload"`
	Requirements []string          `koanf:"requirements"`
	// Runtime pins the OCI runtime: runc or runsc; "" lets security_mode
	// decide.
	Runtime        string   `koanf:"runtime"`
	SecurityMode   string   `koanf:"security_mode"`
	SystemPackages []string `koanf:"system_packages"`
}

// JobLimitsConfig is the limits block of a job type; zero means inherit.
type JobLimitsConfig struct {
	CPUs     float64  `koanf:"cpus"`
	FileSize Size     `koanf:"file_size"`
	Memory   Size     `koanf:"memory"`
	NoFile   int      `koanf:"nofile"`
	Pids     int      `koanf:"pids"`
	Timeout  Duration `koanf:"timeout"`
	Tmp      Size     `koanf:"tmp"`
}

// PoolConfig is the pool block of a job type; nil means inherit.
type PoolConfig struct {
	IdleTTL *Duration `koanf:"idle_ttl"`
	Max     *int      `koanf:"max"`
	Min     *int      `koanf:"min"`
}

// DefaultJobType returns what a job type gets for every field it leaves
// unset; it is also the built-in "default" job type when the file declares
// none.
func DefaultJobType() jobtypes.JobType {
	return jobtypes.JobType{
		Name:    jobtypes.DefaultName,
		Network: jobtypes.NetworkNone,
		Limits: jobtypes.Limits{
			CPUs:     1.0,
			FileSize: 100 << 20,
			Memory:   512 << 20,
			NoFile:   256,
			Pids:     128,
			Timeout:  30 * time.Second,
			Tmp:      64 << 20,
		},
		Pool: jobtypes.Pool{Min: 2, Max: 8, IdleTTL: 5 * time.Minute},
	}
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// PipIndex returns the pip settings in the form image builds take.
func (c *Config) PipIndex() jobtypes.PipIndex {
	return jobtypes.PipIndex{
		ExtraIndexURLs: c.Pip.ExtraIndexURLs,
		IndexURL:       c.Pip.IndexURL,
		TrustedHosts:   c.Pip.TrustedHosts,
	}
}

// Rescue returns how long a job may run before it is rescued from a node
// taken to be dead: queue.rescue_after, or limits.max_timeout plus five
// minutes when that is 0.
func (c *Config) Rescue() time.Duration {
	if c.Queue.RescueAfter != 0 {
		return c.Queue.RescueAfter.Std()
	}
	return c.Limits.MaxTimeout.Std() + 5*time.Minute
}

// ParseUIDRange reads runner.uid_range, "first-last": at least 16 uids,
// above 1000 (below are the host's accounts) and within what a uid holds.
func ParseUIDRange(s string) (first, count int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	lo, errLo := strconv.Atoi(strings.TrimSpace(a))
	hi, errHi := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case !ok || errLo != nil || errHi != nil:
		return 0, 0, fmt.Errorf("%q is not a range first-last, such as 200000-265535", s)
	case lo <= 1000:
		return 0, 0, fmt.Errorf("%q starts at or below 1000, among the host's own accounts", s)
	case hi < lo+15:
		return 0, 0, fmt.Errorf("%q holds fewer than 16 uids", s)
	case hi >= 1<<31-1:
		return 0, 0, fmt.Errorf("%q goes past the largest uid", s)
	}
	return lo, hi - lo + 1, nil
}

// AllowedHosts returns the Host header values the API answers, in the form
// of server.allowed_hosts: that list when it is set. Otherwise the default
// depends on who a browser could be made to reach. On a loopback
// server.host it is that address, localhost, 127.0.0.1 and [::1], any
// port, which refuses a web page that points a name of its own at
// 127.0.0.1 (DNS rebinding). On a wildcard (0.0.0.0, ::) or network
// address with API keys it is any host ("*"): clients reach such a server
// under names tako cannot know (DNS, a load balancer), and a page that
// rebinds a name to it still has no key. Without keys on a network address
// (server.allow_unauthenticated_network_access) it is the loopback names
// and the address itself: other names must be listed.
func (c *Config) AllowedHosts(haveKeys bool) []string {
	if len(c.Server.AllowedHosts) > 0 {
		return c.Server.AllowedHosts
	}
	host := strings.TrimSuffix(strings.ToLower(strings.Trim(c.Server.Host, "[]")), ".")
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && haveKeys {
		return []string{"*"}
	}
	hosts := []string{"localhost", "127.0.0.1", "[::1]"}
	own := host
	if ip != nil && ip.To4() == nil {
		own = "[" + host + "]"
	}
	// A wildcard address is nothing a client can name.
	if host != "" && !(ip != nil && ip.IsUnspecified()) && !slices.Contains(hosts, own) {
		hosts = append(hosts, own)
	}
	return hosts
}
