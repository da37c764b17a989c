package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tako-run/tako/internal/httpclient"
)

// asyncWait is the long-poll timeout of GET /jobs/{id}/result in --async
// mode: the server's maximum.
const asyncWait = 300

// newClient returns an HTTP client that keeps one idle connection per
// worker, so every worker reuses its connection.
func newClient(concurrency int, apiKey string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the server is usually on loopback; never route it through a proxy
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if apiKey == "" {
		return &http.Client{Transport: tr}
	}
	return &http.Client{Transport: bearer{key: apiKey, next: tr}}
}

// bearer adds an API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(req)
}

// jobType is what bench reads from GET /job-types/{name}.
type jobType struct {
	Image   string `json:"image"`
	Limits  Limits `json:"limits"`
	Runtime string `json:"runtime"` // the OCI runtime its jobs run under: runc or runsc
	Pool    pool   `json:"pool"`
}

// pool is the part of a job type's prewarmed-container policy bench reads:
// Max is pool.max, the most ready containers the pool keeps (0: no pool).
type pool struct {
	Max int `json:"max"`
}

// Limits are a job type's limits, as the baseline applies them.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	Pids        int64   `json:"pids"`
}

// fetchJobType reads job type name from the server at base; flagName is
// the flag that named it, for the error when the server has no such job type.
func fetchJobType(ctx context.Context, client *http.Client, base, name, flagName string) (jobType, error) {
	var jt jobType
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status, body, err := httpclient.Do(ctx, client, http.MethodGet, base+"/job-types/"+url.PathEscape(name), nil)
	switch {
	case err != nil:
		return jt, fmt.Errorf("cannot reach tako at %s (--url): %w", base, err)
	case status == http.StatusNotFound:
		return jt, fmt.Errorf("the server at %s has no job type %q (%s)", base, name, flagName)
	case status != http.StatusOK:
		return jt, fmt.Errorf("GET /job-types/%s: HTTP %d: %s", name, status, httpclient.ErrorDetail(body))
	}
	if err := json.Unmarshal(body, &jt); err != nil {
		return jt, fmt.Errorf("GET /job-types/%s: %w", name, err)
	}
	return jt, nil
}

// jobAnswer is what bench reads from an execution's JSON.
type jobAnswer struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	Start  string `json:"start"`
	Error  *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	Stderr string        `json:"stderr"`
	Timing *serverTiming `json:"timing"`
}

// takoBenchmark runs jobs through the server: POST /execute, or with
// --async POST /execute/async and a long poll of /jobs/{id}/result.
func takoBenchmark(cfg Config, client *http.Client) benchmark {
	body, _ := json.Marshal(map[string]string{"code": cfg.Code, "job_type": cfg.JobType})
	post := func(ctx context.Context, path string, want ...int) (jobAnswer, error) {
		return call(ctx, client, http.MethodPost, cfg.URL+path, body, want...)
	}
	if cfg.Stream {
		return benchmark{name: "tako", do: func(ctx context.Context) sample {
			t0 := time.Now()
			a, err := streamCall(ctx, client, cfg.URL+"/execute", body)
			return answerSample(time.Since(t0), a, err)
		}}
	}
	if !cfg.Async {
		return benchmark{name: "tako", do: func(ctx context.Context) sample {
			t0 := time.Now()
			a, err := post(ctx, "/execute", http.StatusOK)
			return answerSample(time.Since(t0), a, err)
		}}
	}
	return benchmark{name: "tako", do: func(ctx context.Context) sample {
		t0 := time.Now()
		sub, err := post(ctx, "/execute/async", http.StatusAccepted, http.StatusOK)
		if err != nil {
			return sample{latency: time.Since(t0), err: err}
		}
		if sub.JobID == "" {
			return sample{latency: time.Since(t0), err: &requestError{kind: "bad answer", detail: "POST /execute/async answered without a job_id"}}
		}
		u := fmt.Sprintf("%s/jobs/%s/result?wait=true&timeout=%d", cfg.URL, url.PathEscape(sub.JobID), asyncWait)
		for {
			a, err := call(ctx, client, http.MethodGet, u, nil, http.StatusOK)
			if err == nil && (a.Status == "queued" || a.Status == "running") {
				continue // the long poll ended before the job did
			}
			return answerSample(time.Since(t0), a, err)
		}
	}}
}

// answerSample is the sample of a job the server answered a after lat, or
// failed to answer with err: its start and timing, and the error of a
// failed request or of a job that did not succeed.
func answerSample(lat time.Duration, a jobAnswer, err error) sample {
	if err != nil {
		return sample{latency: lat, err: err}
	}
	return sample{latency: lat, start: a.Start, timing: a.Timing, err: jobStatusError(a)}
}

// call sends one request and decodes the job in its answer; a status other
// than want is an "http NNN" error.
func call(ctx context.Context, client *http.Client, method, u string, body []byte, want ...int) (jobAnswer, error) {
	var a jobAnswer
	status, b, err := httpclient.Do(ctx, client, method, u, body)
	if err != nil {
		return a, &requestError{kind: "connection", detail: err.Error()}
	}
	if !slices.Contains(want, status) {
		return a, &requestError{kind: fmt.Sprintf("http %d", status), detail: httpclient.ErrorDetail(b)}
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, &requestError{kind: "bad answer", detail: err.Error()}
	}
	return a, nil
}

// streamCall posts body to u asking for the event stream, and reads it
// to its done event: the job is the result event's.
func streamCall(ctx context.Context, client *http.Client, u string, body []byte) (jobAnswer, error) {
	var a jobAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return a, &requestError{kind: "connection", detail: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return a, &requestError{kind: "connection", detail: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return a, &requestError{kind: fmt.Sprintf("http %d", resp.StatusCode), detail: httpclient.ErrorDetail(b)}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event, got := "", false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case event == "result" && strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &a); err != nil {
				return a, &requestError{kind: "bad answer", detail: err.Error()}
			}
			got = true
		case event == "done" && line == "":
			if !got {
				return a, &requestError{kind: "bad answer", detail: "the stream ended without a result event"}
			}
			return a, nil
		}
	}
	return a, &requestError{kind: "connection", detail: fmt.Sprintf("the stream broke off before its done event: %v", sc.Err())}
}

// jobStatusError is nil for a succeeded job and a "status X" error else.
func jobStatusError(a jobAnswer) error {
	if a.Status == "succeeded" {
		return nil
	}
	detail := httpclient.Clip(a.Stderr, 200)
	if a.Error != nil {
		detail = a.Error.Type + ": " + a.Error.Message
	}
	return &requestError{kind: "status " + a.Status, detail: detail}
}
