package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tako-run/tako/api"
	"github.com/tako-run/tako/internal/httpclient"
)

// statusUsage is the help text of tako status.
const statusUsage = `usage: tako status [--url URL] [--api-key KEY] [--header NAME] [--timeout 5s]

Asks a running tako server for GET /health, /pool/stats and /dlq/stats and
prints its state: Docker, gVisor, the database, the queue, each job type's
availability and pool, the dead-letter queue and the problems. It exits
non-zero when the server is degraded, cannot be reached, wants an API key
or refuses the one given, or does not answer as tako does.

Flags:
`

// Health statuses /health reports.
const (
	statusHealthy  = "healthy"
	statusDegraded = "degraded"
)

// statusConfig is tako status's validated command line.
type statusConfig struct {
	URL     string        // the server's base URL, without a trailing slash
	APIKey  string        // sent in Header when set
	Header  string        // the header the server reads keys from
	Timeout time.Duration // per request
}

// poolStats is the body of GET /pool/stats.
type poolStats struct {
	Pending      int                 `json:"pending"`
	Running      int                 `json:"running"`
	MaxWorkers   int                 `json:"max_workers"`
	MaxQueueSize int                 `json:"max_queue_size"`
	JobTypes     map[string]poolStat `json:"job_types"`
}

// poolStat is one job type's warm pool in GET /pool/stats.
type poolStat struct {
	Warm   int `json:"warm"`
	Busy   int `json:"busy"`
	Target int `json:"target"`
}

// deadLetterStats is the body of GET /dlq/stats.
type deadLetterStats struct {
	Total       int            `json:"total"`
	ByErrorType map[string]int `json:"by_error_type"`
}

// serverStatus is what tako status learned from a server. Health is always
// there; Pools and DeadLetters are nil when their route failed, and
// PoolsErr and DeadLettersErr say why.
type serverStatus struct {
	URL            string
	Health         api.HealthResponse
	Pools          *poolStats
	PoolsErr       error
	DeadLetters    *deadLetterStats
	DeadLettersErr error
}

// runStatus prints the state of a running tako server. It returns nil when
// the server is healthy and every route answered; otherwise an error that
// says what is wrong, after printing whatever the server did answer.
func runStatus(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, ok, err := parseStatusFlags(args, stderr)
	if err != nil || !ok {
		return err
	}
	client := newStatusClient(cfg)
	defer client.CloseIdleConnections()
	st, err := fetchStatus(ctx, client, cfg)
	if err != nil {
		return err
	}
	writeStatus(stdout, st)
	return statusOutcome(st)
}

// parseStatusFlags reads and checks tako status's arguments. Every error
// names the flag at fault and wraps errUsage; ok is false (with a nil
// error) when the user asked for help.
func parseStatusFlags(args []string, stderr io.Writer) (cfg statusConfig, ok bool, err error) {
	fs := newFlagSet("tako status", statusUsage, stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8000", "tako server `URL`")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API `KEY` for a server that has keys (needed for /pool/stats and /dlq/stats)")
	fs.StringVar(&cfg.Header, "header", "X-API-Key", "header `NAME` the API key is sent in (the server's auth.header)")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "how long each request may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil
		}
		return cfg, false, fmt.Errorf("%w: %v", errUsage, err)
	}
	bad := func(format string, a ...any) (statusConfig, bool, error) {
		return cfg, false, fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
	}
	u, err := url.Parse(cfg.URL)
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (tako status takes only flags)", fs.Arg(0))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return bad("--url must be an http:// or https:// URL, not %q", cfg.URL)
	case u.RawQuery != "" || u.Fragment != "":
		return bad("--url must be the server's base URL, without a query or fragment, not %q", cfg.URL)
	case cfg.Timeout <= 0:
		return bad("--timeout must be positive, not %s", cfg.Timeout)
	case !headerName(cfg.Header):
		return bad("--header must be an HTTP header name such as X-API-Key, not %q", cfg.Header)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return cfg, true, nil
}

// headerName reports whether s is a valid HTTP header name (an RFC 9110
// token).
func headerName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// newStatusClient returns the HTTP client tako status asks the server
// with: each request bounded by cfg.Timeout, the API key (if any) in
// cfg.Header.
func newStatusClient(cfg statusConfig) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Proxies come from the process environment, which commands do not
	// read behind run's back; tako is usually on loopback anyway.
	tr.Proxy = nil
	var rt http.RoundTripper = tr
	if cfg.APIKey != "" {
		rt = apiKeyHeader{name: cfg.Header, key: cfg.APIKey, next: tr}
	}
	return &http.Client{Transport: rt, Timeout: cfg.Timeout}
}

