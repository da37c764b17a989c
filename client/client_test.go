package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// newTestClient returns a Client for srv with short backoffs.
func newTestClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = time.Millisecond
	return c
}

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  string
		opts []Option
	}{
		{"no scheme", "127.0.0.1:8000", nil},
		{"ftp", "ftp://h", nil},
		{"negative retries", "http://h", []Option{WithRetries(-1)}},
		{"nil http client", "http://h", []Option{WithHTTPClient(nil)}},
		{"empty header", "http://h", []Option{WithAPIKeyHeader(" ")}},
	} {
		if _, err := New(tc.url, tc.opts...); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestAPIKeyHeader(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Key") + "|" + r.Header.Get("X-API-Key") + "|" + r.URL.Path)
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/prefix/", WithAPIKey("secret"), WithAPIKeyHeader("X-Key"))
	if _, err := c.JobTypes(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "secret||/prefix/job-types" {
		t.Errorf("key header, default header, path = %q", got.Load())
	}
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Correlation-ID", "cid-1")
		w.WriteHeader(http.StatusUnprocessableEntity)
		w.Write([]byte(`{"detail":"timeout: must be at most 30","correlation_id":"cid-1"}`))
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Execute(t.Context(), Request{Code: "print(1)"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	want := APIError{Status: 422, Detail: "timeout: must be at most 30", CorrelationID: "cid-1"}
	if *apiErr != want {
		t.Errorf("APIError = %+v, want %+v", *apiErr, want)
	}
	if !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "cid-1") {
		t.Errorf("Error() = %q", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// flaky answers 503 with Retry-After: 1 to the first fails requests, then
// 200 with body, and counts the requests and the bodies it got.
type flaky struct {
	fails    int32
	status   int
	body     string
	requests atomic.Int32
	bodies   chan string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	select {
	case f.bodies <- string(b):
	default:
	}
	if f.requests.Add(1) <= f.fails {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(f.status)
		w.Write([]byte(`{"detail":"queue full"}`))
		return
	}
	w.Write([]byte(f.body))
}

func TestRetries(t *testing.T) {
	t.Parallel()
	submit := func(key string) func(*Client) error {
		return func(c *Client) error {
			_, err := c.Submit(t.Context(), Request{Code: "print(1)"}, key)
			return err
		}
	}
	for _, tc := range []struct {
		name         string
		status       int
		fails        int32
		do           func(*Client) error
		wantRequests int32
		wantErr      bool
	}{
		{"submit with a key retries 503", 503, 2, submit("key-12345678"), 3, false},
		{"submit with a key retries 429", 429, 1, submit("key-12345678"), 2, false},
		{"submit without a key does not retry", 503, 1, submit(""), 1, true},
		{"execute does not retry 503", 503, 1, func(c *Client) error {
			_, err := c.Execute(t.Context(), Request{Code: "print(1)"})
			return err
		}, 1, true},
		{"a GET retries 503", 503, 2, func(c *Client) error {
			_, err := c.Job(t.Context(), "j1")
			return err
		}, 3, false},
		{"a GET gives up after its retries", 503, 10, func(c *Client) error {
			_, err := c.Job(t.Context(), "j1")
			return err
		}, 4, true},
		{"a GET does not retry 500", 500, 1, func(c *Client) error {
			_, err := c.Job(t.Context(), "j1")
			return err
		}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &flaky{fails: tc.fails, status: tc.status, body: `{"job_id":"j1","status":"queued"}`, bodies: make(chan string, 10)}
			srv := httptest.NewServer(f)
			defer srv.Close()
			start := time.Now()
			err := tc.do(newTestClient(t, srv.URL))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := f.requests.Load(); got != tc.wantRequests {
				t.Errorf("requests = %d, want %d", got, tc.wantRequests)
			}
			// Each retry waited the server's Retry-After of 1 s.
			if waited, min := time.Since(start), time.Duration(tc.wantRequests-1)*time.Second; waited < min {
				t.Errorf("took %s, want at least %s (Retry-After)", waited, min)
			}
			var apiErr *APIError
			if tc.wantErr && errors.As(err, &apiErr) && apiErr.Status == 503 && apiErr.RetryAfter != time.Second {
				t.Errorf("RetryAfter = %s, want 1s", apiErr.RetryAfter)
			}
		})
	}
}

func TestRetriesSendTheSameBody(t *testing.T) {
	t.Parallel()
	f := &flaky{fails: 1, status: 503, body: `{"job_id":"j1","status":"queued"}`, bodies: make(chan string, 10)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	if _, err := newTestClient(t, srv.URL).Submit(t.Context(), Request{Code: "print(1)"}, "key-12345678"); err != nil {
		t.Fatal(err)
	}
	first, second := <-f.bodies, <-f.bodies
	if first != second || !strings.Contains(first, `"idempotency_key":"key-12345678"`) {
		t.Errorf("bodies %s and %s, want the same with the key", first, second)
	}
}

func TestRetryAfterTooLongIsNotWaited(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Health(t.Context())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Hour {
		t.Fatalf("err = %v, want a 503 APIError with RetryAfter 1h", err)
	}
}

// countingTransport counts the round trips it makes.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestExecuteRetriesOnlyWhenNotConnected(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: the dial fails, the server never saw it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	tr := &countingTransport{}
	_, err = newTestClient(t, closed, WithHTTPClient(&http.Client{Transport: tr})).Execute(t.Context(), Request{Code: "print(1)"})
	if err == nil || tr.n.Load() != DefaultRetries+1 {
		t.Errorf("refused: err %v after %d attempts, want an error after %d", err, tr.n.Load(), DefaultRetries+1)
	}

	// A server that takes the request and drops the connection: it may
	// have run the code, so Execute must not send it again.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	tr = &countingTransport{}
	c := newTestClient(t, srv.URL, WithHTTPClient(&http.Client{Transport: tr}))
	if _, err := c.Execute(t.Context(), Request{Code: "print(1)"}); err == nil || tr.n.Load() != 1 {
		t.Errorf("dropped: err %v after %d attempts, want an error after 1", err, tr.n.Load())
	}
	// A GET is safe to send again after the same failure.
	tr.n.Store(0)
	if _, err := c.Job(t.Context(), "j1"); err == nil || tr.n.Load() != DefaultRetries+1 {
		t.Errorf("dropped GET: err %v after %d attempts, want %d", err, tr.n.Load(), DefaultRetries+1)
	}
}

func TestWaitResumesPastTheServerCap(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jobs/j1/result" || r.URL.Query().Get("wait") != "true" || r.URL.Query().Get("timeout") != "1" {
			t.Errorf("poll %s?%s", r.URL.Path, r.URL.RawQuery)
		}
		if polls.Add(1) < 3 {
			w.WriteHeader(http.StatusRequestTimeout)
			w.Write([]byte(`{"detail":"Timeout waiting for job"}`))
			return
		}
		w.Write([]byte(`{"job_id":"j1","status":"failed","success":false,"stdout":"hi\n","exit_code":1}`))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	c.waitCap = time.Second // as if the server's cap were 1 s
	res, err := c.Wait(t.Context(), "j1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if polls.Load() != 3 || res.Status != StatusFailed || res.Success || *res.ExitCode != 1 {
		t.Errorf("after %d polls: %+v", polls.Load(), res.Run)
	}
}

func TestWaitTimesOut(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("timeout") != "1" {
			t.Errorf("timeout = %q, want 1 (the least the server takes)", r.URL.Query().Get("timeout"))
		}
		w.WriteHeader(http.StatusRequestTimeout)
		w.Write([]byte(`{"detail":"Timeout waiting for job"}`))
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL).Wait(t.Context(), "j1", 500*time.Millisecond)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestTimeout {
		t.Errorf("err = %v, want a 408 APIError", err)
	}
}

func TestExecutionsPages(t *testing.T) {
	t.Parallel()
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, r.URL.RawQuery)
		pages := map[string]string{
			"":  `{"items":[{"job_id":"e5"},{"job_id":"e4"}],"has_more":true,"next_cursor":4}`,
			"4": `{"items":[{"job_id":"e3"},{"job_id":"e2"}],"has_more":true,"next_cursor":2}`,
			"2": `{"items":[{"job_id":"e1"}],"has_more":false,"next_cursor":null}`,
		}
		w.Write([]byte(pages[q.Get("cursor")]))
	}))
	defer srv.Close()
	var ids []string
	for e, err := range newTestClient(t, srv.URL).Executions(t.Context(), ExecutionFilter{Status: StatusSucceeded, PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.JobID)
	}
	if strings.Join(ids, ",") != "e5,e4,e3,e2,e1" {
		t.Errorf("ids %v", ids)
	}
	want := []string{"limit=2&status=succeeded", "cursor=4&limit=2&status=succeeded", "cursor=2&limit=2&status=succeeded"}
	if strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Errorf("queries %v, want %v", queries, want)
	}
}

