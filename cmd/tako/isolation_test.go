package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tako-run/tako/runner/runnertest"
)

// The keys of TestCallerIsolation: two users, a user with small quotas and
// an admin, each set the way an operator would (short form, fields, role).
const (
	keyA     = "a-key-0123456789abcdef"
	keyB     = "b-key-0123456789abcdef"
	keyQ     = "q-key-0123456789abcdef"
	keyAdmin = "admin-key-0123456789abcdef"
)

// reply is what came back for one request of the isolation tests.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// object decodes the reply as a JSON object, or fails.
func (c reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %q", c.status, err, c.body)
	}
	return m
}

// send makes one request to s as the holder of key ("" for none), with a
// JSON body when body is not empty; header entries are added, "Host"
// setting the Host header.
func (s *testServer) send(t *testing.T, key, method, path, body string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// listIDs returns the ids on the first page of GET /executions+query as the
// holder of key.
func (s *testServer) listIDs(t *testing.T, key, query string) map[string]bool {
	t.Helper()
	r := s.send(t, key, "GET", "/executions?limit=1000"+query, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list as %s: %d %s", key[:1], r.status, r.body)
	}
	ids := map[string]bool{}
	for _, it := range r.object(t)["items"].([]any) {
		item := it.(map[string]any)
		// What the job printed and returned is in a list item, as in the
		// original's; what was submitted and the artifacts are not.
		for _, large := range []string{"artifacts", "code", "input_data", "code_hash", "input_hash"} {
			if _, ok := item[large]; ok {
				t.Errorf("a list item carries %s: %v", large, item)
			}
		}
		ids[item["execution_id"].(string)] = true
	}
	return ids
}

// TestCallerIsolation runs a server with API keys of both roles and a
// quota, against real Docker and PostgreSQL: B gets exactly the 404 of an
// id that does not exist on everything of A's (status, result, record,
// artifact by GET and HEAD, cancel, rerun, fork) and never sees A's jobs
// in its list; the admin sees and acts on both; a key over its quota gets
// 429 with Retry-After, and nothing is stored.
func TestCallerIsolation(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	s := startOwnServer(t,
		"TAKO_AUTH_API_KEYS_A="+keyA,
		"TAKO_AUTH_API_KEYS_B_KEY="+keyB,
		"TAKO_AUTH_API_KEYS_Q_KEY="+keyQ, "TAKO_AUTH_API_KEYS_Q_MAX_PENDING=1", "TAKO_AUTH_API_KEYS_Q_MAX_CONCURRENT=1",
		"TAKO_AUTH_API_KEYS_OPS_KEY="+keyAdmin, "TAKO_AUTH_API_KEYS_OPS_ROLE=admin",
	)

	// A's work: a finished job with a secret input and an artifact, and
	// one that keeps running.
	r := s.send(t, keyA, "POST", "/execute", `{"code": "open('/output/report.txt', 'w').write('for A only'); print('ok')", "input_data": {"secret": "A's input"}}`, nil)
	if r.status != http.StatusOK || r.object(t)["stdout"] != "ok\n" {
		t.Fatalf("A's sync run: %d %s", r.status, r.body)
	}
	doneA := r.object(t)["execution_id"].(string)
	r = s.send(t, keyA, "POST", "/execute/async", `{"code": "import time; time.sleep(120)"}`, nil)
	if r.status != http.StatusOK {
		t.Fatalf("A's async job: %d %s", r.status, r.body)
	}
	runningA := r.object(t)["job_id"].(string)
	r = s.send(t, keyB, "POST", "/execute", `{"code": "print('b')"}`, nil)
	if r.status != http.StatusOK {
		t.Fatalf("B's sync run: %d %s", r.status, r.body)
	}
	doneB := r.object(t)["execution_id"].(string)

	t.Run("another key's job is a job that does not exist", func(t *testing.T) {
		missing := uuid.NewString()
		probes := []struct{ method, path, body string }{
			{"GET", "/jobs/%s", ""},
			{"GET", "/jobs/%s/result", ""},
			{"GET", "/jobs/%s/result?wait=true&timeout=1", ""},
			{"GET", "/executions/%s", ""},
			{"GET", "/jobs/%s/artifacts/report.txt", ""},
			{"HEAD", "/jobs/%s/artifacts/report.txt", ""},
			{"POST", "/jobs/%s/cancel", ""},
			{"POST", "/jobs/%s/rerun", "{}"},
			{"POST", "/jobs/%s/fork", `{"code": "print(open('/input/data.json').read())"}`},
			{"GET", "/jobs/%s/events", ""},
			{"GET", "/jobs/%s/deliveries", ""},
			{"POST", "/jobs/%s/deliveries/retry", ""},
		}
		for _, p := range probes {
			want := s.send(t, keyB, p.method, fmt.Sprintf(p.path, missing), p.body, nil)
			if want.status != http.StatusNotFound {
				t.Fatalf("%s %s of a missing id: %d %s", p.method, p.path, want.status, want.body)
			}
			for _, id := range []string{doneA, runningA} {
				got := s.send(t, keyB, p.method, fmt.Sprintf(p.path, id), p.body, nil)
				if got.status != want.status || got.header.Get("Content-Type") != want.header.Get("Content-Type") || len(got.body) != len(want.body) {
					t.Errorf("B: %s %s: %d %s; for a missing id: %d %s", p.method, fmt.Sprintf(p.path, id), got.status, got.body, want.status, want.body)
					continue
				}
				if len(want.body) > 0 && got.object(t)["detail"] != want.object(t)["detail"] {
					t.Errorf("B: %s %s: %s; for a missing id: %s", p.method, fmt.Sprintf(p.path, id), got.body, want.body)
				}
			}
		}
		// B's cancel did nothing: A's job still runs.
		if st := s.send(t, keyA, "GET", "/jobs/"+runningA, "", nil).object(t)["status"]; st != "queued" && st != "running" {
			t.Errorf("A's job after B's cancel: %v", st)
		}
	})

	t.Run("lists", func(t *testing.T) {
		b := s.listIDs(t, keyB, "")
		if len(b) != 1 || !b[doneB] {
			t.Errorf("B's list: %v, want only %s", b, doneB)
		}
		if other := s.listIDs(t, keyB, "&api_key=A"); len(other) != 0 {
			t.Errorf("B's list filtered by A: %v, want an empty page", other)
		}
		a := s.listIDs(t, keyA, "")
		if len(a) != 2 || !a[doneA] || !a[runningA] {
			t.Errorf("A's list: %v", a)
		}
		all := s.listIDs(t, keyAdmin, "")
		for _, id := range []string{doneA, runningA, doneB} {
			if !all[id] {
				t.Errorf("the admin's list lacks %s: %v", id, all)
			}
		}
		if onlyB := s.listIDs(t, keyAdmin, "&api_key=B"); len(onlyB) != 1 || !onlyB[doneB] {
			t.Errorf("the admin's list filtered by B: %v", onlyB)
		}
	})

	t.Run("the owner and the admin follow the events", func(t *testing.T) {
		for _, key := range []string{keyA, keyAdmin} {
			r := s.send(t, key, "GET", "/jobs/"+doneA+"/events", "", nil)
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") ||
				!strings.Contains(string(r.body), "event: done\n") || !strings.Contains(string(r.body), `"data":"ok\n"`) {
				t.Errorf("events of A's job: %d %s", r.status, r.body)
			}
		}
	})

	t.Run("the admin acts on everyone's", func(t *testing.T) {
		if r := s.send(t, keyAdmin, "GET", "/executions/"+doneA, "", nil); r.status != http.StatusOK || r.object(t)["stdout"] != "ok\n" || r.object(t)["api_key"] != "A" {
			t.Errorf("the admin reads A's record: %d %s", r.status, r.body)
		}
		if r := s.send(t, keyAdmin, "GET", "/jobs/"+doneA+"/artifacts/report.txt", "", nil); r.status != http.StatusOK || string(r.body) != "for A only" {
			t.Errorf("the admin downloads A's artifact: %d %q", r.status, r.body)
		}
		if r := s.send(t, keyA, "GET", "/jobs/"+doneA+"/artifacts/report.txt", "", nil); r.status != http.StatusOK {
			t.Errorf("A downloads its own artifact: %d", r.status)
		}
		r := s.send(t, keyAdmin, "POST", "/jobs/"+runningA+"/cancel", "", nil)
		if r.status != http.StatusOK {
			t.Errorf("the admin cancels A's job: %d %s", r.status, r.body)
		}
		// The answer waits up to 5 s for the node to kill the job; on a
		// loaded machine the record follows a little later.
		var rec reply
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if rec = s.send(t, keyAdmin, "GET", "/executions/"+runningA, "", nil); rec.object(t)["status"] == "cancelled" {
				break
			}
		}
		if rec.object(t)["status"] != "cancelled" {
			t.Errorf("the admin cancels A's job: %d %s\nits record: %s", r.status, r.body, rec.body)
		}
	})

	t.Run("quotas", func(t *testing.T) {
		// Q's first job takes its one running place; its second waits in
		// the queue (its one pending place).
		r := s.send(t, keyQ, "POST", "/execute/async", `{"code": "import time; time.sleep(120)"}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("Q's first job: %d %s", r.status, r.body)
		}
		first := r.object(t)["job_id"].(string)
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if st := s.send(t, keyQ, "GET", "/jobs/"+first, "", nil).object(t)["status"]; st == "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Q's first job never started")
			}
		}
		r = s.send(t, keyQ, "POST", "/execute/async", `{"code": "print('second')"}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("Q's second job: %d %s", r.status, r.body)
		}
		second := r.object(t)["job_id"].(string)

		over := []struct{ path, body, quota string }{
			{"/execute/async", `{"code": "print('third')"}`, "max_pending"},
			{"/execute", `{"code": "print('sync')"}`, "max_concurrent"},
			{"/jobs/" + first + "/fork", `{"code": "print('fork')"}`, "max_pending"},
		}
		for _, o := range over {
			r := s.send(t, keyQ, "POST", o.path, o.body, nil)
			detail, _ := r.object(t)["detail"].(string)
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(detail, o.quota) {
				t.Errorf("Q over its %s: %d Retry-After %q %s", o.quota, r.status, r.header.Get("Retry-After"), r.body)
			}
		}
		// Nothing of what was refused is stored.
		if q := s.listIDs(t, keyAdmin, "&api_key=Q"); len(q) != 2 || !q[first] || !q[second] {
			t.Errorf("Q's executions after the refusals: %v, want only %s and %s", q, first, second)
		}
		if st := s.send(t, keyQ, "GET", "/jobs/"+second, "", nil).object(t)["status"]; st != "queued" {
			t.Errorf("Q's second job is %v while its first runs, want queued", st)
		}
		// Other keys are not limited by Q's quota.
		if r := s.send(t, keyB, "POST", "/execute", `{"code": "print('b again')"}`, nil); r.status != http.StatusOK {
			t.Errorf("B while Q is over its quota: %d %s", r.status, r.body)
		}
		// Once the first ends, the second runs.
		if r := s.send(t, keyQ, "POST", "/jobs/"+first+"/cancel", "", nil); r.status != http.StatusOK {
			t.Fatalf("cancel Q's first job: %d %s", r.status, r.body)
		}
		r = s.send(t, keyQ, "GET", "/jobs/"+second+"/result?wait=true&timeout=120", "", nil)
		if r.status != http.StatusOK || r.object(t)["stdout"] != "second\n" {
			t.Errorf("Q's second job after the first ended: %d %s", r.status, r.body)
		}
	})
}

