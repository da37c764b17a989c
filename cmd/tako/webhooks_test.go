package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/runner/runnertest"
)

// hookRequest is one request a test receiver got.
type hookRequest struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a webhook receiver on loopback whose answer depends on the
// path: /ok 200, /flaky 500 twice and then 200, /gone 410, /slow never
// in time, /redirect 302 to /target.
type receiver struct {
	srv *httptest.Server

	mu   sync.Mutex
	got  []hookRequest
	hits map[string]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{hits: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, hookRequest{path: req.URL.Path, header: req.Header.Clone(), body: body, at: time.Now()})
		r.hits[req.URL.Path]++
		n := r.hits[req.URL.Path]
		r.mu.Unlock()
		switch req.URL.Path {
		case "/flaky":
			if n <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		case "/gone":
			w.WriteHeader(http.StatusGone)
			return
		case "/slow":
			select {
			case <-req.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		case "/redirect":
			http.Redirect(w, req, "/target", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// requests returns what path got, in order.
func (r *receiver) requests(path string) []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hookRequest
	for _, g := range r.got {
		if g.path == path {
			out = append(out, g)
		}
	}
	return out
}

// newSecret returns a fresh webhook secret.
func newSecret() string {
	b := make([]byte, 24)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// deliveries polls GET /jobs/{id}/deliveries until done says it has
// what it waits for.
func deliveries(t *testing.T, s *testServer, id string, within time.Duration, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	var last []map[string]any
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, v := s.get(t, "/jobs/"+id+"/deliveries")
		if code != http.StatusOK {
			t.Fatalf("deliveries of %s: %d %v", id, code, v)
		}
		last = nil
		for _, d := range v.(map[string]any)["deliveries"].([]any) {
			last = append(last, d.(map[string]any))
		}
		if done(last) {
			return last
		}
	}
	t.Fatalf("deliveries of %s: %v", id, last)
	return nil
}

// pythonVerify checks a Standard Webhooks signature with Python's own
// hmac, hashlib and base64: an implementation that shares nothing with
// tako's. It exits 0 when one of the header's signatures is the secret's.
const pythonVerify = `
import base64, hashlib, hmac, json, sys
secret, msg_id, ts, sigs, body_file = sys.argv[1:6]
key = base64.b64decode(secret[len("whsec_"):])
body = open(body_file, "rb").read()
mac = hmac.new(key, msg_id.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).digest()
want = base64.b64encode(mac).decode()
ok = any(s.split(",", 1)[1] == want for s in sigs.split(" ") if s.startswith("v1,"))
sys.exit(0 if ok else 1)
`

// TestWebhooks sends real webhooks to a receiver on loopback, which the
// test allows (webhooks.allow_private_networks, allow_http).
func TestWebhooks(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 checks the signatures independently: ", err)
	}
	rcv := newReceiver(t)
	oldSecret, newSecret := newSecret(), newSecret()
	s := startOwnServer(t,
		"TAKO_WEBHOOKS_SECRET="+newSecret+","+oldSecret,
		"TAKO_WEBHOOKS_ALLOW_HTTP=true", "TAKO_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true",
		"TAKO_WEBHOOKS_RETRY_SCHEDULE=1s,1s,1s", "TAKO_WEBHOOKS_TIMEOUT=2s",
		"TAKO_JOB_TYPES_HOOKED_CALLBACK_URL="+rcv.srv.URL+"/typed",
		"TAKO_JOB_TYPES_HOOKED_POOL_MIN=0", "TAKO_JOB_TYPES_HOOKED_POOL_MAX=1",
	)
	run := func(t *testing.T, path, extra string) string {
		t.Helper()
		code, res := s.post(t, "/execute", fmt.Sprintf(`{"code": "print('hi')", "callback_url": %q%s}`, rcv.srv.URL+path, extra))
		if code != http.StatusOK {
			t.Fatalf("execute with callback %s: %d %v", path, code, res)
		}
		return res["execution_id"].(string)
	}

	t.Run("the signature checks out with Python's hmac, for each secret", func(t *testing.T) {
		id := run(t, "/ok", "")
		ds := deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) == 1 })
		if ds[0]["outcome"] != "delivered" || ds[0]["status_code"] != float64(200) {
			t.Fatalf("delivery: %v", ds[0])
		}
		reqs := rcv.requests("/ok")
		if len(reqs) != 1 {
			t.Fatalf("the receiver got %d requests", len(reqs))
		}
		r := reqs[0]
		if r.header.Get("webhook-id") != id || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("headers: %v", r.header)
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		// The body is the job's result, as GET /jobs/{id}/result has it.
		if result := s.result(t, id); body["execution_id"] != id || body["stdout"] != "hi\n" || len(body) != len(result) {
			t.Errorf("webhook body %v; the result %v", body, result)
		}
		bodyFile := filepath.Join(t.TempDir(), "body")
		if err := os.WriteFile(bodyFile, r.body, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{newSecret, oldSecret, "whsec_" + base64.StdEncoding.EncodeToString([]byte("some other secret key"))} {
			cmd := exec.Command(python, "-c", pythonVerify, secret, r.header.Get("webhook-id"), r.header.Get("webhook-timestamp"), r.header.Get("webhook-signature"), bodyFile)
			out, err := cmd.CombinedOutput()
			valid := err == nil
			if want := secret != "whsec_"+base64.StdEncoding.EncodeToString([]byte("some other secret key")); valid != want {
				t.Errorf("python verifies with a secret (listed: %v): %v %s", want, err, out)
			}
		}
	})

	t.Run("500 twice then 200 is three attempts, all recorded", func(t *testing.T) {
		id := run(t, "/flaky", "")
		ds := deliveries(t, s, id, 2*time.Minute, func(d []map[string]any) bool {
			return len(d) > 0 && d[len(d)-1]["outcome"] == "delivered"
		})
		time.Sleep(2 * time.Second) // nothing more comes
		ds = deliveries(t, s, id, time.Minute, func([]map[string]any) bool { return true })
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%v %v %v", d["attempt"], d["status_code"], d["outcome"]))
		}
		if want := "1 500 retry|2 500 retry|3 200 delivered"; strings.Join(got, "|") != want {
			t.Errorf("deliveries: %v, want %s", got, want)
		}
		reqs := rcv.requests("/flaky")
		if len(reqs) != 3 {
			t.Fatalf("the receiver got %d requests", len(reqs))
		}
		for _, r := range reqs {
			if r.header.Get("webhook-id") != id {
				t.Errorf("a retry with another webhook-id: %v", r.header.Get("webhook-id"))
			}
		}
	})

	t.Run("410 stops delivery; a retry by hand tries again", func(t *testing.T) {
		id := run(t, "/gone", "")
		deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) == 1 && d[0]["outcome"] == "stopped" })
		time.Sleep(3 * time.Second) // longer than the schedule's step
		if n := len(rcv.requests("/gone")); n != 1 {
			t.Errorf("after a 410 the receiver got %d requests", n)
		}
		if code, res := s.post(t, "/jobs/"+id+"/deliveries/retry", ""); code != http.StatusAccepted {
			t.Fatalf("retry by hand: %d %v", code, res)
		}
		deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) == 2 && d[1]["attempt"] == float64(2) })
	})

	t.Run("a slow receiver times out", func(t *testing.T) {
		id := run(t, "/slow", "")
		ds := deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) >= 1 })
		if ds[0]["status_code"] != nil || !strings.Contains(fmt.Sprint(ds[0]["error"]), "timed out after 2s") || ds[0]["outcome"] != "retry" {
			t.Errorf("a slow receiver's attempt: %v", ds[0])
		}
	})

	t.Run("a redirect is not followed", func(t *testing.T) {
		id := run(t, "/redirect", "")
		ds := deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) >= 1 })
		if ds[0]["status_code"] != float64(302) || ds[0]["outcome"] != "retry" {
			t.Errorf("a redirect's attempt: %v", ds[0])
		}
		time.Sleep(time.Second)
		if n := len(rcv.requests("/target")); n != 0 {
			t.Errorf("the redirect's target got %d requests", n)
		}
	})

	t.Run("a job type's default callback, an async job's", func(t *testing.T) {
		id := s.submit(t, `{"code": "print('typed')", "job_type": "hooked"}`)
		ds := deliveries(t, s, id, 2*time.Minute, func(d []map[string]any) bool { return len(d) == 1 })
		if ds[0]["outcome"] != "delivered" || ds[0]["url"] != rcv.srv.URL+"/typed" {
			t.Errorf("the job type's callback: %v", ds[0])
		}
	})

	t.Run("delivery delay after the job ends", func(t *testing.T) {
		const n = 20
		var delays []time.Duration
		for range n {
			before := len(rcv.requests("/timed"))
			id := run(t, "/timed", "")
			deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) == 1 })
			r := rcv.requests("/timed")[before]
			finished, err := time.Parse(time.RFC3339Nano, fmt.Sprint(s.result(t, id)["finished_at"]))
			if err != nil {
				t.Fatal(err)
			}
			delays = append(delays, r.at.Sub(finished))
		}
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		t.Logf("webhook delivery after the job ended, %d jobs: p50 %s, p99 %s, max %s", n, delays[n/2], delays[n*99/100], delays[n-1])
	})

	t.Run("the README's Python receiver accepts the webhook", func(t *testing.T) {
		readme, err := os.ReadFile("../../README.md")
		if err != nil {
			t.Fatal(err)
		}
		_, section, _ := strings.Cut(string(readme), "### Webhooks")
		_, code, ok := strings.Cut(section, "```python\n")
		code, _, ok2 := strings.Cut(code, "```")
		const serve = `http.server.HTTPServer(("", 9000), Hook).serve_forever()`
		if !ok || !ok2 || !strings.Contains(code, `"whsec_..."`) || !strings.Contains(code, serve) {
			t.Fatalf("the README's receiver has changed shape:\n%s", code)
		}
		// One request, on a port of its own, with the server's old
		// secret: rotation keeps old receivers working.
		code = strings.NewReplacer(`"whsec_..."`, strconv.Quote(oldSecret),
			serve, `srv = http.server.HTTPServer(("127.0.0.1", 0), Hook)
print(srv.server_address[1], flush=True)
srv.handle_request()`).Replace(code)
		cmd := exec.Command(python, "-c", code)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() {
			t.Fatalf("the README's receiver did not start: %v", cmd.Wait())
		}
		url := "http://127.0.0.1:" + strings.TrimSpace(lines.Text()) + "/"
		code2, res := s.post(t, "/execute", fmt.Sprintf(`{"code": "print('from the readme')", "callback_url": %q}`, url))
		if code2 != http.StatusOK {
			t.Fatalf("execute: %d %v", code2, res)
		}
		id := res["execution_id"].(string)
		ds := deliveries(t, s, id, time.Minute, func(d []map[string]any) bool { return len(d) >= 1 })
		var printed []string
		for lines.Scan() {
			printed = append(printed, lines.Text())
		}
		cmd.Wait()
		if ds[0]["status_code"] != float64(204) || ds[0]["outcome"] != "delivered" || !slices.Contains(printed, "from the readme") {
			t.Errorf("the README's receiver: %v; it printed %q", ds[0], printed)
		}
	})

	t.Run("deliveries are counted in the metrics", func(t *testing.T) {
		_, raw, err := getRaw(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v := string(raw)
		for _, series := range []string{`tako_webhook_attempts_total{outcome="delivered"}`, `tako_webhook_attempts_total{outcome="retry"}`, `tako_webhook_attempts_total{outcome="stopped"}`} {
			if !metricAtLeast(v, series, 1) {
				t.Errorf("%s:\n%s", series, grepLines(v, "tako_webhook"))
			}
		}
		if !metricAtLeast(v, "tako_webhook_delivery_delay_seconds_count", 20) {
			t.Errorf("delivery delay:\n%s", grepLines(v, "tako_webhook_delivery_delay"))
		}
	})
}

