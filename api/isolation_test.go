package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/metrics"
)

// The keys of the isolation tests: two users and an admin.
const (
	keyA     = "key-a-0123456789abcdef"
	keyB     = "key-b-0123456789abcdef"
	keyAdmin = "key-admin-0123456789abcdef"
)

func isolationServer(t *testing.T, fs *fakeService) *Server {
	t.Helper()
	s := New(Options{
		Auth: Auth{Keys: map[string]Key{
			"a": {Secret: keyA}, "b": {Secret: keyB}, "ops": {Secret: keyAdmin, Admin: true},
		}},
		Metrics: metrics.New("test"), Registry: testRegistry(t), Runner: &fakeRunner{}, Service: fs, Version: "test",
	})
	stopOnCleanup(t, s)
	return s
}

func as(key string) map[string]string { return map[string]string{"X-API-Key": key} }

// sameError asserts that got and want are the same answer: status, detail
// and (besides the correlation id) headers and body shape.
func sameError(t *testing.T, what string, got, want response) {
	t.Helper()
	if got.status != want.status || got.header.Get("Content-Type") != want.header.Get("Content-Type") {
		t.Errorf("%s: %d %q, want %d %q as for an id that does not exist", what, got.status, got.header.Get("Content-Type"), want.status, want.header.Get("Content-Type"))
		return
	}
	if len(want.body) == 0 {
		if len(got.body) != 0 {
			t.Errorf("%s: body %q, want none", what, got.body)
		}
		return
	}
	g, w := got.object(t), want.object(t)
	if g["detail"] != w["detail"] || len(g) != len(w) {
		t.Errorf("%s: %s, want %s", what, got.body, want.body)
	}
}

