package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/runner/runnertest"
)

// outsideServer is the "internet" of the egress tests: a container on a
// network of its own that answers HTTP on 8080 and HTTPS (a self-signed
// certificate, from $CERT_PEM and $KEY_PEM) on 8443 with "outside" and
// 4 KiB.
const outsideServer = `import http.server, os, ssl, tempfile, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'outside ' + self.path.encode() + b'\n' + b'x' * 4096
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def serve(port, tls):
    s = http.server.ThreadingHTTPServer(('0.0.0.0', port), H)
    if tls:
        d = tempfile.mkdtemp()
        for name in ('CERT_PEM', 'KEY_PEM'):
            with open(os.path.join(d, name), 'w') as f:
                f.write(os.environ[name])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, 'CERT_PEM'), os.path.join(d, 'KEY_PEM'))
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    s.serve_forever()
threading.Thread(target=serve, args=(8443, True), daemon=True).start()
serve(8080, False)`

// egressProbe is the job that tries every way out and prints what each
// got as JSON: through the proxy (a status code, or the exception), and
// around it (a name resolved, a connection opened, or the exception).
const egressProbe = `import json, os, socket, ssl, urllib.request, urllib.error
inp = json.load(open('/input/data.json'))
def fetch(url, proxy=None):
    handlers = []
    if proxy:
        handlers.append(urllib.request.ProxyHandler({'http': proxy, 'https': proxy}))
    handlers.append(urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=20) as r:
            return [r.status, len(r.read())]
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode('utf-8', 'replace')[:300]]
    except Exception as e:
        return [type(e).__name__, str(e)[:300]]
def resolve(name):
    try:
        return socket.gethostbyname(name)
    except Exception as e:
        return type(e).__name__
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return 'open'
    except Exception as e:
        return type(e).__name__
def dns_query(server):
    # A query for proxy.golang.org straight to a resolver, past Docker's.
    q = b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05proxy\x06golang\x03org\x00\x00\x01\x00\x01'
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (server, 53))
        return 'answered %d bytes' % len(s.recvfrom(512)[0])
    except Exception as e:
        return type(e).__name__
out = {}
for name, check in inp['checks'].items():
    kind, args = check[0], check[1:]
    out[name] = {'fetch': fetch, 'resolve': resolve, 'connect': connect, 'dns': dns_query}[kind](*args)
try:
    import requests
    r = requests.get('http://outside:8080/requests', timeout=20)
    out['requests'] = [r.status_code, len(r.content)]
except ImportError:
    out['requests'] = 'not installed'
except Exception as e:
    out['requests'] = [type(e).__name__, str(e)[:300]]
out['proxy'] = os.environ.get('HTTPS_PROXY', '')
print(json.dumps(out))`

