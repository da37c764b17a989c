package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

const (
	// minMemory is the smallest memory limit Docker accepts.
	minMemory = 6 << 20
	// maxCPUs is the largest CPU quota a job type may ask for.
	maxCPUs = 64
)

var (
	// debianPackagePattern is Debian policy's package name syntax.
	debianPackagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// modulePattern is a dotted Python module name.
	modulePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	// envNamePattern is a POSIX environment variable name.
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks every value against its rules and returns all problems
// joined, one per line, each naming its key; nil means the configuration is
// usable. Load calls it; call it again after changing a Config by hand.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	c.validateRunner(&p)
	c.validateRole(&p)
	if c.Cluster.HeartbeatInterval < Duration(100*time.Millisecond) {
		p.add("cluster.heartbeat_interval", "%s must be at least 0.1s", seconds(c.Cluster.HeartbeatInterval))
	}
	if c.Cluster.NodeTimeout < 2*c.Cluster.HeartbeatInterval {
		p.add("cluster.node_timeout", "%s must be at least twice cluster.heartbeat_interval (%s)", seconds(c.Cluster.NodeTimeout), seconds(c.Cluster.HeartbeatInterval))
	}
	c.validateLimits(&p)
	c.validateImages(&p)
	c.validatePip(&p)
	c.validateDatabase(&p)
	c.validateQueue(&p)
	c.validateStreaming(&p)
	c.validateWebhooks(&p)
	c.validateEgress(&p)
	if c.Requirements.MaxConcurrentBuilds < 1 {
		p.add("requirements.max_concurrent_builds", "%d must be at least 1", c.Requirements.MaxConcurrentBuilds)
	}
	if c.Requirements.Cache.MaxImages < 1 {
		p.add("requirements.cache.max_images", "%d must be at least 1", c.Requirements.Cache.MaxImages)
	}
	p.positiveSize("requirements.cache.max_bytes", c.Requirements.Cache.MaxBytes)
	if c.Requirements.FailureTTL < 0 {
		p.add("requirements.failure_ttl", "%s must not be negative", seconds(c.Requirements.FailureTTL))
	}

	p.oneOf("security_mode", c.SecurityMode, "permissive", "strict")
	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "auto", "json", "text")
	if _, err := c.APIKeys(); err != nil {
		p = append(p, err)
	}
	if !headerName.MatchString(c.Auth.Header) {
		p.add("auth.header", "%q is not an HTTP header name", c.Auth.Header)
	}
	if q := c.Auth.DefaultQuota; q.MaxPending < 0 {
		p.add("auth.default_quota.max_pending", "%d must not be negative (0 means no limit)", q.MaxPending)
	}
	if q := c.Auth.DefaultQuota; q.MaxConcurrent < 0 {
		p.add("auth.default_quota.max_concurrent", "%d must not be negative (0 means no limit)", q.MaxConcurrent)
	}
	if c.Server.RateLimit.RequestsPerSecond < 0 {
		p.add("server.rate_limit.requests_per_second", "%v must not be negative (0 turns rate limiting off)", c.Server.RateLimit.RequestsPerSecond)
	}
	if c.Server.RateLimit.RequestsPerSecond > 0 && c.Server.RateLimit.Burst < 1 {
		p.add("server.rate_limit.burst", "%d must be at least 1", c.Server.RateLimit.Burst)
	}
	if c.Metrics.SampleInterval < Duration(100*time.Millisecond) {
		p.add("metrics.sample_interval", "%s must be at least 100ms", seconds(c.Metrics.SampleInterval))
	}

	names := make([]string, 0, len(c.JobTypes))
	for name := range c.JobTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c.validateJobType(&p, name, c.JobTypes[name])
	}
	return errors.Join(p...)
}

