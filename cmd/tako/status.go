package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tako-run/tako/client"
	"github.com/tako-run/tako/internal/oneline"
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
	server  serverFlags   // --url and --api-key
	Header  string        // the header the server reads keys from
	Timeout time.Duration // per request
}

// serverStatus is what tako status learned from a server. Health is always
// there; Pools and DeadLetters are nil when their route failed, and
// PoolsErr and DeadLettersErr say why.
type serverStatus struct {
	URL            string
	Health         client.Health
	Pools          *client.PoolStats
	PoolsErr       error
	DeadLetters    *client.DeadLetterStats
	DeadLettersErr error
}

// runStatus prints the state of a running tako server. It returns nil when
// the server is healthy and every route answered; otherwise an error that
// says what is wrong, after printing whatever the server did answer.
func runStatus(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, ok, err := parseStatusFlags(args, environ, stderr)
	if err != nil || !ok {
		return err
	}
	// No retries: a status is a snapshot, and a degraded server's 503 is
	// an answer.
	c, err := cfg.server.newClient(cfg.Header, cfg.Timeout, client.WithRetries(0))
	if err != nil {
		return err
	}
	st, err := fetchStatus(ctx, c, cfg)
	if err != nil {
		return err
	}
	writeStatus(stdout, st)
	return statusOutcome(st)
}

// parseStatusFlags reads and checks tako status's arguments. Every error
// names the flag at fault and wraps errUsage; ok is false (with a nil
// error) when the user asked for help.
func parseStatusFlags(args []string, environ []string, stderr io.Writer) (cfg statusConfig, ok bool, err error) {
	fs := newFlagSet("tako status", statusUsage, stderr)
	sf := addServerFlags(fs, environ)
	fs.StringVar(&cfg.Header, "header", client.DefaultAPIKeyHeader, "header `NAME` the API key is sent in (the server's auth.header)")
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
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q (tako status takes only flags)", fs.Arg(0))
	case cfg.Timeout <= 0:
		return bad("--timeout must be positive, not %s", cfg.Timeout)
	case !headerName(cfg.Header):
		return bad("--header must be an HTTP header name such as X-API-Key, not %q", cfg.Header)
	}
	if err := sf.check(); err != nil {
		return cfg, false, err
	}
	cfg.server = *sf
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

// fetchStatus asks the server for its health, then its pools and its
// dead-letter queue. It fails when /health does not answer as tako does;
// a failure of the other two routes is kept in the result.
func fetchStatus(ctx context.Context, c *client.Client, cfg statusConfig) (serverStatus, error) {
	st := serverStatus{URL: cfg.server.URL}
	h, err := c.Health(ctx)
	if err != nil {
		return st, statusError(cfg, "/health", err)
	}
	st.Health = *h
	if s := h.Status; s != statusHealthy && s != statusDegraded {
		return st, fmt.Errorf("%s did not answer as tako does: GET /health has status %q, not %q or %q", st.URL, s, statusHealthy, statusDegraded)
	}
	if st.Pools, err = c.PoolStats(ctx); err != nil {
		st.PoolsErr = statusError(cfg, "/pool/stats", err)
	}
	if st.DeadLetters, err = c.DeadLetterStats(ctx); err != nil {
		st.DeadLettersErr = statusError(cfg, "/dlq/stats", err)
	}
	return st, nil
}

// statusError says what the client's error err on GET path means for the
// user, and what they can do about it.
func statusError(cfg statusConfig, path string, err error) error {
	base := cfg.server.URL
	var (
		apiErr *client.APIError
		bad    *client.BadAnswerError
	)
	switch {
	case errors.As(err, &bad):
		return fmt.Errorf("%s did not answer as tako does: GET %s: %v (the answer begins %q)", base, path, bad.Err, oneline.Clip(bad.Body, 80))
	case !errors.As(err, &apiErr):
		return fmt.Errorf("cannot reach tako at %s: %w", base, err)
	}
	code, detail := apiErr.Status, oneline.Clip(apiErr.Detail, 200)
	switch {
	case code == http.StatusUnauthorized && cfg.server.APIKey == "":
		return fmt.Errorf("tako at %s needs an API key for GET %s: pass it with --api-key (the server says: %s)", base, path, detail)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("tako at %s refused the API key given with --api-key for GET %s (HTTP %d): %s", base, path, code, detail)
	case code == http.StatusNotFound:
		return fmt.Errorf("GET %s%s: HTTP 404 (is the server a tako older than this command?): %s", base, path, detail)
	default:
		return fmt.Errorf("GET %s%s: HTTP %d: %s", base, path, code, detail)
	}
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
