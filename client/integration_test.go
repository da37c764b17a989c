package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/internal/takotest"
)

// pathCounter counts the requests per path that go through it.
type pathCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *pathCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.n[r.URL.Path]++
	p.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (p *pathCounter) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[path]
}

// TestAgainstRealServer runs every method of the Client against a real
// tako with Docker and PostgreSQL.
func TestAgainstRealServer(t *testing.T) {
	srv := takotest.Start(t)
	baseURL, key := srv.URL, srv.APIKey
	counter := &pathCounter{n: map[string]int{}}
	c, err := New(baseURL, WithAPIKey(key), WithHTTPClient(&http.Client{Transport: counter}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	t.Run("Health and JobTypes", func(t *testing.T) {
		h, err := c.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !h.DockerAvailable || !h.DatabaseAvailable || h.Version == "" {
			t.Errorf("health %+v", h)
		}
		types, err := c.JobTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, jt := range types {
			names = append(names, jt.Name)
		}
		if !strings.Contains(strings.Join(names, ","), "default") {
			t.Errorf("job types %v, want default among them", names)
		}
	})

	t.Run("Execute", func(t *testing.T) {
		res, err := c.Execute(ctx, Request{Code: "import json\nprint(1 + 1)\njson.dump({'n': 2}, open('/output/result.json', 'w'))"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.Stdout != "2\n" || string(res.Output) != `{"n":2}` || res.JobID == "" {
			t.Errorf("result %+v", res.Run)
		}
		res, err = c.Execute(ctx, Request{Code: "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)"})
		if err != nil {
			t.Fatalf("a failing program is not an error: %v", err)
		}
		if res.Success || res.ExitCode == nil || *res.ExitCode != 3 || res.Stderr != "oops\n" || res.Status != StatusFailed {
			t.Errorf("failing program %+v", res.Run)
		}
	})

	t.Run("APIError", func(t *testing.T) {
		_, err := c.Job(ctx, "no-such-job")
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Detail != "Job not found" || apiErr.CorrelationID == "" {
			t.Errorf("unknown job: %v", err)
		}
		_, err = c.Execute(ctx, Request{Code: "print(1)", Timeout: 100000})
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Detail, "timeout") {
			t.Errorf("bad timeout: %v", err)
		}
		_, err = c.Submit(ctx, Request{Code: "print(1)"}, "short")
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Detail, "idempotency_key") {
			t.Errorf("bad idempotency key: %v", err)
		}
		other, _ := New(baseURL, WithAPIKey("not-the-key-0123456789"))
		if _, err := other.Job(ctx, "x"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			t.Errorf("wrong key: %v", err)
		}
	})

	t.Run("Submit, Job, Wait, Artifact, Rerun, Fork", func(t *testing.T) {
		req := Request{Code: "import json\nd = json.load(open('/input/data.json'))\nopen('/output/a.txt', 'w').write('hello ' + d['who'])\nprint('made')", InputData: map[string]string{"who": "tako"}}
		first, err := c.Submit(ctx, req, "client-test-artifact")
		if err != nil {
			t.Fatal(err)
		}
		again, err := c.Submit(ctx, req, "client-test-artifact")
		if err != nil {
			t.Fatal(err)
		}
		if first.JobID == "" || again.JobID != first.JobID {
			t.Errorf("same idempotency key: jobs %q and %q", first.JobID, again.JobID)
		}
		st, err := c.Job(ctx, first.JobID)
		if err != nil || st.JobID != first.JobID || st.CreatedAt.IsZero() {
			t.Errorf("Job: %+v %v", st, err)
		}
		res, err := c.Wait(ctx, first.JobID, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Success || res.Stdout != "made\n" || len(res.Artifacts) != 1 || res.Artifacts[0].Name != "a.txt" || res.FinishedAt == nil {
			t.Fatalf("result %+v %+v", res.Run, res.Artifacts)
		}

		body, etag, notModified, err := c.Artifact(ctx, first.JobID, "a.txt", "")
		if err != nil || notModified {
			t.Fatalf("Artifact: %v %v", notModified, err)
		}
		content, _ := io.ReadAll(body)
		body.Close()
		if string(content) != "hello tako" || etag != `"`+res.Artifacts[0].SHA256+`"` {
			t.Errorf("artifact %q with ETag %s, want sha256 %s", content, etag, res.Artifacts[0].SHA256)
		}
		body, etag2, notModified, err := c.Artifact(ctx, first.JobID, "a.txt", etag)
		if err != nil || !notModified || body != nil || etag2 != etag {
			t.Errorf("Artifact with ETag: body %v, etag %s, notModified %v, err %v", body, etag2, notModified, err)
		}
		var apiErr *APIError
		if _, _, _, err := c.Artifact(ctx, first.JobID, "missing.txt", ""); !errors.As(err, &apiErr) || apiErr.Status != 404 {
			t.Errorf("missing artifact: %v", err)
		}

		rerun, err := c.Rerun(ctx, first.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if rerun.JobID == first.JobID || rerun.ParentID == nil || *rerun.ParentID != first.JobID || rerun.Relationship == nil || *rerun.Relationship != "rerun" {
			t.Errorf("rerun %+v", rerun.History)
		}
		fork, err := c.Fork(ctx, first.JobID, "import json\nprint('fork of', json.load(open('/input/data.json'))['who'])")
		if err != nil {
			t.Fatal(err)
		}
		for id, want := range map[string]string{rerun.JobID: "made\n", fork.JobID: "fork of tako\n"} {
			res, err := c.Wait(ctx, id, 3*time.Minute)
			if err != nil || res.Stdout != want || res.ParentID == nil || *res.ParentID != first.JobID {
				t.Errorf("job %s: %v %+v", id, err, res)
			}
		}
	})

	t.Run("Wait past the wait cap", func(t *testing.T) {
		job, err := c.Submit(ctx, Request{Code: "import time\ntime.sleep(4)\nprint('late')"}, "")
		if err != nil {
			t.Fatal(err)
		}
		short, _ := New(baseURL, WithAPIKey(key), WithHTTPClient(&http.Client{Transport: counter}))
		short.waitCap = time.Second // the server's is 300 s: as if it were 1 s
		res, err := short.Wait(ctx, job.JobID, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		polls := counter.count("/jobs/" + job.JobID + "/result")
		if res.Stdout != "late\n" || polls < 3 {
			t.Errorf("stdout %q after %d polls, want late after 3 or more", res.Stdout, polls)
		}
		// A timeout of its own that runs out is the server's 408.
		job, err = c.Submit(ctx, Request{Code: "import time\ntime.sleep(20)"}, "")
		if err != nil {
			t.Fatal(err)
		}
		var apiErr *APIError
		if _, err := c.Wait(ctx, job.JobID, time.Second); !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestTimeout {
			t.Errorf("Wait that runs out: %v", err)
		}
		if st, err := c.Cancel(ctx, job.JobID); err != nil || (st != StatusCancelled && st.Terminal()) {
			t.Errorf("Cancel: %s %v", st, err)
		}
	})

	t.Run("Stream", func(t *testing.T) {
		job, err := c.Submit(ctx, Request{Code: "import time\nfor i in range(4):\n    print('line', i)\n    time.sleep(0.7)"}, "")
		if err != nil {
			t.Fatal(err)
		}
		// Read up to the first output, then leave, as a dropped connection.
		var out strings.Builder
		var last string
		var types []string
		for ev, err := range c.Stream(ctx, job.JobID, "") {
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			last = ev.ID
			if ev.Type == EventStdout {
				out.WriteString(ev.Text)
				break
			}
		}
		// Resume after the last event seen: nothing twice, nothing lost.
		var final Status
		for ev, err := range c.Stream(ctx, job.JobID, last) {
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			switch ev.Type {
			case EventStdout:
				out.WriteString(ev.Text)
			case EventDone:
				final = ev.Status
			}
		}
		want := "line 0\nline 1\nline 2\nline 3\n"
		if out.String() != want || final != StatusSucceeded || types[0] != EventQueued || types[len(types)-1] != EventDone {
			t.Errorf("output %q (want %q), final %q, events %v", out.String(), want, final, types)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		job, err := c.Submit(ctx, Request{Code: "import time\nprint('started', flush=True)\ntime.sleep(60)", Timeout: 30}, "")
		if err != nil {
			t.Fatal(err)
		}
		// Cancel once it runs: its first output says so.
		for ev, err := range c.Stream(ctx, job.JobID, "") {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == EventStdout {
				break
			}
		}
		if _, err := c.Cancel(ctx, job.JobID); err != nil {
			t.Fatal(err)
		}
		res, err := c.Wait(ctx, job.JobID, 2*time.Minute)
		if err != nil || res.Status != StatusCancelled || res.Success {
			t.Errorf("cancelled job: %v %+v", err, res)
		}
		var apiErr *APIError
		if _, err := c.Cancel(ctx, job.JobID); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
			t.Errorf("cancel of an ended job: %v", err)
		}
	})

	t.Run("Submit retried on 503 with an idempotency key", func(t *testing.T) {
		// A proxy that loses tako's first answer and says 503 instead,
		// as a load balancer might: the job exists, the client does not
		// know it. The retry, with the same key, must find that job.
		target, _ := url.Parse(baseURL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var mu sync.Mutex
		var lost []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			first := len(lost) == 0
			mu.Unlock()
			if !first {
				proxy.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			mu.Lock()
			lost = append(lost, rec.Body.String())
			mu.Unlock()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"detail":"upstream unavailable"}`))
		}))
		defer srv.Close()
		pc, _ := New(srv.URL, WithAPIKey(key))
		job, err := pc.Submit(ctx, Request{Code: "print('once')"}, "client-test-retry-503")
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(lost) != 1 || !strings.Contains(lost[0], `"job_id":"`+job.JobID+`"`) {
			t.Errorf("lost answer %q, retry's job %s: want the same job", lost, job.JobID)
		}
		// Without a key the 503 is the caller's to handle.
		lost = nil
		mu.Unlock()
		var apiErr *APIError
		if _, err := pc.Submit(ctx, Request{Code: "print('once')"}, ""); !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.RetryAfter != time.Second {
			t.Errorf("submit without a key through a 503: %v", err)
		}
	})

	t.Run("Executions", func(t *testing.T) {
		var want []string
		for i := range 5 {
			job, err := c.Submit(ctx, Request{Code: fmt.Sprintf("print(%d)", i)}, "")
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, job.JobID)
		}
		for _, id := range want {
			if _, err := c.Wait(ctx, id, 3*time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		before := counter.count("/executions")
		seen := map[string]bool{}
		var order []string
		for e, err := range c.Executions(ctx, ExecutionFilter{Status: StatusSucceeded, PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if seen[e.JobID] {
				t.Errorf("execution %s twice", e.JobID)
			}
			seen[e.JobID] = true
			if e.Status != StatusSucceeded {
				t.Errorf("execution %s is %s", e.JobID, e.Status)
			}
			order = append(order, e.JobID)
		}
		pages := counter.count("/executions") - before
		// Newest first: the five, submitted last, lead in reverse order.
		if len(order) < 5 || strings.Join(order[:5], ",") != strings.Join([]string{want[4], want[3], want[2], want[1], want[0]}, ",") || pages < (len(order)+1)/2 {
			t.Errorf("executions %v over %d pages, want %v first, newest first", order, pages, want)
		}
	})
}
