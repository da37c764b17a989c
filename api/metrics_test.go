package api

import (
	"strings"
	"testing"

	"github.com/tako-run/tako/metrics"
)

// TestMetricsEndpoint checks that /metrics serves the registry and that
// requests are counted under their route template, never their raw path.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	m := metrics.New("test")
	s := New(Options{Registry: testRegistry(t), Runner: &fakeRunner{}, Service: &fakeService{result: quickstartResult()}, Metrics: m, Version: "test"})
	stopOnCleanup(t, s)

	if r := do(t, s, "POST", "/execute", `{"code": "print(1)"}`, nil); r.status != 200 {
		t.Fatalf("execute: %d %s", r.status, r.body)
	}
	const id = "0b6d5f1e-7a43-4c1d-9e59-2f0c8a1b3d4e"
	if r := do(t, s, "GET", "/jobs/"+id, "", nil); r.status != 404 {
		t.Fatalf("unknown job: %d", r.status)
	}
	if r := do(t, s, "GET", "/no/such/"+id, "", nil); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}

	r := do(t, s, "GET", "/metrics", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %q", r.status, r.header.Get("Content-Type"))
	}
	body := string(r.body)
	for _, want := range []string{
		`tako_http_requests_total{code="200",method="POST",route="/execute"} 1`,
		`tako_http_requests_total{code="404",method="GET",route="/jobs/:id"} 1`,
		`tako_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`tako_http_request_duration_seconds_count{method="POST",route="/execute"} 1`,
		`tako_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(body, id) {
		t.Error("a raw path reached a label")
	}
}

// TestMetricsDisabled: without Metrics there is no /metrics route.
func TestMetricsDisabled(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	if r := do(t, s, "GET", "/metrics", "", nil); r.status != 404 {
		t.Fatalf("metrics without Metrics: %d", r.status)
	}
}