// headerName is an HTTP header field name (RFC 9110 token).
var headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func (c *Config) validateDatabase(p *problems) {
	d := c.Database
	if d.URL != "" {
		u, err := url.Parse(d.URL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			p.add("database.url", "must be a postgres:// or postgresql:// URL")
		}
	}
	if d.MaxConns < 2 {
		p.add("database.max_conns", "%d must be at least 2", d.MaxConns)
	}
	if d.SyncHistoryCommit != "async" && d.SyncHistoryCommit != "sync" {
		p.add("database.sync_history_commit", "%q must be async or sync", d.SyncHistoryCommit)
	}
	a := d.AutoStart
	if a.Port < 1 || a.Port > 65535 {
		p.add("database.auto_start.port", "%d is not a port (1-65535)", a.Port)
	}
	for key, v := range map[string]string{"database.auto_start.image": a.Image, "database.auto_start.container": a.Container, "database.auto_start.volume": a.Volume} {
		if strings.TrimSpace(v) == "" {
			p.add(key, "must not be empty")
		}
	}
}

func (c *Config) validateQueue(p *problems) {
	q := c.Queue
	if q.MaxPending < 1 {
		p.add("queue.max_pending", "%d must be at least 1", q.MaxPending)
	}
	if q.MaxAttempts < 1 || q.MaxAttempts > 25 {
		p.add("queue.max_attempts", "%d must be between 1 and 25", q.MaxAttempts)
	}
	if q.RetentionDays < 1 {
		p.add("queue.retention_days", "%d must be at least 1", q.RetentionDays)
	}
	if q.RescueAfter != 0 && q.RescueAfter <= c.Limits.MaxTimeout {
		p.add("queue.rescue_after", "%s must exceed limits.max_timeout (%s): a job still running after it is run again elsewhere", seconds(q.RescueAfter), seconds(c.Limits.MaxTimeout))
	}
}

func (c *Config) validateServer(p *problems) {
	s := c.Server
	if strings.TrimSpace(s.Host) == "" {
		p.add("server.host", "must not be empty (127.0.0.1 listens on loopback only)")
	}
	if s.Port < 0 || s.Port > 65535 {
		p.add("server.port", "%d is not a port (0-65535; 0 picks a free one)", s.Port)
	}
	p.positiveSize("server.max_body_bytes", s.MaxBodyBytes)
	for i, h := range s.AllowedHosts {
		if !validHostEntry(h) {
			p.add(fmt.Sprintf("server.allowed_hosts[%d]", i), "%q is not a host: write a name or address, optionally with :port (api.example.com, 10.0.0.5:8000, [::1]), *.example.com for its subdomains, or * for any host", h)
		}
	}
	for i, o := range s.CORSOrigins {
		if err := checkOrigin(o); err != "" {
			p.add(fmt.Sprintf("server.cors_origins[%d]", i), "%q is not an origin: %s", o, err)
		}
	}
}

// validateRole checks server.role and what it needs: an api node runs no
// Docker, so it cannot start a database of its own; a worker serves only
// job types that exist.
func (c *Config) validateRole(p *problems) {
	p.oneOf("server.role", c.Server.Role, RoleAll, RoleAPI, RoleWorker)
	if c.Server.Role == RoleAPI && c.Database.URL == "" {
		p.add("database.url", "must be set when server.role is api: an api node runs no Docker, so it cannot start a database of its own")
	}
	for i, name := range c.Worker.JobTypes {
		if _, ok := c.JobTypes[name]; !ok && name != jobtypes.DefaultName {
			p.add(fmt.Sprintf("worker.job_types[%d]", i), "%q is not a configured job type", name)
		}
	}
}