// apiKeyHeader adds an API key to every request, in the header name.
type apiKeyHeader struct {
	name, key string
	next      http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (h apiKeyHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(h.name, h.key)
	return h.next.RoundTrip(req)
}

// fetchStatus asks the server for its health, then its pools and its
// dead-letter queue. It fails when /health does not answer as tako does;
// a failure of the other two routes is kept in the result.
func fetchStatus(ctx context.Context, client *http.Client, cfg statusConfig) (serverStatus, error) {
	st := serverStatus{URL: cfg.URL}
	// A degraded server may answer 503, with the same body.
	if err := getStatusJSON(ctx, client, cfg, "/health", &st.Health, http.StatusServiceUnavailable); err != nil {
		return st, err
	}
	if s := st.Health.Status; s != statusHealthy && s != statusDegraded {
		return st, fmt.Errorf("%s did not answer as tako does: GET /health has status %q, not %q or %q", cfg.URL, s, statusHealthy, statusDegraded)
	}
	var pools poolStats
	if st.PoolsErr = getStatusJSON(ctx, client, cfg, "/pool/stats", &pools); st.PoolsErr == nil {
		st.Pools = &pools
	}
	var dead deadLetterStats
	if st.DeadLettersErr = getStatusJSON(ctx, client, cfg, "/dlq/stats", &dead); st.DeadLettersErr == nil {
		st.DeadLetters = &dead
	}
	return st, nil
}

// getStatusJSON GETs path from the server and decodes its JSON body into
// v. The body of a 200, or of one of the statuses also, is decoded; any
// other status is an error that says what the user can do about it.
func getStatusJSON(ctx context.Context, client *http.Client, cfg statusConfig, path string, v any, also ...int) error {
	code, body, err := httpclient.Do(ctx, client, http.MethodGet, cfg.URL+path, nil)
	if err != nil {
		return fmt.Errorf("cannot reach tako at %s: %w", cfg.URL, err)
	}
	switch {
	case code == http.StatusUnauthorized && cfg.APIKey == "":
		return fmt.Errorf("tako at %s needs an API key for GET %s: pass it with --api-key (the server says: %s)", cfg.URL, path, httpclient.ErrorDetail(body))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("tako at %s refused the API key given with --api-key for GET %s (HTTP %d): %s", cfg.URL, path, code, httpclient.ErrorDetail(body))
	case code == http.StatusNotFound:
		return fmt.Errorf("GET %s%s: HTTP 404 (is the server a tako older than this command?): %s", cfg.URL, path, httpclient.ErrorDetail(body))
	case code != http.StatusOK && !slices.Contains(also, code):
		return fmt.Errorf("GET %s%s: HTTP %d: %s", cfg.URL, path, code, httpclient.ErrorDetail(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		if code != http.StatusOK {
			// Not tako's degraded answer, but perhaps a proxy's page.
			return fmt.Errorf("GET %s%s: HTTP %d: %s", cfg.URL, path, code, httpclient.ErrorDetail(body))
		}
		return fmt.Errorf("%s did not answer as tako does: GET %s: %v (the answer begins %q)", cfg.URL, path, err, httpclient.Clip(string(body), 80))
	}
	return nil
}

// writeStatus prints st as a report, one fact a line.
func writeStatus(w io.Writer, st serverStatus) {
	h := st.Health
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-15s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	line("server", "%s", st.URL)
	line("status", "%s", h.Status)
	line("version", "%s", orUnknown(h.Version))
	line("docker", "%s", availability(h.DockerAvailable, ""))
	line("gvisor", "%s", availability(h.GVisorAvailable, h.GVisorReason))
	line("database", "%s", availability(h.DatabaseAvailable, ""))
	q := h.QueueStats
	line("queue", "%d pending, %d running of %d workers, at most %d queued", q.Pending, q.Running, q.MaxWorkers, q.MaxQueueSize)

	fmt.Fprintln(w, "job types:")
	names := map[string]bool{}
	for name := range h.JobTypes {
		names[name] = true
	}
	if st.Pools != nil {
		for name := range st.Pools.JobTypes {
			names[name] = true
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		pool := "pool unknown"
		if st.Pools != nil {
			if p, ok := st.Pools.JobTypes[name]; ok {
				pool = fmt.Sprintf("pool %d warm, %d busy, target %d", p.Warm, p.Busy, p.Target)
			}
		}
		avail := "availability unknown"
		if jt, ok := h.JobTypes[name]; ok {
			avail = availability(jt.Available, jt.UnavailableReason)
		}
		fmt.Fprintf(w, "  %-20s %-40s %s\n", name, pool, avail)
	}
	if st.PoolsErr != nil {
		fmt.Fprintf(w, "  (pools not shown: %v)\n", st.PoolsErr)
	}

	switch d := st.DeadLetters; {
	case d == nil:
		line("dead letters", "not shown: %v", st.DeadLettersErr)
	case len(d.ByErrorType) == 0:
		line("dead letters", "%d", d.Total)
	default:
		var parts []string
		for _, typ := range slices.Sorted(maps.Keys(d.ByErrorType)) {
			parts = append(parts, fmt.Sprintf("%s %d", typ, d.ByErrorType[typ]))
		}
		line("dead letters", "%d (%s)", d.Total, strings.Join(parts, ", "))
	}

	if len(h.Problems) == 0 {
		line("problems", "none")
		return
	}
	fmt.Fprintln(w, "problems:")
	for _, p := range h.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

// availability describes whether something can be used, and why not.
func availability(ok bool, reason string) string {
	switch {
	case ok:
		return "available"
	case reason != "":
		return "unavailable: " + reason
	default:
		return "unavailable"
	}
}

// orUnknown is s, or "unknown" when it is empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// statusOutcome is tako status's result: nil when the server is healthy
// and every route answered; otherwise an error naming the degradation
// first, then the routes that failed.
func statusOutcome(st serverStatus) error {
	var parts []string
	if st.Health.Status != statusHealthy {
		msg := fmt.Sprintf("tako at %s is %s", st.URL, st.Health.Status)
		if len(st.Health.Problems) > 0 {
			msg += ": " + strings.Join(st.Health.Problems, "; ")
		}
		parts = append(parts, msg)
	}
	for _, err := range []error{st.PoolsErr, st.DeadLettersErr} {
		if err != nil {
			parts = append(parts, err.Error())
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; and "))
}