// TestCallbackSSRF submits callbacks to addresses a server with the
// default webhook settings must refuse: each is a 422 naming
// callback_url, and nothing connects to the listener they point at.
func TestCallbackSSRF(t *testing.T) {
	s := startServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	accepted := 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// want is what the refusal says: the address, or the scheme.
	want := func(u string) string {
		if strings.HasPrefix(u, "http:") {
			return "https"
		}
		return "refused"
	}
	for _, u := range []string{
		fmt.Sprintf("https://127.0.0.1:%d/hook", port),
		fmt.Sprintf("https://localhost:%d/hook", port), // a name that resolves to 127.0.0.1
		fmt.Sprintf("https://[::ffff:127.0.0.1]:%d/hook", port),
		"https://10.0.0.1/hook",
		"https://169.254.169.254/latest/meta-data/",
		"https://100.64.0.1/hook",
		fmt.Sprintf("http://127.0.0.1:%d/hook", port), // and http at all
	} {
		for _, path := range []string{"/execute", "/execute/async"} {
			code, res := s.post(t, path, fmt.Sprintf(`{"code": "print(1)", "callback_url": %q}`, u))
			if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(res), "callback_url") || !strings.Contains(fmt.Sprint(res), want(u)) {
				t.Errorf("%s with callback %s: %d %v", path, u, code, res)
			} else if path == "/execute" {
				t.Logf("%s: %v", u, res["detail"])
			}
		}
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if accepted != 0 {
		t.Errorf("the listener the refused callbacks named got %d connections", accepted)
	}
}