// TestEgressAllowlist: a job type with network {allow: [...]} reaches the
// hosts it names through tako's proxy and nothing else: not other names,
// ports or private addresses through the proxy, and no DNS, host, database,
// metadata or neighbouring job around it. Its credentials are its own, and
// what it tried is in its record and the metrics.
func TestEgressAllowlist(t *testing.T) {
	dc := runnertest.Docker(t)
	image := runnertest.ExecutorImage(t, dc)
	outsideIP, subnet, published := startOutside(t, dc, image)
	hostSvc := listenEverywhere(t)
	docker0 := bridgeGateway(t, dc)
	// The ports the job must not reach are open to the host on docker0's
	// address: a refusal below is the network's doing.
	for _, port := range []int{hostSvc, published} {
		runnertest.WaitListening(t, netip.MustParseAddr(docker0), port)
	}

	s := startOwnServer(t,
		"TAKO_EGRESS_ALLOW_PRIVATE_NETWORKS="+subnet,
		"TAKO_EGRESS_HOSTS_outside="+outsideIP,
		"TAKO_EGRESS_HOSTS_privatehost=10.255.255.1",
		"TAKO_JOB_TYPES_WEB_NETWORK_ALLOW=outside:8080,outside:8443,privatehost:8080",
		"TAKO_JOB_TYPES_WEB_LIMITS_TIMEOUT=120s",
		"TAKO_JOB_TYPES_WEB_POOL_MIN=1", "TAKO_JOB_TYPES_WEB_POOL_MAX=2",
		"TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_JOB_TYPES_DATA_POOL_MIN=0",
	)
	if ok, _ := lookupHost("proxy.golang.org"); !ok {
		t.Log("note: this host cannot resolve proxy.golang.org either; the DNS checks below still require that the job cannot")
	}

	var gateway string
	t.Run("an allowlisted job reaches its hosts through the proxy and nothing else", func(t *testing.T) {
		checks := map[string][]any{
			"http allowed":               {"fetch", "http://outside:8080/a"},
			"https allowed":              {"fetch", "https://outside:8443/b"},
			"name not listed":            {"fetch", "http://elsewhere:8080/"},
			"listed name, private ip":    {"fetch", "http://privatehost:8080/"},
			"listed name, other port":    {"fetch", "http://outside:9999/"},
			"https other port":           {"fetch", "https://outside:9443/"},
			"resolve external name":      {"resolve", "proxy.golang.org"},
			"resolve outside":            {"resolve", "outside"},
			"dns to the host's resolver": {"dns", hostResolver(t)},
			"dns to a public resolver":   {"dns", "8.8.8.8"},
			"outside directly":           {"connect", outsideIP, 8080},
			"host service via docker0":   {"connect", docker0, hostSvc},
			"database via docker0":       {"connect", docker0, 5432},
			"metadata":                   {"connect", "169.254.169.254", 80},
			"published port via docker0": {"connect", docker0, published},
		}
		res := runEgressJob(t, s, "web", checks, "")
		out := res.out
		if !statusIs(out["http allowed"], 200) || !statusIs(out["https allowed"], 200) {
			t.Errorf("allowed hosts: http %v, https %v", out["http allowed"], out["https allowed"])
		}
		if r := fmt.Sprint(out["requests"]); r != "not installed" && !statusIs(out["requests"], 200) {
			t.Errorf("requests through the proxy: %v", out["requests"])
		}
		for _, name := range []string{"name not listed", "listed name, private ip", "listed name, other port"} {
			if !statusIs(out[name], 403) || !strings.Contains(fmt.Sprint(out[name]), "tako") {
				t.Errorf("%s: %v, want 403 with tako's reason", name, out[name])
			}
		}
		if r := fmt.Sprint(out["https other port"]); !strings.Contains(r, "403") {
			t.Errorf("https to a port outside the list: %v, want a refused tunnel (403)", r)
		}
		for _, name := range []string{"resolve external name", "resolve outside"} {
			if net.ParseIP(fmt.Sprint(out[name])) != nil {
				t.Errorf("%s: resolved to %v; the job's network must resolve nothing", name, out[name])
			}
		}
		for _, name := range []string{"dns to the host's resolver", "dns to a public resolver"} {
			if strings.HasPrefix(fmt.Sprint(out[name]), "answered") {
				t.Errorf("%s: %v", name, out[name])
			}
		}
		for _, name := range []string{"outside directly", "host service via docker0", "database via docker0", "metadata", "published port via docker0"} {
			if out[name] == "open" {
				t.Errorf("%s: a connection opened", name)
			}
		}
		gateway = proxyHost(t, fmt.Sprint(out["proxy"]))

		// The record lists every attempt with its result and bytes.
		rec := getExecution(t, s, res.id)
		attempts := egressAttempts(t, rec)
		allowed, refused := 0, 0
		for _, a := range attempts {
			switch a["result"] {
			case "allowed":
				allowed++
				if n, _ := a["bytes_received"].(float64); n < 4096 {
					t.Errorf("allowed attempt %v: bytes_received %v, want the 4 KiB answer counted", a["host"], a["bytes_received"])
				}
			case "refused":
				refused++
				if a["reason"] == "" {
					t.Errorf("refused attempt %v has no reason", a)
				}
			}
		}
		if allowed < 2 || refused < 4 {
			t.Errorf("record's egress: %d allowed, %d refused, want at least 2 and 4:\n%v", allowed, refused, attempts)
		}
	})

	t.Run("the host's ports on the proxy's address are closed", func(t *testing.T) {
		if gateway == "" {
			t.Skip("the first check found no proxy address")
		}
		res := runEgressJob(t, s, "web", map[string][]any{
			"host service":   {"connect", gateway, hostSvc},
			"database":       {"connect", gateway, 5432},
			"published port": {"connect", gateway, published},
		}, "")
		for name, got := range res.out {
			if got == "open" {
				t.Errorf("%s on the proxy's address %s: a connection opened", name, gateway)
			}
		}
	})

	t.Run("credentials and neighbours", func(t *testing.T) {
		// A listens, prints its address and proxy URL, and waits.
		code := `import json, os, socket, time
l = socket.socket()
l.bind(('0.0.0.0', 7000))
l.listen()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('` + gateway + `', 1))
print(json.dumps({'ip': s.getsockname()[0], 'proxy': os.environ['HTTPS_PROXY']}), flush=True)
l.settimeout(100)
try:
    l.accept()
    print('accepted')
except socket.timeout:
    pass`
		status, body := s.post(t, "/execute/async", mustJSONString(map[string]any{"code": code, "job_type": "web"}))
		if status != 200 && status != 202 {
			t.Fatalf("submit A: %d %v", status, body)
		}
		idA := fmt.Sprint(body["job_id"])
		var a struct{ IP, Proxy string }
		deadline := time.Now().Add(3 * time.Minute)
		for a.Proxy == "" && time.Now().Before(deadline) {
			_, job := s.get(t, "/jobs/"+idA)
			if m, ok := job.(map[string]any); ok {
				if line, _, ok := strings.Cut(fmt.Sprint(m["stdout"]), "\n"); ok {
					json.Unmarshal([]byte(line), &a)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		if a.Proxy == "" {
			t.Fatal("job A printed no address within 3 minutes")
		}

		// B may reach only outside:8443; A's credentials open A's hosts
		// to nobody else.
		b := runEgressJob(t, s, "web", map[string][]any{
			"own https":      {"fetch", "https://outside:8443/b"},
			"own http":       {"fetch", "http://outside:8080/b"},
			"with A's proxy": {"fetch", "http://outside:8080/stolen", a.Proxy},
			"A's listener":   {"connect", a.IP, 7000},
		}, `["outside:8443"]`)
		if !statusIs(b.out["own https"], 200) {
			t.Errorf("a narrowed job lost what it kept: %v", b.out["own https"])
		}
		if !statusIs(b.out["own http"], 403) {
			t.Errorf("a narrowed job reached what it dropped: %v", b.out["own http"])
		}
		if statusIs(b.out["with A's proxy"], 200) {
			t.Errorf("A's credentials worked for B: %v", b.out["with A's proxy"])
		}
		if b.out["A's listener"] == "open" {
			t.Error("B connected to A's container on the same network")
		}

		// Once A has ended, its credentials open nothing, from anywhere.
		if st, body := s.post(t, "/jobs/"+idA+"/cancel", ""); st != 200 {
			t.Fatalf("cancel A: %d %v", st, body)
		}
		waitTerminalStatus(t, s, idA)
		c := runEgressJob(t, s, "web", map[string][]any{
			"with ended A's proxy": {"fetch", "http://outside:8080/late", a.Proxy},
		}, "")
		if statusIs(c.out["with ended A's proxy"], 200) {
			t.Errorf("an ended job's credentials still work: %v", c.out["with ended A's proxy"])
		}
	})

	t.Run("a request narrows the allowlist and may not widen it", func(t *testing.T) {
		status, body := s.post(t, "/execute", mustJSONString(map[string]any{
			"code": "print(1)", "job_type": "web", "network": map[string]any{"allow": []string{"outside:8080", "elsewhere:443"}},
		}))
		if status != 422 || !strings.Contains(fmt.Sprint(body), "network.allow[1]") {
			t.Errorf("widening: %d %v, want 422 naming network.allow[1]", status, body)
		}
		status, body = s.post(t, "/execute", mustJSONString(map[string]any{
			"code": "print(1)", "network": map[string]any{"allow": []string{"outside:8080"}},
		}))
		if status != 422 || !strings.Contains(fmt.Sprint(body), "network.allow") {
			t.Errorf("an allowlist on a job type with network none: %d %v, want 422", status, body)
		}
	})

	t.Run("a program that fails for a refused connection is a network_error", func(t *testing.T) {
		status, body := s.post(t, "/execute", mustJSONString(map[string]any{
			"code": "import urllib.request\nurllib.request.urlopen('http://elsewhere:8080/', timeout=20)", "job_type": "web",
		}))
		if status != 200 || body["status"] != "failed" {
			t.Fatalf("%d %v", status, body)
		}
		e, _ := body["error"].(map[string]any)
		if e["type"] != "network_error" || !strings.Contains(fmt.Sprint(e["message"]), "elsewhere") {
			t.Errorf("error %v, want network_error naming the refused host", e)
		}
	})

	t.Run("metrics count allowed and refused connections", func(t *testing.T) {
		_, raw, err := getRaw(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v := string(raw)
		if !metricAtLeast(v, `tako_egress_connections_total{job_type="web",result="allowed"}`, 3) ||
			!metricAtLeast(v, `tako_egress_connections_total{job_type="web",result="refused"}`, 5) ||
			!metricAtLeast(v, `tako_egress_bytes_total{direction="received",job_type="web"}`, 3*4096) {
			t.Errorf("egress metrics:\n%s", grepLines(v, "tako_egress"))
		}
	})
}

// egressRun is one finished probe job.
type egressRun struct {
	id  string
	out map[string]any
}

// runEgressJob runs egressProbe with checks as a sync job of jobType,
// narrowed by allow (a JSON list) unless it is "".
func runEgressJob(t *testing.T, s *testServer, jobType string, checks map[string][]any, allow string) egressRun {
	t.Helper()
	req := map[string]any{"code": egressProbe, "job_type": jobType, "input_data": map[string]any{"checks": checks}}
	if allow != "" {
		req["network"] = map[string]any{"allow": json.RawMessage(allow)}
	}
	status, body := s.post(t, "/execute", mustJSONString(req))
	if status != 200 || body["status"] != "succeeded" {
		t.Fatalf("probe job: %d %v", status, body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(fmt.Sprint(body["stdout"]))), &out); err != nil {
		t.Fatalf("probe output %q: %v", body["stdout"], err)
	}
	t.Logf("probe %s: %v", body["job_id"], out)
	return egressRun{id: fmt.Sprint(body["job_id"]), out: out}
}

// statusIs reports whether a fetch result ([status, ...]) has status code.
func statusIs(v any, code int) bool {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return false
	}
	f, ok := l[0].(float64)
	return ok && int(f) == code
}

// getExecution returns the record of execution id.
func getExecution(t *testing.T, s *testServer, id string) map[string]any {
	t.Helper()
	status, v := s.get(t, "/executions/"+id)
	rec, ok := v.(map[string]any)
	if status != 200 || !ok {
		t.Fatalf("GET /executions/%s: %d %v", id, status, v)
	}
	return rec
}

// egressAttempts returns the egress list of a record.
func egressAttempts(t *testing.T, rec map[string]any) []map[string]any {
	t.Helper()
	raw, ok := rec["egress"].([]any)
	if !ok {
		t.Fatalf("record has no egress list: %v", rec["egress"])
	}
	out := make([]map[string]any, 0, len(raw))
	for _, a := range raw {
		m, _ := a.(map[string]any)
		out = append(out, m)
	}
	return out
}

// waitTerminalStatus waits until job id has ended.
func waitTerminalStatus(t *testing.T, s *testServer, id string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		_, v := s.get(t, "/jobs/"+id)
		if m, ok := v.(map[string]any); ok {
			switch m["status"] {
			case "succeeded", "failed", "cancelled", "timeout", "oom":
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s did not end within 3 minutes", id)
}

// proxyHost is the host of a proxy URL.
func proxyHost(t *testing.T, proxy string) string {
	t.Helper()
	_, rest, ok := strings.Cut(proxy, "@")
	host, _, err := net.SplitHostPort(rest)
	if !ok || err != nil {
		t.Fatalf("HTTPS_PROXY %q is not a proxy URL with credentials", proxy)
	}
	return host
}

// mustJSONString encodes v.
func mustJSONString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// lookupHost reports whether this host resolves name.
func lookupHost(name string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	return len(addrs) > 0, err
}

// hostResolver is the first nameserver of this host's resolv.conf.
func hostResolver(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" && net.ParseIP(f[1]).To4() != nil {
			return f[1]
		}
	}
	return "127.0.0.53"
}

// listenEverywhere starts a TCP service on all of this host's addresses,
// as a host service would be, and returns its port.
func listenEverywhere(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// bridgeGateway is the host's address on Docker's default bridge.
func bridgeGateway(t *testing.T, dc *client.Client) string {
	t.Helper()
	info, err := dc.NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range info.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip.To4() != nil {
			return c.Gateway
		}
	}
	// The engine may leave the default bridge's gateway unsaid: it is the
	// bridge interface's own address.
	name := info.Options["com.docker.network.bridge.name"]
	if name == "" {
		name = "docker0"
	}
	iface, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatalf("the default bridge: %v", err)
	}
	addrs, _ := iface.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatalf("the default bridge %s has no IPv4 address", name)
	return ""
}

// startOutside starts the outside server on a network of its own and
// returns its address, the network's subnet, and the host port its HTTP
// port is published at on all of the host's addresses.
func startOutside(t *testing.T, dc *client.Client, image string) (ip, subnet string, published int) {
	t.Helper()
	name, prefix := runnertest.Network(t, dc, "tako-egress-outside")
	cert, key := runnertest.SelfSigned(t, "outside")
	id, addr := runnertest.Start(t, dc, runnertest.Container{
		Image: image, Cmd: []string{"python3", "-c", outsideServer}, Network: name,
		Env:     []string{"CERT_PEM=" + string(cert), "KEY_PEM=" + string(key)},
		Publish: []int{8080},
	})
	runnertest.WaitListening(t, addr, 8080, 8443)
	return addr.String(), prefix.String(), runnertest.PublishedPort(t, dc, id, 8080)
}
