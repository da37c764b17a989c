package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tako-run/tako/jobs"
)

// deadLetterFixture returns a service with two dead-lettered executions,
// one of key ci and one of key ops.
func deadLetterFixture() *fakeService {
	fs := &fakeService{}
	mine := fs.record(&jobs.Execution{JobType: "default", Status: jobs.StatusFailed, APIKey: "ci", Code: "print(1)", InputJSON: []byte(`{"x":1}`), FinishedAt: ptr(fakeNow)})
	theirs := fs.record(&jobs.Execution{JobType: "data", Status: jobs.StatusFailed, APIKey: "ops", FinishedAt: ptr(fakeNow)})
	fs.dead = []jobs.DeadLetter{
		{ID: 7, ExecutionID: mine.ID, JobType: "default", APIKey: "ci", CorrelationID: "cid-7", Code: "print(1)", InputJSON: []byte(`{"x":1}`),
			ErrorType: "internal_error", ErrorMessage: "run job: no such image", Attempts: 3, CreatedAt: fakeNow, FailedAt: fakeNow.Add(time.Minute)},
		{ID: 9, ExecutionID: theirs.ID, JobType: "data", APIKey: "ops", ErrorType: "internal_error", Attempts: 3, CreatedAt: fakeNow, FailedAt: fakeNow},
	}
	return fs
}

// TestDeadLetterRoutes: the original's /dlq, /dlq/stats and DELETE
// /dlq/{id}, tako's retry, each scoped to the caller's key.
func TestDeadLetterRoutes(t *testing.T) {
	t.Parallel()
	fs := deadLetterFixture()
	s := authServer(t, fs, Auth{}, RateLimit{})
	ci := map[string]string{"X-API-Key": ciKey}
	ops := map[string]string{"X-API-Key": opsKey}

	r := do(t, s, "GET", "/dlq/stats", "", ci)
	if r.status != http.StatusOK || string(r.body) != `{"total":1,"by_error_type":{"internal_error":1}}` {
		t.Errorf("ci's stats: %d %s", r.status, r.body)
	}
	if r := do(t, s, "GET", "/dlq/stats", "", ops); string(r.body) != `{"total":2,"by_error_type":{"internal_error":2}}` {
		t.Errorf("the admin's stats: %s", r.body)
	}
	r = do(t, s, "GET", "/dlq", "", ci)
	m := r.object(t)
	checkKeys(t, m, []string{"count", "has_more", "items", "limit", "offset"})
	items, _ := m["items"].([]any)
	if r.status != http.StatusOK || len(items) != 1 || m["count"] != 1.0 || m["has_more"] != false || m["limit"] != 100.0 || m["offset"] != 0.0 {
		t.Fatalf("ci's list: %d %s", r.status, r.body)
	}
	item := items[0].(map[string]any)
	checkKeys(t, item, []string{"api_key", "attempts", "client_ip", "correlation_id", "created_at", "error_message", "error_type",
		"execution_id", "id", "job_data", "job_id", "job_type", "retry_count", "submitted_at"})
	if item["id"] != 7.0 || item["retry_count"] != 2.0 || item["error_type"] != "internal_error" || item["client_ip"] != nil ||
		item["created_at"] != timestamp(fakeNow.Add(time.Minute)) {
		t.Errorf("entry %v", item)
	}
	data := item["job_data"].(map[string]any)
	if data["code"] != "print(1)" || data["input_data"].(map[string]any)["x"] != 1.0 || data["job_type"] != "default" {
		t.Errorf("job_data %v", data)
	}
	if r := do(t, s, "GET", "/dlq?limit=1&offset=0", "", ops); !strings.Contains(string(r.body), `"has_more":true`) {
		t.Errorf("the admin's first page of one: %s", r.body)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "offset=-1", "offset=x", "error_type="} {
		checkErrorContains(t, do(t, s, "GET", "/dlq?"+bad, "", ci), http.StatusUnprocessableEntity, strings.Split(bad, "=")[0])
	}

	// Another key's entry, an unknown one and one that is not a number.
	checkError(t, do(t, s, "DELETE", "/dlq/9", "", ci), http.StatusNotFound, dlqNotFound)
	checkError(t, do(t, s, "POST", "/dlq/9/retry", "", ci), http.StatusNotFound, dlqNotFound)
	checkError(t, do(t, s, "DELETE", "/dlq/12345", "", ci), http.StatusNotFound, dlqNotFound)
	checkErrorContains(t, do(t, s, "DELETE", "/dlq/abc", "", ci), http.StatusUnprocessableEntity, "entry_id")
	checkError(t, do(t, s, "GET", "/dlq", "", nil), http.StatusUnauthorized, "an API key is required: send it in the X-API-Key header or as Authorization: Bearer <key>")

	retried := fs.dead[0].ExecutionID
	if r := do(t, s, "POST", "/dlq/7/retry", "", ci); r.status != http.StatusOK ||
		string(r.body) != `{"status":"queued","entry_id":7,"job_id":"`+retried+`"}` {
		t.Errorf("retry: %d %s", r.status, r.body)
	}
	if r := do(t, s, "DELETE", "/dlq/9", "", ops); r.status != http.StatusOK || string(r.body) != `{"status":"removed","entry_id":9}` {
		t.Errorf("remove: %d %s", r.status, r.body)
	}
	if r := do(t, s, "GET", "/dlq/stats", "", ops); string(r.body) != `{"total":0,"by_error_type":{}}` {
		t.Errorf("stats after retry and remove: %s", r.body)
	}
}