// hostLabel is one label of a DNS name, or a part of an IPv4 address.
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$`)

// validHostEntry reports whether h is an entry of server.allowed_hosts:
// "*", "*.<name>", or a name or IP address with an optional port, an IPv6
// address in brackets.
func validHostEntry(h string) bool {
	switch {
	case h == "*":
		return true
	case strings.HasPrefix(h, "*."):
		return validHostName(h[2:])
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return false
		}
		host, port = h[1:end], strings.TrimPrefix(h[end+1:], ":")
		if h[end+1:] != "" && !strings.HasPrefix(h[end+1:], ":") {
			return false
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return false
		}
	} else {
		if strings.Count(h, ":") > 1 { // an IPv6 address without brackets, and so without a port
			ip := net.ParseIP(h)
			return ip != nil && ip.To4() == nil
		}
		if i := strings.LastIndex(h, ":"); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if net.ParseIP(host) == nil && !validHostName(host) {
			return false
		}
	}
	if port != "" || strings.HasSuffix(h, ":") {
		n, err := strconv.Atoi(port)
		return err == nil && n >= 1 && n <= 65535 && port == strconv.Itoa(n)
	}
	return true
}

// validHostName reports whether h is a DNS name: labels joined by dots,
// with an optional final dot.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabel.MatchString(label) {
			return false
		}
	}
	return true
}

// checkOrigin says what is wrong with o as an entry of server.cors_origins,
// or "": it must be exactly scheme://host[:port], http or https.
func checkOrigin(o string) string {
	u, err := url.Parse(o)
	switch {
	case o == "*" || strings.Contains(o, "*"):
		return "name each origin; wildcards are not allowed"
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "write it as scheme://host[:port], such as https://app.example.com"
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, ", \t"):
		return "an origin has no user, path, query or fragment"
	case !validHostEntry(u.Host):
		return "its host is not a name or address"
	}
	return ""
}

func (c *Config) validateRunner(p *problems) {
	r := c.Runner
	if r.MaxConcurrent < 1 {
		p.add("runner.max_concurrent", "%d must be at least 1", r.MaxConcurrent)
	}
	if r.MaxConcurrentStarts < 1 {
		p.add("runner.max_concurrent_starts", "%d must be at least 1", r.MaxConcurrentStarts)
	}
	if r.ReapInterval < Duration(time.Second) {
		p.add("runner.reap_interval", "%s must be at least 1s", seconds(r.ReapInterval))
	}
	if r.AcquireTimeout < 0 {
		p.add("runner.acquire_timeout", "%s must not be negative", seconds(r.AcquireTimeout))
	}
	if _, _, err := ParseUIDRange(r.UIDRange); err != nil {
		p.add("runner.uid_range", "%v", err)
	}
	if !runtimeName.MatchString(r.GVisorRuntime) {
		p.add("runner.gvisor_runtime", "%q is not a Docker runtime name: letters, digits, '.', '_' and '-'", r.GVisorRuntime)
	}
	for i, a := range r.GVisorRequiredArgs {
		if !strings.HasPrefix(a, "--") || strings.ContainsAny(a, " \t\r\n") {
			p.add(fmt.Sprintf("runner.gvisor_required_args[%d]", i), "%q is not a runsc flag such as --host-fifo=open", a)
		}
	}
}

// runtimeName is what a Docker runtime name may look like.
var runtimeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (c *Config) validateLimits(p *problems) {
	l := c.Limits
	if l.MaxTimeout <= 0 {
		p.add("limits.max_timeout", "%s must be positive", seconds(l.MaxTimeout))
	}
	p.positiveSize("limits.max_code_bytes", l.MaxCodeBytes)
	p.positiveSize("limits.max_input_bytes", l.MaxInputBytes)
	p.positiveSize("limits.max_stdout_bytes", l.MaxStdoutBytes)
	p.positiveSize("limits.max_stderr_bytes", l.MaxStderrBytes)
	if l.MaxArtifacts < 0 {
		p.add("limits.max_artifacts", "%d must not be negative", l.MaxArtifacts)
	}
	if l.MaxArtifactBytes > l.MaxTotalArtifactBytes {
		p.add("limits.max_artifact_bytes", "%s exceeds limits.max_total_artifact_bytes (%s)",
			jobtypes.FormatSize(int64(l.MaxArtifactBytes)), jobtypes.FormatSize(int64(l.MaxTotalArtifactBytes)))
	}
	if l.MaxOutputBytes < l.MaxTotalArtifactBytes {
		p.add("limits.max_output_bytes", "%s is less than limits.max_total_artifact_bytes (%s): a program could not write the artifacts it may return",
			jobtypes.FormatSize(int64(l.MaxOutputBytes)), jobtypes.FormatSize(int64(l.MaxTotalArtifactBytes)))
	}
}

func (c *Config) validateImages(p *problems) {
	im := c.Images
	p.imageRef("images.base_image", im.BaseImage, true)
	p.imageRef("images.executor", im.Executor, true)
	if im.BuildTimeout <= 0 {
		p.add("images.build_timeout", "%s must be positive", seconds(im.BuildTimeout))
	}
	if strings.TrimSpace(im.DebianSuite) == "" {
		p.add("images.debian_suite", "must not be empty")
	}
	p.httpURL("images.debian_mirror", im.DebianMirror)
	if im.BuildLimits.CPUs <= 0 {
		p.add("images.build_limits.cpus", "%g must be positive", im.BuildLimits.CPUs)
	}
	if im.BuildLimits.Memory < 64<<20 {
		p.add("images.build_limits.memory", "%s must be at least 64MiB", jobtypes.FormatSize(int64(im.BuildLimits.Memory)))
	}
	if im.BuildLimits.Pids < 16 {
		p.add("images.build_limits.pids", "%d must be at least 16", im.BuildLimits.Pids)
	}
}

func (c *Config) validatePip(p *problems) {
	p.httpURL("pip.index_url", c.Pip.IndexURL)
	for i, u := range c.Pip.ExtraIndexURLs {
		if u == "" {
			p.add(fmt.Sprintf("pip.extra_index_urls[%d]", i), "must not be empty")
		}
		p.httpURL(fmt.Sprintf("pip.extra_index_urls[%d]", i), u)
	}
	for i, h := range c.Pip.TrustedHosts {
		if h == "" || strings.ContainsAny(h, " \t\r\n/@") {
			p.add(fmt.Sprintf("pip.trusted_hosts[%d]", i), "%q is not a host name (host or host:port)", h)
		}
	}
}

// validateJobType checks one job type as written and, where inheritance
// matters (pool bounds, the timeout ceiling), as resolved.
func (c *Config) validateJobType(p *problems, name string, jc JobTypeConfig) {
	key := "job_types." + name
	if jc.Concurrency < 0 {
		p.add(key+".concurrency", "%d must not be negative (0 means runner.max_concurrent)", jc.Concurrency)
	}
	if !jobtypes.ValidName(name) {
		p.add(key, "%q is not a job type name: use lowercase letters, digits, '-' and '_' (at most 63, starting with a letter or digit)", name)
	}
	if jc.SecurityMode != "" {
		p.oneOf(key+".security_mode", jc.SecurityMode, "permissive", "strict")
	}
	if jc.Runtime != "" {
		p.oneOf(key+".runtime", jc.Runtime, string(jobtypes.RuntimeRunc), string(jobtypes.RuntimeGVisor))
	}
	mode := cmp.Or(jc.SecurityMode, c.SecurityMode)
	if jc.Runtime == string(jobtypes.RuntimeRunc) && mode == string(jobtypes.Strict) {
		p.add(key+".runtime", "runc cannot honour security_mode strict, which requires gVisor: use runsc, or leave runtime unset")
	}
	validateNetwork(p, key+".network", jc.Network, mode)
	if jc.Image != "" {
		p.imageRef(key+".image", jc.Image, false)
	}
	c.callbackURL(p, key+".callback_url", jc.CallbackURL)

	envNames := make([]string, 0, len(jc.Env))
	for n := range jc.Env {
		envNames = append(envNames, n)
	}
	sort.Strings(envNames)
	for _, n := range envNames {
		if !envNamePattern.MatchString(n) {
			p.add(key+".env", "%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", n)
		} else if strings.ContainsRune(jc.Env[n], 0) {
			p.add(key+".env."+n, "must not contain a NUL byte")
		}
	}
	for i, pkg := range jc.SystemPackages {
		if !debianPackagePattern.MatchString(pkg) {
			p.add(fmt.Sprintf("%s.system_packages[%d]", key, i), "%q is not a Debian package name", pkg)
		}
	}
	for i, req := range jc.Requirements {
		if err := jobtypes.ValidateRequirement(req); err != nil {
			p.add(fmt.Sprintf("%s.requirements[%d]", key, i), "%v", err)
		}
	}
	for i, mod := range jc.Preload {
		if !modulePattern.MatchString(mod) {
			p.add(fmt.Sprintf("%s.preload[%d]", key, i), "%q is not a Python module name", mod)
		}
	}

	c.validateJobLimits(p, key+".limits", jc.Limits)
	c.validatePool(p, key+".pool", c.resolve(name, jc).Pool, jc.Pool)
}

func (c *Config) validateJobLimits(p *problems, key string, l JobLimitsConfig) {
	switch {
	case l.Timeout < 0:
		p.add(key+".timeout", "%s must not be negative", seconds(l.Timeout))
	case c.Limits.MaxTimeout > 0 && l.Timeout > c.Limits.MaxTimeout:
		p.addf("%s.timeout (%s) exceeds limits.max_timeout (%s)", key, seconds(l.Timeout), seconds(c.Limits.MaxTimeout))
	}
	if l.Memory != 0 && l.Memory < minMemory {
		p.add(key+".memory", "%s is below the minimum of %s", jobtypes.FormatSize(int64(l.Memory)), jobtypes.FormatSize(minMemory))
	}
	if l.CPUs < 0 || l.CPUs > maxCPUs {
		p.add(key+".cpus", "%g must be more than 0 and at most %d", l.CPUs, maxCPUs)
	}
	if l.Pids < 0 {
		p.add(key+".pids", "%d must be at least 1", l.Pids)
	}
	if l.NoFile < 0 {
		p.add(key+".nofile", "%d must be at least 1", l.NoFile)
	}
}

// validatePool checks the bounds the user wrote (set) and the pool they
// produce after inheritance (eff).
func (c *Config) validatePool(p *problems, key string, eff jobtypes.Pool, set PoolConfig) {
	bad := false
	if set.Min != nil && *set.Min < 0 {
		p.add(key+".min", "%d must not be negative", *set.Min)
		bad = true
	}
	if set.Max != nil && *set.Max < 0 {
		p.add(key+".max", "%d must not be negative", *set.Max)
		bad = true
	}
	if set.IdleTTL != nil && *set.IdleTTL < 0 {
		p.add(key+".idle_ttl", "%s must not be negative", seconds(*set.IdleTTL))
	}
	switch {
	case bad:
	case eff.Max < eff.Min:
		p.add(key+".max", "%d is less than %s.min (%d)", eff.Max, key, eff.Min)
	case eff.Max < 1 && eff.Min != 0:
		p.add(key+".max", "%d must be at least 1 (or set min and max to 0 for no pool)", eff.Max)
	}
}

// problems collects validation errors, each prefixed "config: ".
type problems []error

// add records a problem with the value of key.
func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
}

// addf records a problem that names its keys itself.
func (p *problems) addf(format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s", fmt.Sprintf(format, args...)))
}

func (p *problems) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	p.add(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (p *problems) positiveSize(key string, s Size) {
	if s <= 0 {
		p.add(key, "%d must be positive", s)
	}
}

// httpURL checks that a URL, when set, is absolute http or https.
func (p *problems) httpURL(key, value string) {
	if value == "" {
		return
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "%q is not an http(s) URL", value)
	}
}

// imageRef does a light check of a Docker image reference; the engine has
// the final word.
func (p *problems) imageRef(key, value string, required bool) {
	switch {
	case value == "" && required:
		p.add(key, "must not be empty")
	case value != "" && (strings.HasPrefix(value, "-") || strings.ContainsAny(value, " \t\r\n")):
		p.add(key, "%q is not an image reference", value)
	}
}

// seconds renders d the way the configuration is usually written: "600s"
// rather than "10m0s".
func seconds(d Duration) string {
	if td := time.Duration(d); td%time.Second == 0 {
		return fmt.Sprintf("%ds", td/time.Second)
	}
	return time.Duration(d).String()
}
