package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tako-run/tako/ui"
)

// TestConsoleRoutes checks how the API serves the console: its pages need
// no key while the API it calls still does, the pages carry the console's
// CSP, a same-origin POST from them passes the Origin check, and with the
// console off /ui is not served at all.
func TestConsoleRoutes(t *testing.T) {
	t.Parallel()
	keys := map[string]Key{"ci": {Secret: ciKey}}
	on := New(Options{Auth: Auth{Keys: keys}, Registry: testRegistry(t), Runner: &fakeRunner{},
		Service: &fakeService{result: quickstartResult()}, Version: "test", Console: true})
	stopOnCleanup(t, on)
	off := New(Options{Auth: Auth{Keys: keys}, Registry: testRegistry(t), Runner: &fakeRunner{},
		Service: &fakeService{result: quickstartResult()}, Version: "test"})
	stopOnCleanup(t, off)

	for _, path := range []string{"/ui", "/ui/run", "/ui/job-types", "/ui/health", "/ui/executions/abc", "/ui/static/console.js"} {
		r := do(t, on, "GET", path, "", nil)
		if r.status != http.StatusOK {
			t.Errorf("GET %s without a key: status %d, want 200", path, r.status)
		}
		if got := r.header.Get("Content-Security-Policy"); got != ui.CSP {
			t.Errorf("GET %s: CSP %q, want %q", path, got, ui.CSP)
		}
	}
	if r := do(t, on, "GET", "/ui/nowhere", "", nil); r.status != http.StatusNotFound || !strings.Contains(string(r.body), `href="/ui"`) {
		t.Errorf("GET /ui/nowhere: status %d, body %s; want the 404 page linking to /ui", r.status, r.body)
	}
	if r := do(t, on, "GET", "/executions", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /executions without a key beside the console: status %d, want 401", r.status)
	}
	// The console's own fetch: Origin is the page's, the same host.
	r := do(t, on, "POST", "/execute", `{"code": "print(1)"}`, map[string]string{
		"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000", "X-API-Key": ciKey})
	if r.status != http.StatusOK {
		t.Errorf("same-origin POST from the console: status %d: %s", r.status, r.body)
	}
	// A page of another origin still cannot.
	r = do(t, on, "POST", "/execute", `{"code": "print(1)"}`, map[string]string{
		"Host": "127.0.0.1:8000", "Origin": "http://evil.example", "X-API-Key": ciKey})
	if r.status != http.StatusForbidden {
		t.Errorf("cross-origin POST with the console on: status %d, want 403", r.status)
	}
	for _, path := range []string{"/ui", "/ui/run"} {
		if r := do(t, off, "GET", path, "", nil); r.status != http.StatusUnauthorized && r.status != http.StatusNotFound {
			t.Errorf("GET %s with the console off: status %d, want 401 or 404", path, r.status)
		}
	}
}
