package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tako-run/tako/client"
	"github.com/tako-run/tako/internal/oneline"
)

// newClient returns a client of the server at cfg.URL that keeps one idle
// connection per worker of conns, so every worker reuses its connection,
// and closeIdle, which closes them. It never retries: a request that
// failed is a sample of its own, not hidden in another's latency. The API
// key goes as Authorization: Bearer, which a server reads whatever its
// auth.header.
func newClient(cfg Config, conns int) (tc *client.Client, closeIdle func(), err error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the server is usually on loopback; never route it through a proxy
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	hc := &http.Client{Transport: tr}
	if cfg.APIKey != "" {
		hc.Transport = bearer{key: cfg.APIKey, next: tr}
	}
	tc, err = client.New(cfg.URL, client.WithHTTPClient(hc), client.WithRetries(0))
	if err != nil {
		return nil, nil, fmt.Errorf("client of %s: %w", cfg.URL, err)
	}
	return tc, hc.CloseIdleConnections, nil
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
	Image   string
	Limits  Limits
	Runtime string // the OCI runtime its jobs run under: runc or runsc
	Pool    pool
}

// pool is the part of a job type's prewarmed-container policy bench reads:
// Max is pool.max, the most ready containers the pool keeps (0: no pool).
type pool struct {
	Max int
}

// Limits are a job type's limits, as the baseline applies them.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes"`
	CPUs        float64 `json:"cpus"`
	Pids        int64   `json:"pids"`
}

// fetchJobType reads job type name from the server at base; flagName is
// the flag that named it, for the error when the server has no such job type.
func fetchJobType(ctx context.Context, tc *client.Client, base, name, flagName string) (jobType, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	jt, err := tc.JobType(ctx, name)
	var (
		apiErr *client.APIError
		bad    *client.BadAnswerError
	)
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		return jobType{}, fmt.Errorf("the server at %s has no job type %q (%s)", base, name, flagName)
	case errors.As(err, &apiErr):
		return jobType{}, fmt.Errorf("GET /job-types/%s: HTTP %d: %s", name, apiErr.Status, oneline.Clip(apiErr.Detail, 200))
	case errors.As(err, &bad):
		return jobType{}, fmt.Errorf("GET /job-types/%s: %w", name, bad.Err)
	case err != nil:
		return jobType{}, fmt.Errorf("cannot reach tako at %s (--url): %w", base, err)
	}
	return jobType{
		Image:   jt.Image,
		Limits:  Limits{MemoryBytes: jt.Limits.MemoryBytes, CPUs: jt.Limits.CPUs, Pids: jt.Limits.Pids},
		Runtime: jt.Runtime,
		Pool:    pool{Max: jt.Pool.Max},
	}, nil
}

// takoBenchmark runs jobs through the server: POST /execute, with --stream
// asking for its event stream, or with --async POST /execute/async and a
// long poll of /jobs/{id}/result.
func takoBenchmark(cfg Config, tc *client.Client) benchmark {
	req := client.Request{Code: cfg.Code, JobType: cfg.JobType}
	if cfg.Stream {
		return benchmark{name: "tako", do: func(ctx context.Context) sample {
			t0 := time.Now()
			x, err := streamJob(ctx, tc, req)
			return answerSample(time.Since(t0), x, err)
		}}
	}
	if !cfg.Async {
		return benchmark{name: "tako", do: func(ctx context.Context) sample {
			t0 := time.Now()
			x, err := tc.Execute(ctx, req)
			return answerSample(time.Since(t0), x, err)
		}}
	}
	return benchmark{name: "tako", do: func(ctx context.Context) sample {
		t0 := time.Now()
		sub, err := tc.Submit(ctx, req, "")
		if err != nil {
			return sample{latency: time.Since(t0), err: requestErr(err)}
		}
		if sub.JobID == "" {
			return sample{latency: time.Since(t0), err: &requestError{kind: "bad answer", detail: "POST /execute/async answered without a job_id"}}
		}
		// Wait asks again whenever the long poll ends before the job.
		x, err := tc.Wait(ctx, sub.JobID, 0)
		return answerSample(time.Since(t0), x, err)
	}}
}

// streamJob runs req with its event stream and reads it to its done
// event: the job is the result event's.
func streamJob(ctx context.Context, tc *client.Client, req client.Request) (*client.Execution, error) {
	var x *client.Execution
	for ev, err := range tc.ExecuteStream(ctx, req) {
		if err != nil {
			return nil, err
		}
		switch ev.Type {
		case client.EventResult:
			if ev.Result == nil {
				return nil, &requestError{kind: "bad answer", detail: "the result event does not hold a job"}
			}
			x = ev.Result
		case client.EventDone:
			if x == nil {
				return nil, &requestError{kind: "bad answer", detail: "the stream ended without a result event"}
			}
			return x, nil
		}
	}
	return nil, &requestError{kind: "connection", detail: "the stream broke off before its done event"}
}

// answerSample is the sample of a job the server answered x after lat, or
// failed to answer with err: its start and timing, and the error of a
// failed request or of a job that did not succeed.
func answerSample(lat time.Duration, x *client.Execution, err error) sample {
	if err != nil {
		return sample{latency: lat, err: requestErr(err)}
	}
	s := sample{latency: lat, start: x.Start, err: jobStatusError(x)}
	if t := x.Timing; t != (client.Timing{}) {
		s.timing = &serverTiming{QueueMS: t.QueueMS, StartMS: t.StartMS, RunMS: t.RunMS, CollectMS: t.CollectMS, TotalMS: t.TotalMS}
	}
	return s
}

// requestErr classes the client's error err for the error breakdown: an
// answer of 400 or more is "http NNN", an answer that is not tako's "bad
// answer", anything else "connection".
func requestErr(err error) error {
	var (
		re     *requestError
		apiErr *client.APIError
		bad    *client.BadAnswerError
	)
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &apiErr):
		return &requestError{kind: fmt.Sprintf("http %d", apiErr.Status), detail: oneline.Clip(apiErr.Detail, 200)}
	case errors.As(err, &bad):
		return &requestError{kind: "bad answer", detail: bad.Err.Error()}
	default:
		return &requestError{kind: "connection", detail: err.Error()}
	}
}

// jobStatusError is nil for a succeeded job and a "status X" error else.
func jobStatusError(x *client.Execution) error {
	if x.Status == client.StatusSucceeded {
		return nil
	}
	detail := oneline.Clip(x.Stderr, 200)
	if x.Error != nil {
		detail = x.Error.Type + ": " + x.Error.Message
	}
	return &requestError{kind: "status " + string(x.Status), detail: detail}
}
