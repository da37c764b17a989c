package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestHostPolicy(t *testing.T) {
	t.Parallel()
	p := newHostPolicy([]string{"localhost", "127.0.0.1", "[::1]", "api.example.com:8443", "*.internal.example", "Tako.Example"})
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:8000", true},
		{"LOCALHOST:8000", true},
		{"localhost.:8000", true},
		{"127.0.0.1:8000", true},
		{"127.0.0.1", true},
		{"[::1]:8000", true},
		{"[::1]", true},
		{"tako.example", true},
		{"api.example.com:8443", true},
		{"api.example.com:443", false},
		{"api.example.com", false},
		{"a.internal.example:9000", true},
		{"internal.example", false},
		{"evil.example:8000", false},
		{"127.0.0.1.evil.example", false},
		{"localhost.evil.example:8000", false},
		{"0.0.0.0:8000", false},
		{"", false},
		{"[::1", false},
	}
	for _, tt := range tests {
		if got := p.allows(tt.host); got != tt.want {
			t.Errorf("allows(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	if !newHostPolicy(nil).allows("anything.example") || !newHostPolicy([]string{"*"}).allows("x:1") {
		t.Error("an empty list or * must allow any host")
	}
}

// TestForeignHost: a request for a host the server does not answer for is
// 421, before anything else (the key check included); the server's own
// names work, and so does /health.
func TestForeignHost(t *testing.T) {
	t.Parallel()
	s := New(Options{
		AllowedHosts: []string{"localhost", "127.0.0.1", "[::1]"},
		Auth:         Auth{Keys: map[string]Key{"a": {Secret: keyA}}},
		Registry:     testRegistry(t), Runner: &fakeRunner{}, Service: &fakeService{result: quickstartResult()}, Version: "test",
	})
	stopOnCleanup(t, s)
	for _, host := range []string{"attacker.example:8000", "localhost.attacker.example", "0.0.0.0:8000"} {
		for _, path := range []string{"/execute", "/health", "/executions"} {
			method, body := "GET", ""
			if path == "/execute" {
				method, body = "POST", `{"code": "print(1)"}`
			}
			r := do(t, s, method, path, body, map[string]string{"Host": host, "X-API-Key": keyA})
			checkErrorContains(t, r, http.StatusMisdirectedRequest, "this server does not answer for host")
			if d := r.object(t)["detail"].(string); !strings.Contains(d, "server.allowed_hosts") {
				t.Errorf("detail %q does not say how to allow a host", d)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:8000", "localhost:8000", "[::1]:8000"} {
		r := do(t, s, "POST", "/execute", `{"code": "print(1)"}`, map[string]string{"Host": host, "X-API-Key": keyA})
		if r.status != http.StatusOK {
			t.Errorf("Host %s: %d %s", host, r.status, r.body)
		}
	}
}

// TestContentType: POST bodies are JSON or the request is 415; a body-less
// POST may have no Content-Type.
func TestContentType(t *testing.T) {
	t.Parallel()
	fs := &fakeService{result: quickstartResult()}
	e := fs.record(finishedExecution())
	s := newTestServer(t, fs, nil, Limits{})
	body := `{"code": "print(1)"}`
	tests := []struct {
		name, path, body, ct string
		status               int
	}{
		{"json", "/execute", body, "application/json", 200},
		{"json with charset", "/execute", body, "application/json; charset=utf-8", 200},
		{"json in capitals", "/execute", body, "Application/JSON", 200},
		{"text/plain from a page", "/execute", body, "text/plain", 415},
		{"text/plain with charset", "/execute/async", body, "text/plain;charset=UTF-8", 415},
		{"form", "/execute", "code=print(1)", "application/x-www-form-urlencoded", 415},
		{"multipart", "/execute", "--x\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\nprint(1)\r\n--x--\r\n", "multipart/form-data; boundary=x", 415},
		{"json-like", "/execute", body, "application/json-seq", 415},
		{"no Content-Type with a body", "/execute", body, "", 415},
		{"rerun without a body or Content-Type", "/jobs/" + e.ID + "/rerun", "", "", 200},
		{"cancel without a body or Content-Type", "/jobs/" + e.ID + "/cancel", "", "", 404},
		{"cancel with an empty text/plain body", "/jobs/" + e.ID + "/cancel", "", "text/plain", 415},
		{"build without a body", "/job-types/default/build", "", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "POST", tt.path, tt.body, map[string]string{"Content-Type": tt.ct})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 415 {
				if d := checkErrorBody(t, r); !strings.Contains(d, "Content-Type must be application/json") {
					t.Errorf("detail %q does not name Content-Type", d)
				}
			}
		})
	}
}

// TestOrigin: a change sent by a page of another origin is refused unless
// server.cors_origins lists it; reads, same-origin pages and clients that
// send no Origin are not affected.
func TestOrigin(t *testing.T) {
	t.Parallel()
	body := `{"code": "print(1)"}`
	closed := newTestServer(t, nil, nil, Limits{})
	r := do(t, closed, "POST", "/execute", body, map[string]string{"Origin": "https://evil.example"})
	checkError(t, r, http.StatusForbidden, `cross-origin requests are refused: Origin "https://evil.example" is not in server.cors_origins`)
	if r := do(t, closed, "POST", "/execute", body, map[string]string{"Origin": "null"}); r.status != http.StatusForbidden {
		t.Errorf("Origin null: %d", r.status)
	}
	if r := do(t, closed, "POST", "/execute", body, map[string]string{"Origin": "http://example.com", "Host": "example.com"}); r.status != http.StatusOK {
		t.Errorf("same origin: %d %s", r.status, r.body)
	}
	r = do(t, closed, "GET", "/job-types", "", map[string]string{"Origin": "https://evil.example"})
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a read with an Origin: %d, Access-Control-Allow-Origin %q; want 200 and no CORS header", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}

	open := New(Options{
		CORSOrigins: []string{"https://app.example.com"},
		Auth:        Auth{Keys: map[string]Key{"a": {Secret: keyA}}, Header: "X-Tako-Key"},
		Registry:    testRegistry(t), Runner: &fakeRunner{}, Service: &fakeService{result: quickstartResult()}, Version: "test",
	})
	stopOnCleanup(t, open)
	r = do(t, open, "POST", "/execute", body, map[string]string{"Origin": "https://app.example.com", "X-Tako-Key": keyA})
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("a listed origin: %d, Access-Control-Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	if r := do(t, open, "POST", "/execute", body, map[string]string{"Origin": "https://evil.example", "X-Tako-Key": keyA}); r.status != http.StatusForbidden {
		t.Errorf("an unlisted origin next to a listed one: %d", r.status)
	}
	pre := do(t, open, "OPTIONS", "/execute", "", map[string]string{
		"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-tako-key",
	})
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")), "x-tako-key") {
		t.Errorf("preflight: %d %v", pre.status, pre.header)
	}
	pre = do(t, open, "OPTIONS", "/execute", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	if pre.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of an unlisted origin allowed: %v", pre.header)
	}
}
