package egress_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/runner/egress"
	"github.com/tako-run/tako/runner/runnertest"
)

// TestLease: a job container reaches through its lease exactly the hosts
// it was opened for, by name, wildcard, plain HTTP and CONNECT; refusals
// are 403s that say why; the lease opens nothing before Open, nothing for
// another container, and nothing after Close; and Close returns every
// attempt with its result and bytes.
func TestLease(t *testing.T) {
	dc := runnertest.Docker(t)
	image := runnertest.ExecutorImage(t, dc)
	certPEM, keyPEM := runnertest.SelfSigned(t, "allowed.test")

	// The destination: HTTP on 8080, HTTPS on 8443, on a network of its
	// own, a private range the operator allows.
	serverNet, subnet := runnertest.Network(t, dc, "tako-test-egress-dest")
	dest := tlsServer(t, dc, image, serverNet, certPEM, keyPEM)
	g := startGateway(t, dc, egress.Options{
		AllowPrivate: []netip.Prefix{subnet},
		Hosts: map[string]netip.Addr{
			"Allowed.Test": dest,
			"a.wild.test":  dest,
			"private.test": netip.MustParseAddr("10.255.255.1"), // private, not allowed
		},
	})
	lease := g.Lease()
	if host := strings.Split(strings.Split(lease.ProxyURL(), "@")[1], ":")[0]; host != g.Address().String() {
		t.Errorf("Address() %s is not the proxy URL's host %s", g.Address(), host)
	}
	var rules []egress.Host
	for _, entry := range []string{"allowed.test:8080", "allowed.test:8443", "allowed.test:8081", "*.wild.test:8080", "private.test:8080", "169.254.169.254:80"} {
		h, err := egress.ParseRule(entry)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, h)
	}
	checks := [][]string{
		{"allowed", "fetch", "http://allowed.test:8080/"},
		{"wildcard", "fetch", "http://a.wild.test:8080/"},
		{"other host", "fetch", "http://other.test:8080/"},
		{"private address", "fetch", "http://private.test:8080/"},
		{"other port", "fetch", "http://allowed.test:9999/"},
		{"metadata", "fetch", "http://169.254.169.254/"},
		{"by address", "fetch", "http://" + dest.String() + ":8080/"},
		{"nothing listening", "fetch", "http://allowed.test:8081/"},
		{"tunnel", "tunnel", "allowed.test:8443"},
		{"tunnel elsewhere", "tunnel", "other.test:443"},
	}
	arg, _ := json.Marshal(checks)
	job := startJob(t, dc, image, g.Network(), "PROXY="+lease.ProxyURL(), "CA_PEM="+string(certPEM), "CHECKS="+string(arg))

	// The job asks before the lease is open, then waits for /tmp/open.
	if got := job.line(t)["before open"]; status(got) != "407" {
		t.Errorf("before Open: %v, want 407", got)
	}
	lease.Open(job.addr, rules)
	job.signal(t, "open")
	results := job.line(t)
	want := map[string]string{"allowed": "200", "wildcard": "200", "other host": "403", "private address": "403",
		"other port": "403", "metadata": "403", "by address": "403", "nothing listening": "502",
		"tunnel": "200", "tunnel elsewhere": "403"}
	for name, w := range want {
		if s := status(results[name]); s != w {
			t.Errorf("%s: %v, want %s", name, results[name], w)
		}
	}
	bodies := map[string]string{
		"other host":        "tako egress: other.test:8080 is not in this job's allowlist",
		"private address":   "tako egress: private.test resolves to 10.255.255.1, a private address",
		"metadata":          "tako egress: 169.254.169.254 is the cloud metadata address",
		"tunnel elsewhere":  "tako egress: other.test:443 is not in this job's allowlist",
		"nothing listening": "tako egress: could not connect to allowed.test:8081: connection refused",
	}
	for name, w := range bodies {
		if b := body(results[name]); b != w {
			t.Errorf("%s: body %q, want %q", name, b, w)
		}
	}

	// Another container with the same URL gets nothing, and leaves no
	// trace in the lease's audit.
	copied, _ := json.Marshal([][]any{{"fetch", "copied credentials", "http://allowed.test:8080/", lease.ProxyURL()}})
	out := run(t, dc, image, g.Network(), "import sys; sys.argv = ['probe', "+quote(string(copied))+"]\n"+probe)
	if !strings.Contains(out, `"copied credentials": 407`) {
		t.Errorf("another container with the lease's URL: %s, want 407", out)
	}

	attempts := lease.Close()
	job.signal(t, "closed")
	if got := job.line(t)["after close"]; status(got) != "407" {
		t.Errorf("after Close: %v, want 407", got)
	}
	job.wait(t)

	wantAttempts := []egress.Attempt{
		{Host: "allowed.test", Port: 8080, Result: egress.ResultAllowed, Rule: "allowed.test:8080"},
		{Host: "a.wild.test", Port: 8080, Result: egress.ResultAllowed, Rule: "*.wild.test:8080"},
		{Host: "other.test", Port: 8080, Result: egress.ResultRefused, Reason: "other.test:8080 is not in this job's allowlist"},
		{Host: "private.test", Port: 8080, Result: egress.ResultRefused, Reason: "private.test resolves to 10.255.255.1, a private address", Rule: "private.test:8080"},
		{Host: "allowed.test", Port: 9999, Result: egress.ResultRefused, Reason: "allowed.test:9999 is not in this job's allowlist"},
		{Host: "169.254.169.254", Port: 80, Result: egress.ResultRefused, Reason: "169.254.169.254 is the cloud metadata address", Rule: "169.254.169.254:80"},
		{Host: dest.String(), Port: 8080, Result: egress.ResultRefused, Reason: dest.String() + ":8080 is not in this job's allowlist"},
		{Host: "allowed.test", Port: 8081, Result: egress.ResultFailed, Reason: "could not connect to allowed.test:8081: connection refused", Rule: "allowed.test:8081"},
		{Host: "allowed.test", Port: 8443, Result: egress.ResultAllowed, Rule: "allowed.test:8443"},
		{Host: "other.test", Port: 443, Result: egress.ResultRefused, Reason: "other.test:443 is not in this job's allowlist"},
	}
	if len(attempts) != len(wantAttempts) {
		t.Fatalf("Close returned %d attempts, want %d: %+v", len(attempts), len(wantAttempts), attempts)
	}
	for i, w := range wantAttempts {
		a := attempts[i]
		if a.Host != w.Host || a.Port != w.Port || a.Result != w.Result || a.Rule != w.Rule || a.Reason != w.Reason {
			t.Errorf("attempt %d: %+v, want %+v", i, a, w)
		}
		moved := a.BytesSent > 0 && a.BytesReceived > 0
		if moved != (w.Result == egress.ResultAllowed) {
			t.Errorf("attempt %d (%s:%d, %s): %d bytes sent, %d received", i, a.Host, a.Port, a.Result, a.BytesSent, a.BytesReceived)
		}
	}
	// The directory listing of /usr/share is several kilobytes.
	if attempts[0].BytesReceived < 1000 {
		t.Errorf("allowed fetch: %d bytes received, want the listing's", attempts[0].BytesReceived)
	}
	if again := lease.Close(); len(again) != len(attempts) {
		t.Errorf("a second Close returned %d attempts, the first %d", len(again), len(attempts))
	}
}

