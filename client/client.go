// Package client is a Go client for tako's HTTP API. It uses the standard
// library only.
//
// A program that fails is a normal result (Execution.Success is false); an
// error is returned only when the request itself failed, as an *APIError
// when the server answered with an error status.
//
//	c, err := client.New("http://127.0.0.1:8000", client.WithAPIKey(os.Getenv("TAKO_API_KEY")))
//	if err != nil {
//		log.Fatal(err)
//	}
//	res, err := c.Execute(ctx, client.Request{Code: "print(1 + 1)"})
//	if err != nil {
//		log.Fatal(err) // the request failed; see *client.APIError
//	}
//	fmt.Print(res.Stdout) // "2\n"; res.Success is false when the program failed
//
// Requests are retried only where that is safe: every GET, on connection
// errors and on 503 and 429 (honouring Retry-After); Submit only with an
// idempotency key; Execute, Cancel, Rerun and Fork only when the
// connection could not be established. A Client is safe for concurrent
// use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultAPIKeyHeader is the header the server reads API keys from unless
// it is configured otherwise (auth.header).
const DefaultAPIKeyHeader = "X-API-Key"

// DefaultRetries is how many times a request that may be retried is tried
// again, unless WithRetries says otherwise.
const DefaultRetries = 3

// serverWaitCap is the longest long poll the server accepts (timeout=300).
const serverWaitCap = 300 * time.Second

// Client calls one tako server. Build it with New; it is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	http      *http.Client
	apiKey    string
	keyHeader string
	retries   int

	// Tests shorten these.
	backoff       time.Duration // first wait between retries without Retry-After
	maxRetryAfter time.Duration // a longer Retry-After is not waited for
	waitCap       time.Duration // longest single long poll in Wait
}

// Option configures a Client in New.
type Option func(*Client) error

// WithAPIKey sends key with every request, in the header named by
// WithAPIKeyHeader (DefaultAPIKeyHeader unless set).
func WithAPIKey(key string) Option {
	return func(c *Client) error {
		c.apiKey = key
		return nil
	}
}

// WithAPIKeyHeader names the header the API key goes in, for a server
// whose auth.header is not DefaultAPIKeyHeader.
func WithAPIKeyHeader(name string) Option {
	return func(c *Client) error {
		if strings.TrimSpace(name) == "" {
			return errors.New("api key header name is empty")
		}
		c.keyHeader = name
		return nil
	}
}

// WithHTTPClient makes the Client send its requests through hc. Long polls
// and event streams last long: hc should not have a Timeout shorter than
// them; bound calls with their context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("http client is nil")
		}
		c.http = hc
		return nil
	}
}

// WithRetries sets how many times a request that may be retried is tried
// again after its first attempt; 0 turns retries off.
func WithRetries(n int) Option {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("retries must be 0 or more, not %d", n)
		}
		c.retries = n
		return nil
	}
}

// New returns a Client for the server at baseURL, such as
// "http://127.0.0.1:8000" (a path prefix is kept). It fails when baseURL
// is not an absolute http or https URL or an option is invalid.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("base url %q: want http:// or https:// and a host", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{
		base:          u,
		http:          &http.Client{},
		keyHeader:     DefaultAPIKeyHeader,
		retries:       DefaultRetries,
		backoff:       250 * time.Millisecond,
		maxRetryAfter: 30 * time.Second,
		waitCap:       serverWaitCap,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("client option: %w", err)
		}
	}
	return c, nil
}

// call is one API request: what to send and when it may be retried.
type call struct {
	method string
	path   string // already escaped
	query  url.Values
	body   any // encoded as JSON when not nil
	header http.Header
	retry  retryPolicy
	// accept are statuses of 400 or more that are answers of the route,
	// returned as they are rather than as an *APIError (and not retried).
	accept []int
}

// send makes the request, with retries as c.retry allows, and returns the
// response when its status is below 400 (the caller closes its body).
// Any other status is an *APIError.
func (c *Client) send(ctx context.Context, r call) (*http.Response, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	target := c.base.String() + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	return c.withRetries(ctx, r.retry, func() (*http.Response, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		for k, vs := range r.header {
			req.Header[k] = vs
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if req.Header.Get("Accept") == "" {
			req.Header.Set("Accept", "application/json")
		}
		if c.apiKey != "" {
			req.Header.Set(c.keyHeader, c.apiKey)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
		}
		if resp.StatusCode >= 400 && !slices.Contains(r.accept, resp.StatusCode) {
			defer resp.Body.Close()
			return nil, newAPIError(resp)
		}
		return resp, nil
	})
}

// do sends r and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, r call, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeAnswer(resp, r, out)
}

// decodeAnswer reads resp, the answer to r, and decodes its JSON into
// out. An answer that is not that JSON is a *BadAnswerError.
func decodeAnswer(resp *http.Response, r call, out any) error {
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", r.method, r.path, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &BadAnswerError{Method: r.method, Path: r.path, Status: resp.StatusCode, Body: clip(string(raw), maxBadAnswerBody), Err: err}
	}
	return nil
}