func TestExecutionsYieldsErrorAndStops(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		w.Write([]byte(`{"detail":"status: must be one of ..."}`))
	}))
	defer srv.Close()
	n := 0
	for _, err := range newTestClient(t, srv.URL).Executions(context.Background(), ExecutionFilter{Status: "nope"}) {
		n++
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 422 {
			t.Errorf("err = %v, want 422", err)
		}
	}
	if n != 1 {
		t.Errorf("%d values, want the error alone", n)
	}
}

func TestRequestEncoding(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Request{Code: "x", InputData: map[string]int{"n": 1}, Timeout: 5, NetworkAllow: []string{"a.example"}}.wire("k"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"x","input_data":{"n":1},"timeout":5,"idempotency_key":"k","network":{"allow":["a.example"]}}`
	if string(b) != want {
		t.Errorf("body %s, want %s", b, want)
	}
}

// answer serves status and body to every request and counts them.
func answer(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHealthDegraded(t *testing.T) {
	t.Parallel()
	body := `{"status":"degraded","gvisor_reason":"runsc missing","queue_stats":{"pending":3,"running":1,"max_workers":4,"max_queue_size":100},"problems":["database is not reachable"]}`
	for _, status := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		srv, n := answer(t, status, body)
		h, err := newTestClient(t, srv.URL).Health(t.Context())
		if err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		want := QueueStats{Pending: 3, Running: 1, MaxWorkers: 4, MaxQueueSize: 100}
		if h.Status != "degraded" || h.GVisorReason != "runsc missing" || h.QueueStats != want || len(h.Problems) != 1 || n.Load() != 1 {
			t.Errorf("%d: health %+v after %d requests", status, h, n.Load())
		}
	}
	// A 503 that is not tako's health is an *APIError, not retried: its
	// answer has been read.
	srv, n := answer(t, http.StatusServiceUnavailable, "upstream down")
	_, err := newTestClient(t, srv.URL, WithRetries(1)).Health(t.Context())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Detail != "upstream down" || n.Load() != 1 {
		t.Errorf("proxy's 503: %v after %d requests", err, n.Load())
	}
}

func TestBadAnswer(t *testing.T) {
	t.Parallel()
	srv, _ := answer(t, http.StatusOK, "<html>hello</html>")
	_, err := newTestClient(t, srv.URL).Health(t.Context())
	var bad *BadAnswerError
	if !errors.As(err, &bad) || bad.Path != "/health" || bad.Status != 200 || bad.Body != "<html>hello</html>" || !strings.Contains(err.Error(), "<html>hello</html>") {
		t.Errorf("err = %v, want a *BadAnswerError with the body", err)
	}
	srv, _ = answer(t, http.StatusOK, "["+strings.Repeat("é", 200))
	_, err = newTestClient(t, srv.URL).DeadLetterStats(t.Context())
	if !errors.As(err, &bad) || len(bad.Body) > maxBadAnswerBody || !utf8.ValidString(bad.Body) {
		t.Errorf("long answer: %v", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pool/stats":
			w.Write([]byte(`{"pending":2,"running":1,"max_workers":4,"max_queue_size":10,"job_types":{"default":{"warm":2,"busy":1,"target":3}}}`))
		case "/dlq/stats":
			w.Write([]byte(`{"total":3,"by_error_type":{"timeout":1,"internal_error":2}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	p, err := c.PoolStats(t.Context())
	if err != nil || p.Pending != 2 || p.MaxWorkers != 4 || p.JobTypes["default"] != (JobTypePool{Warm: 2, Busy: 1, Target: 3}) {
		t.Errorf("PoolStats = %+v, %v", p, err)
	}
	d, err := c.DeadLetterStats(t.Context())
	if err != nil || d.Total != 3 || d.ByErrorType["internal_error"] != 2 {
		t.Errorf("DeadLetterStats = %+v, %v", d, err)
	}
}

func TestJobType(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/job-types/data" {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"detail":"Job type 'x' not found"}`))
			return
		}
		w.Write([]byte(`{"name":"data","image":"img","runtime":"runsc","pool":{"warm":1,"min":1,"max":4},"limits":{"memory_bytes":536870912,"cpus":1.5,"pids":128}}`))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	jt, err := c.JobType(t.Context(), "data")
	if err != nil || jt.Image != "img" || jt.Runtime != "runsc" || jt.Pool.Max != 4 || jt.Pool.Warm != 1 || jt.Limits != (JobTypeLimits{MemoryBytes: 512 << 20, CPUs: 1.5, Pids: 128}) {
		t.Errorf("JobType = %+v, %v", jt, err)
	}
	var apiErr *APIError
	if _, err := c.JobType(t.Context(), "x"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("unknown job type: %v", err)
	}
}