// TestCallersIsolated: with two user keys, B gets exactly the answer for
// an id that does not exist on everything of A's, and its list shows only
// its own; the admin sees and acts on both; every call carries the caller.
func TestCallersIsolated(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	s := isolationServer(t, fs)
	submit := func(key string) string {
		t.Helper()
		r := do(t, s, "POST", "/execute/async", `{"code": "print(1)"}`, as(key))
		if r.status != http.StatusOK {
			t.Fatalf("submit as %s: %d %s", key, r.status, r.body)
		}
		return r.object(t)["job_id"].(string)
	}
	queuedA, queuedB := submit(keyA), submit(keyB)
	r := do(t, s, "POST", "/execute", `{"code": "print(1)"}`, as(keyA))
	if r.status != http.StatusOK {
		t.Fatalf("sync run as a: %d %s", r.status, r.body)
	}
	doneA := r.object(t)["execution_id"].(string)
	fs.addArtifact(doneA, &jobs.ArtifactContent{Artifact: jobs.Artifact{Name: "out.txt"}, Content: []byte("secret")})
	const missing = "0195c3a8-0000-7000-8000-0000000fffff"

	probes := []struct{ method, path, body string }{
		{"GET", "/jobs/%s", ""},
		{"GET", "/jobs/%s/result", ""},
		{"GET", "/jobs/%s/result?wait=true&timeout=1", ""},
		{"GET", "/executions/%s", ""},
		{"GET", "/jobs/%s/artifacts/out.txt", ""},
		{"HEAD", "/jobs/%s/artifacts/out.txt", ""},
		{"POST", "/jobs/%s/cancel", ""},
		{"POST", "/jobs/%s/rerun", "{}"},
		{"POST", "/jobs/%s/fork", `{"code": "print(open('/input/data.json').read())"}`},
	}
	for _, p := range probes {
		for _, id := range []string{queuedA, doneA} {
			path := sprintf(p.path, id)
			got := do(t, s, p.method, path, p.body, as(keyB))
			want := do(t, s, p.method, sprintf(p.path, missing), p.body, as(keyB))
			if want.status != http.StatusNotFound {
				t.Fatalf("%s %s of a missing id: %d", p.method, p.path, want.status)
			}
			sameError(t, p.method+" "+path+" as b", got, want)
			if c := fs.lastCaller(); p.method != "HEAD" && (c.APIKey != "b" || c.Admin) {
				t.Errorf("%s %s reached the service as %+v, want b", p.method, path, c)
			}
		}
	}
	// Nothing B did changed A's jobs.
	if e, _ := fs.Get(context.Background(), jobs.System, queuedA); e.Status != jobs.StatusQueued {
		t.Errorf("A's queued job is %s after B's cancel", e.Status)
	}

	ids := func(key, query string) []string {
		t.Helper()
		r := do(t, s, "GET", "/executions"+query, "", as(key))
		if r.status != http.StatusOK {
			t.Fatalf("list as %s: %d %s", key, r.status, r.body)
		}
		var out []string
		for _, it := range r.object(t)["items"].([]any) {
			out = append(out, it.(map[string]any)["execution_id"].(string))
		}
		return out
	}
	if got := ids(keyB, ""); len(got) != 1 || got[0] != queuedB {
		t.Errorf("B's list: %v, want only %s", got, queuedB)
	}
	if got := ids(keyB, "?api_key=a"); len(got) != 0 {
		t.Errorf("B's list filtered by a: %v, want an empty page", got)
	}
	if got := ids(keyA, ""); len(got) != 2 {
		t.Errorf("A's list: %v, want its two", got)
	}
	if got := ids(keyAdmin, ""); len(got) != 3 {
		t.Errorf("the admin's list: %v, want all three", got)
	}
	if got := ids(keyAdmin, "?api_key=b"); len(got) != 1 || got[0] != queuedB {
		t.Errorf("the admin's list filtered by b: %v", got)
	}

	// The admin reads, downloads and cancels A's.
	for _, p := range []struct{ method, path string }{
		{"GET", "/jobs/" + queuedA}, {"GET", "/executions/" + doneA}, {"GET", "/jobs/" + doneA + "/artifacts/out.txt"},
		{"POST", "/jobs/" + queuedA + "/cancel"},
	} {
		if r := do(t, s, p.method, p.path, "", as(keyAdmin)); r.status != http.StatusOK {
			t.Errorf("%s %s as the admin: %d %s", p.method, p.path, r.status, r.body)
		}
		if c := fs.lastCaller(); c.APIKey != "ops" || !c.Admin {
			t.Errorf("%s %s reached the service as %+v, want the admin", p.method, p.path, c)
		}
	}
}

// TestOpenServerSeesEverything: without keys every caller is the admin of
// old, and sees everything.
func TestOpenServerSeesEverything(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	e := fs.record(finishedExecution())
	e.APIKey = "left-from-a-keyed-past"
	s := newTestServer(t, fs, nil, Limits{})
	if r := do(t, s, "GET", "/executions/"+e.ID, "", nil); r.status != http.StatusOK {
		t.Errorf("read: %d %s", r.status, r.body)
	}
	if c := fs.lastCaller(); !c.Admin || c.APIKey != "" {
		t.Errorf("the caller of a server without keys: %+v", c)
	}
}

// TestOverQuota: EOVERQUOTA is 429 with Retry-After and the service's
// detail, which names the quota.
func TestOverQuota(t *testing.T) {
	t.Parallel()
	over := &jobs.Error{Code: jobs.EOVERQUOTA, Message: `API key "a" is at its max_pending quota (2 queued jobs); retry when some have run`, RetryAfter: 5}
	fs := &fakeService{err: over}
	s := isolationServer(t, fs)
	for _, path := range []string{"/execute", "/execute/async"} {
		r := do(t, s, "POST", path, `{"code": "print(1)"}`, as(keyA))
		checkError(t, r, http.StatusTooManyRequests, over.Message)
		if ra := r.header.Get("Retry-After"); ra != "5" {
			t.Errorf("%s: Retry-After %q, want 5", path, ra)
		}
	}
}

func sprintf(format, id string) string { return fmt.Sprintf(format, id) }