// jobPath is /jobs/{id} followed by rest, with id escaped.
func jobPath(id, rest string) string {
	return "/jobs/" + url.PathEscape(id) + rest
}

// Health is the body of GET /health: whether the server and its
// dependencies work. Status is "healthy" or "degraded", with Problems
// saying why.
type Health struct {
	Status            string                         `json:"status"`
	Role              string                         `json:"role"`
	Node              string                         `json:"node"`
	Version           string                         `json:"version"`
	CheckedAt         time.Time                      `json:"checked_at"`
	DockerAvailable   bool                           `json:"docker_available"`
	GVisorAvailable   bool                           `json:"gvisor_available"`
	GVisorReason      string                         `json:"gvisor_reason"` // why gVisor is not usable; "" when it is
	DatabaseAvailable bool                           `json:"database_available"`
	QueueStats        QueueStats                     `json:"queue_stats"`
	JobTypes          map[string]JobTypeAvailability `json:"job_types"`
	Problems          []string                       `json:"problems"`
}

// QueueStats are the original's worker pool statistics, in Health and
// PoolStats: jobs queued over all nodes, running on the node that answered
// and its slots, and the queue's bound.
type QueueStats struct {
	Pending      int `json:"pending"`
	Running      int `json:"running"`
	MaxWorkers   int `json:"max_workers"`
	MaxQueueSize int `json:"max_queue_size"`
}

// JobTypeAvailability says whether a job type can run on the server.
type JobTypeAvailability struct {
	Available         bool   `json:"available"`
	UnavailableReason string `json:"unavailable_reason,omitempty"`
}

// Health returns the server's health. A degraded server is a normal
// answer (Status "degraded"), not an error, also when it comes with a 503
// (as Tako VM sends it); a 503 without a health body (a proxy's) is an
// *APIError, and is not retried. An answer that is not a health body at all is a
// *BadAnswerError.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	r := call{method: http.MethodGet, path: "/health", retry: retrySafe, accept: []int{http.StatusServiceUnavailable}}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		var h Health
		if err := decodeAnswer(resp, r, &h); err != nil {
			return nil, err
		}
		return &h, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", r.method, r.path, err)
	}
	var h Health
	if json.Unmarshal(raw, &h) == nil && h.Status != "" {
		return &h, nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return nil, newAPIError(resp)
}

// JobType is one job type of GET /job-types: what it runs in, its limits
// and whether it can run now.
type JobType struct {
	Name              string   `json:"name"`
	Image             string   `json:"image"`
	ImageExists       bool     `json:"image_exists"`
	SystemPackages    []string `json:"system_packages"`
	Requirements      []string `json:"requirements"`
	Preload           []string `json:"preload"`
	PythonVersion     *string  `json:"python_version"`
	MemoryLimit       string   `json:"memory_limit"`
	CPULimit          float64  `json:"cpu_limit"`
	Timeout           int64    `json:"timeout"` // seconds
	Network           string   `json:"network"`
	NetworkAllow      []string `json:"network_allow,omitempty"`
	SecurityMode      string   `json:"security_mode"`
	Runtime           string   `json:"runtime"`
	Available         bool     `json:"available"`
	UnavailableReason string   `json:"unavailable_reason,omitempty"`
	// Pool is its prewarmed-container policy and the pool's state on the
	// node that answered.
	Pool JobTypePoolPolicy `json:"pool"`
	// Limits are its resource limits in base units.
	Limits JobTypeLimits `json:"limits"`
}

// JobTypePoolPolicy is a job type's prewarmed-container policy (Min, Max,
// IdleTTLSeconds) and its pool's live state on the node that answered
// (JobTypePool). Max 0 means the job type has no pool.
type JobTypePoolPolicy struct {
	JobTypePool
	Min            int     `json:"min"`
	Max            int     `json:"max"`
	IdleTTLSeconds float64 `json:"idle_ttl_seconds"`
}

// JobTypeLimits are a job type's resource limits in base units.
type JobTypeLimits struct {
	MemoryBytes    int64   `json:"memory_bytes"`
	CPUs           float64 `json:"cpus"`
	Pids           int64   `json:"pids"`
	TmpBytes       int64   `json:"tmp_bytes"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

// JobType returns job type name (GET /job-types/{name}). An unknown name
// is a 404 *APIError.
func (c *Client) JobType(ctx context.Context, name string) (*JobType, error) {
	var out JobType
	if err := c.do(ctx, call{method: http.MethodGet, path: "/job-types/" + url.PathEscape(name), retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JobTypes returns the server's job types.
func (c *Client) JobTypes(ctx context.Context) ([]JobType, error) {
	var out []JobType
	if err := c.do(ctx, call{method: http.MethodGet, path: "/job-types", retry: retrySafe}, &out); err != nil {
		return nil, err
	}
	return out, nil
}