// job is a client container that reports on stdout, one JSON object a
// line, and waits for files the test copies in.
type job struct {
	dc    *client.Client
	id    string
	addr  netip.Addr // on the egress network
	lines chan string
	errs  *syncBuilder // stderr
}

// jobProgram is the job: it fetches through $PROXY before the lease is
// open, runs $CHECKS once /tmp/open exists, and fetches once more once
// /tmp/closed exists. A fetch or tunnel reports [status, body].
const jobProgram = `import base64, json, os, socket, ssl, sys, time, urllib.parse, urllib.request
proxy = os.environ['PROXY']
def fetch(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({'http': proxy}))
    try:
        with opener.open(url, timeout=60) as r:
            r.read()
            return [r.status, '']
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode(errors='replace').strip()]
    except Exception as e:
        return [type(e).__name__, str(e)]
def tunnel(target):
    host, port = target.rsplit(':', 1)
    u = urllib.parse.urlsplit(proxy)
    auth = base64.b64encode((u.username + ':' + u.password).encode()).decode()
    s = socket.create_connection((u.hostname, u.port), timeout=60)
    try:
        s.sendall(('CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n' % (target, target, auth)).encode())
        f = s.makefile('rb')
        status = int(f.readline().split()[1])
        length = 0
        while True:
            line = f.readline()
            if line in (b'\r\n', b'\n', b''):
                break
            k, _, v = line.decode().partition(':')
            if k.strip().lower() == 'content-length':
                length = int(v)
        if status != 200:
            return [status, f.read(length).decode(errors='replace').strip()]
        ctx = ssl.create_default_context(cadata=os.environ['CA_PEM'])
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
        with ctx.wrap_socket(s, server_hostname=host) as t:
            t.sendall(('GET / HTTP/1.0\r\nHost: %s\r\n\r\n' % host).encode())
            data = b''
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
        return [int(data.split()[1]), '']
    except Exception as e:
        return [type(e).__name__, str(e)]
    finally:
        s.close()
def wait_for(path):
    deadline = time.time() + 900
    while not os.path.exists(path):
        if time.time() > deadline:
            sys.exit('timed out waiting for ' + path)
        time.sleep(0.2)
print(json.dumps({'before open': fetch('http://allowed.test:8080/')}), flush=True)
wait_for('/tmp/open')
out = {}
for name, kind, target in json.loads(os.environ['CHECKS']):
    out[name] = fetch(target) if kind == 'fetch' else tunnel(target)
print(json.dumps(out), flush=True)
wait_for('/tmp/closed')
print(json.dumps({'after close': fetch('http://allowed.test:8080/')}), flush=True)
`