// TestPoolStats: the original's four numbers and tako's pools.
func TestPoolStats(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	r := do(t, s, "GET", "/pool/stats", "", nil)
	m := r.object(t)
	checkKeys(t, m, []string{"job_types", "max_queue_size", "max_workers", "pending", "running"})
	pools := m["job_types"].(map[string]any)
	if r.status != http.StatusOK || m["pending"] != 3.0 || m["max_queue_size"] != 1000.0 || len(pools) != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if p := pools["default"].(map[string]any); p["warm"] != 2.0 || p["busy"] != 1.0 || p["target"] != 3.0 {
		t.Errorf("default's pool %v", p)
	}
}

// TestRecordViews: the original's ?view=full is accepted on every record
// route, and a view it does not know is named.
func TestRecordViews(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	done := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{})
	for _, path := range []string{"/jobs/" + done.ID + "/result", "/executions/" + done.ID, "/executions"} {
		if r := do(t, s, "GET", path+"?view=full", "", nil); r.status != http.StatusOK {
			t.Errorf("%s?view=full: %d %s", path, r.status, r.body)
		}
		checkErrorContains(t, do(t, s, "GET", path+"?view=everything", "", nil), http.StatusUnprocessableEntity, "view")
	}
}

// TestDocsPage: / redirects to /docs, which needs no key and loads
// /openapi.json and its assets from this server only.
func TestDocsPage(t *testing.T) {
	t.Parallel()
	s := authServer(t, &fakeService{}, Auth{}, RateLimit{})
	if r := do(t, s, "GET", "/", "", nil); r.status != http.StatusTemporaryRedirect || r.header.Get("Location") != "/docs" {
		t.Fatalf("GET /: %d %v", r.status, r.header)
	}
	r := do(t, s, "GET", "/docs", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %v", r.status, r.header)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q", csp)
	}
	refs, spec := docsReferences(t, r.body)
	if spec != "/openapi.json" {
		t.Errorf("the page loads the document from %q", spec)
	}
	if len(refs) < 3 {
		t.Fatalf("the page references %v", refs)
	}
	for _, ref := range append(refs, spec) {
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("the page references %q, not a path on this server", ref)
			continue
		}
		a := do(t, s, "GET", ref, "", nil)
		if a.status != http.StatusOK || len(a.body) == 0 {
			t.Errorf("%s: %d", ref, a.status)
		}
		if strings.HasSuffix(ref, ".js") && !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s is served as %q", ref, a.header.Get("Content-Type"))
		}
		if ref == "/docs/tako-docs.js" && bytes.Contains(a.body, []byte("http")) {
			t.Errorf("tako's script names an external URL: %s", a.body)
		}
	}
	if r := do(t, s, "GET", "/docs/../openapi.json", "", nil); r.status == http.StatusOK && strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("path traversal served %s", r.body)
	}
	checkError(t, do(t, s, "GET", "/docs/swagger-ui-bundle.js.map", "", nil), http.StatusNotFound, "Not Found")
}

// docsReferences parses the docs page and returns the URLs of its scripts,
// styles and icons, and the document it shows.
func docsReferences(t *testing.T, page []byte) (refs []string, spec string) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				switch a.Key {
				case "src", "href":
					refs = append(refs, a.Val)
				case "data-spec-url":
					spec = a.Val
				}
			}
			if n.Data == "script" && n.FirstChild != nil && strings.TrimSpace(n.FirstChild.Data) != "" {
				t.Errorf("inline script %q", n.FirstChild.Data)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return refs, spec
}