// rawRequest sends request, an HTTP/1.1 request written out as curl would
// send it, to s over TCP and returns the status and the body.
func rawRequest(t *testing.T, s *testServer, request string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrowsersKeptOut: the default loopback server refuses what a web page
// can make a browser send (a text/plain POST, a rebound Host, a
// cross-origin change) and sends no CORS headers, while curl-style
// requests work as before.
func TestBrowsersKeptOut(t *testing.T) {
	s := startServer(t)
	t.Parallel()
	host := strings.TrimPrefix(s.url, "http://")
	_, port, _ := net.SplitHostPort(host)
	body := `{"code": "print(1 + 1)"}`

	// What curl sends for the README's example, byte for byte.
	status, answer := rawRequest(t, s, "POST /execute HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\nConnection: close\r\n\r\n"+body)
	if status != http.StatusOK || !strings.Contains(answer, `"stdout":"2\n"`) {
		t.Errorf("curl's request: %d %s", status, answer)
	}
	status, answer = rawRequest(t, s, "GET /health HTTP/1.1\r\nHost: localhost:"+port+"\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n")
	if status != http.StatusOK || !strings.Contains(answer, `"checked_at"`) {
		t.Errorf("curl's GET /health by localhost: %d %s", status, answer)
	}
	// curl -X POST .../rerun: no body, no Content-Type.
	id := s.submit(t, `{"code": "print('again')"}`)
	s.result(t, id)
	status, answer = rawRequest(t, s, "POST /jobs/"+id+"/rerun HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n")
	if status != http.StatusOK {
		t.Errorf("curl -X POST .../rerun: %d %s", status, answer)
	}

	// A form or fetch() from a page sends text/plain, which needs no
	// preflight.
	for _, ct := range []string{"text/plain;charset=UTF-8", "application/x-www-form-urlencoded"} {
		req, _ := http.NewRequest("POST", s.url+"/execute", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !bytes.Contains(b, []byte("Content-Type must be application/json")) {
			t.Errorf("POST with %s: %d %s", ct, resp.StatusCode, b)
		}
	}
	// DNS rebinding: the page's own name, now pointing at 127.0.0.1.
	for _, path := range []string{"/execute", "/health", "/executions"} {
		method, b := "GET", ""
		if path == "/execute" {
			method, b = "POST", body
		}
		r := s.send(t, "", method, path, b, map[string]string{"Host": "rebind.attacker.example:" + port})
		if r.status != http.StatusMisdirectedRequest || !strings.Contains(string(r.body), "server.allowed_hosts") {
			t.Errorf("%s %s with a foreign Host: %d %s", method, path, r.status, r.body)
		}
	}
	// A cross-origin change, and no CORS headers for anyone.
	r := s.send(t, "", "POST", "/execute", body, map[string]string{"Origin": "https://attacker.example"})
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "server.cors_origins") {
		t.Errorf("a cross-origin POST: %d %s", r.status, r.body)
	}
	r = s.send(t, "", "GET", "/job-types", "", map[string]string{"Origin": "https://attacker.example"})
	for k := range r.header {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("a CORS header without server.cors_origins: %s: %s", k, r.header.Get(k))
		}
	}
}