// startJob starts the job program in a container of image on net, with env,
// and follows its output.
func startJob(t *testing.T, dc *client.Client, image, netName string, env ...string) *job {
	t.Helper()
	id, addr := runnertest.Start(t, dc, runnertest.Container{
		Image: image, Cmd: []string{"python3", "-c", jobProgram}, Env: env, Network: netName, DropCaps: true,
	})
	j := &job{dc: dc, id: id, addr: addr, lines: make(chan string, 16), errs: &syncBuilder{}}
	logs, err := dc.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	stdout, w := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(w, j.errs, logs)
		w.CloseWithError(err)
	}()
	go func() {
		defer close(j.lines)
		scanner := bufio.NewScanner(stdout)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			j.lines <- scanner.Text()
		}
		io.Copy(io.Discard, stdout) // let StdCopy finish if the scanner gave up
	}()
	return j
}

// line returns the job's next line of output.
func (j *job) line(t *testing.T) map[string]any {
	t.Helper()
	select {
	case l, ok := <-j.lines:
		if !ok {
			t.Fatalf("the job ended early: %s", j.stderr())
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("job output %q: %v", l, err)
		}
		return m
	case <-time.After(5 * time.Minute):
		t.Fatalf("no output from the job in 5 minutes: %s", j.stderr())
	}
	return nil
}

// signal creates /tmp/name in the job's container.
func (j *job) signal(t *testing.T, name string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 0}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := j.dc.CopyToContainer(ctx, j.id, "/tmp", &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("signal %s: %v", name, err)
	}
}

// wait waits for the job to exit and its output to end.
func (j *job) wait(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait, errs := j.dc.ContainerWait(ctx, j.id, container.WaitConditionNotRunning)
	select {
	case res := <-wait:
		if res.StatusCode != 0 {
			t.Errorf("the job exited with %d: %s", res.StatusCode, j.stderr())
		}
	case err := <-errs:
		t.Fatal(err)
	}
	for range j.lines {
	}
}

// stderr is what the job wrote to its standard error so far.
func (j *job) stderr() string { return j.errs.String() }

// syncBuilder is a strings.Builder safe for concurrent use.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tlsServerProgram serves /usr/share over HTTP on 8080 and HTTPS on 8443,
// with the certificate and key in $CERT_PEM and $KEY_PEM.
const tlsServerProgram = `import functools, http.server, os, ssl, tempfile, threading
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='/usr/share')
d = tempfile.mkdtemp()
for name in ('CERT_PEM', 'KEY_PEM'):
    with open(os.path.join(d, name), 'w') as f:
        f.write(os.environ[name])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(d, 'CERT_PEM'), os.path.join(d, 'KEY_PEM'))
tls = http.server.ThreadingHTTPServer(('', 8443), handler)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(('', 8080), handler).serve_forever()
`

// tlsServer starts the destination on net and returns its address once
// both its ports accept connections.
func tlsServer(t *testing.T, dc *client.Client, image, netName string, certPEM, keyPEM []byte) netip.Addr {
	t.Helper()
	_, addr := runnertest.Start(t, dc, runnertest.Container{
		Image: image, Cmd: []string{"python3", "-c", tlsServerProgram}, Network: netName,
		Env: []string{"CERT_PEM=" + string(certPEM), "KEY_PEM=" + string(keyPEM)},
	})
	runnertest.WaitListening(t, addr, 8080, 8443)
	return addr
}

// status is a check's status as text: "200", "403", or the exception's
// name.
func status(v any) string {
	if r, ok := v.([]any); ok && len(r) > 0 {
		return toString(r[0])
	}
	return toString(v)
}

// body is a check's response body.
func body(v any) string {
	if r, ok := v.([]any); ok && len(r) > 1 {
		return toString(r[1])
	}
	return ""
}
