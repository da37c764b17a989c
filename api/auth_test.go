package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/metrics"
)

const (
	ciKey  = "ci-0123456789abcdef"
	opsKey = "ops-0123456789abcdef"
)

func authServer(t *testing.T, fs *fakeService, auth Auth, rl RateLimit) *Server {
	t.Helper()
	if auth.Keys == nil {
		auth.Keys = map[string]Key{"ci": {Secret: ciKey}, "ops": {Secret: opsKey, Admin: true}}
	}
	s := New(Options{
		Auth: auth, RateLimit: rl, Metrics: metrics.New("test"),
		Registry: testRegistry(t), Runner: &fakeRunner{}, Service: fs, Version: "test",
	})
	stopOnCleanup(t, s)
	return s
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	fs := &fakeService{result: quickstartResult()}
	s := authServer(t, fs, Auth{}, RateLimit{})
	body := `{"code": "print(1)"}`
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		status  int
		detail  string
		keyName string
	}{
		{"no key", "POST", "/execute", nil, 401, "an API key is required: send it in the X-API-Key header or as Authorization: Bearer <key>", ""},
		{"wrong key", "POST", "/execute", map[string]string{"X-API-Key": "not-the-key-0123456789"}, 401, "the API key is not valid", ""},
		{"a prefix of a key", "POST", "/execute", map[string]string{"X-API-Key": ciKey[:10]}, 401, "the API key is not valid", ""},
		{"wrong scheme", "POST", "/execute", map[string]string{"Authorization": "Basic " + ciKey}, 401, "an API key is required", ""},
		{"header", "POST", "/execute", map[string]string{"X-API-Key": ciKey}, 200, "", "ci"},
		{"bearer", "POST", "/execute", map[string]string{"Authorization": "Bearer " + opsKey}, 200, "", "ops"},
		{"health is exempt", "GET", "/health", nil, 200, "", ""},
		{"job types need a key", "GET", "/job-types", nil, 401, "", ""},
		{"metrics need a key", "GET", "/metrics", nil, 401, "", ""},
		{"metrics with a key", "GET", "/metrics", map[string]string{"X-API-Key": ciKey}, 200, "", ""},
		{"unknown route without a key", "GET", "/nope", nil, 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ""
			if tt.method == "POST" {
				b = body
			}
			r := do(t, s, tt.method, tt.path, b, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 401 {
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="tako"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if d, _ := r.object(t)["detail"].(string); !strings.HasPrefix(d, tt.detail) {
					t.Errorf("detail %q, want %q", d, tt.detail)
				}
				if strings.Contains(string(r.body), ciKey[:10]) {
					t.Error("the answer echoes the key")
				}
			}
			if tt.keyName != "" {
				if sub, _ := fs.last(); sub.APIKey != tt.keyName {
					t.Errorf("submission recorded key %q, want %q", sub.APIKey, tt.keyName)
				}
			}
		})
	}
}

func TestOpenMetrics(t *testing.T) {
	t.Parallel()
	s := authServer(t, &fakeService{}, Auth{OpenMetrics: true}, RateLimit{})
	if r := do(t, s, "GET", "/metrics", "", nil); r.status != 200 {
		t.Errorf("open metrics: %d", r.status)
	}
	if r := do(t, s, "GET", "/executions", "", nil); r.status != 401 {
		t.Errorf("the rest still needs a key: %d", r.status)
	}
}

func TestCustomKeyHeader(t *testing.T) {
	t.Parallel()
	s := authServer(t, &fakeService{result: quickstartResult()}, Auth{Header: "X-Tako-Token"}, RateLimit{})
	if r := do(t, s, "POST", "/execute", `{"code": "1"}`, map[string]string{"X-Tako-Token": ciKey}); r.status != 200 {
		t.Errorf("custom header: %d %s", r.status, r.body)
	}
	r := do(t, s, "POST", "/execute", `{"code": "1"}`, map[string]string{"X-API-Key": ciKey})
	if d, _ := r.object(t)["detail"].(string); r.status != 401 || !strings.Contains(d, "X-Tako-Token header") {
		t.Errorf("default header on a custom-header server: %d %q", r.status, d)
	}
}

// TestRateLimitMetersGuesses: the limiter runs before the key check, so a
// client guessing keys gets 429 once its address is over the limit, while
// a caller with a valid key has its own bucket.
func TestRateLimitMetersGuesses(t *testing.T) {
	t.Parallel()
	s := authServer(t, &fakeService{result: quickstartResult()}, Auth{}, RateLimit{PerSecond: 0.01, Burst: 3})
	for i := range 3 {
		if r := do(t, s, "GET", "/executions", "", map[string]string{"X-API-Key": "guess-0123456789abcde" + string(rune('a'+i))}); r.status != 401 {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	r := do(t, s, "GET", "/executions", "", map[string]string{"X-API-Key": "guess-0123456789abcdez"})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("fourth guess: %d %s", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if d, _ := r.object(t)["detail"].(string); !strings.Contains(d, "server.rate_limit") {
		t.Errorf("detail %q does not name the limit", d)
	}
	// The same address with a valid key is metered by key.
	if r := do(t, s, "GET", "/executions", "", map[string]string{"X-API-Key": ciKey}); r.status != 200 {
		t.Errorf("valid key after the guesses: %d", r.status)
	}
	// Health is never limited: probes must see the truth.
	for range 5 {
		if r := do(t, s, "GET", "/health", "", nil); r.status != 200 {
			t.Fatalf("health: %d", r.status)
		}
	}
}

func TestLimiterRefillsAndForgets(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{PerSecond: 2, Burst: 2}, func() time.Time { return now })
	for i := range 2 {
		if err := l.allow("a"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := l.allow("a")
	if jobs.ErrorCodeOf(err) != jobs.ERATELIMITED {
		t.Fatalf("third request: %v", err)
	}
	if e := err.(*jobs.Error); e.RetryAfter != 1 {
		t.Errorf("retry after %d s, want 1", e.RetryAfter)
	}
	if err := l.allow("b"); err != nil {
		t.Errorf("another caller has its own bucket: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := l.allow("a"); err != nil {
		t.Errorf("after half a second one token is back: %v", err)
	}
	// Once every bucket has refilled, they are dropped.
	now = now.Add(10 * time.Second)
	_ = l.allow("c")
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d buckets after every other caller went quiet, want 1", n)
	}
}

func TestListFilterByAPIKey(t *testing.T) {
	t.Parallel()
	fs := &fakeService{}
	s := authServer(t, fs, Auth{}, RateLimit{})
	if r := do(t, s, "GET", "/executions?api_key=ci", "", map[string]string{"X-API-Key": opsKey}); r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if got := fs.lastList.APIKey; got != "ci" {
		t.Errorf("filter api_key %q", got)
	}
	r := do(t, s, "GET", "/executions?api_key=a%20b", "", map[string]string{"X-API-Key": opsKey})
	if d, _ := r.object(t)["detail"].(string); r.status != 422 || !strings.HasPrefix(d, "api_key: ") {
		t.Errorf("bad filter: %d %q", r.status, d)
	}
}
