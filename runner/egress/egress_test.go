package egress_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/runner/egress"
	"github.com/tako-run/tako/runner/runnertest"
)

// startGateway starts a Gateway with opts for an instance whose lock the
// test holds.
func startGateway(t *testing.T, dc *client.Client, opts egress.Options) *egress.Gateway {
	t.Helper()
	lock := filepath.Join(t.TempDir(), "instance.lock")
	f, err := os.Create(lock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts.Instance, opts.LockPath = strconv.FormatInt(time.Now().UnixNano(), 16), lock
	g, err := egress.Start(ctx, dc, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(g.Close)
	return g
}

// run runs a Python program in a container of image on net and returns its
// output.
func run(t *testing.T, dc *client.Client, image, net, code string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := dc.ContainerCreate(ctx, &container.Config{
		Image: image, Cmd: []string{"python3", "-c", code}, Env: env, User: "65534:65534",
		Labels: map[string]string{"tako.managed": "true", "tako.test": "egress"},
	}, &container.HostConfig{NetworkMode: container.NetworkMode(net), CapDrop: []string{"ALL"}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer dc.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	wait, errs := dc.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := dc.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	case err := <-errs:
		t.Fatal(err)
	}
	logs, err := dc.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out strings.Builder
	stdcopy.StdCopy(&out, &out, logs)
	return out.String()
}

// server starts a web server container of image on network net and returns
// its address there.
func server(t *testing.T, dc *client.Client, image, net string) string {
	t.Helper()
	_, addr := runnertest.Start(t, dc, runnertest.Container{
		Image: image, Cmd: []string{"python3", "-m", "http.server", "8080", "--directory", "/usr/share"}, Network: net,
	})
	return addr.String()
}

// probe is the client's program: each check prints its name and what
// happened. Proxy checks fetch through HTTP_PROXY (or the URL in argv);
// direct checks open a TCP connection.
const probe = `import json, os, socket, sys, urllib.request
def fetch(url, proxy):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({'http': proxy}))
    try:
        return opener.open(url, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return type(e).__name__
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return 'open'
    except Exception as e:
        return type(e).__name__
out = {}
for check in json.loads(sys.argv[1]):
    kind, name = check[0], check[1]
    out[name] = fetch(check[2], check[3]) if kind == 'fetch' else connect(check[2], check[3])
print(json.dumps(out, sort_keys=True))`

// TestGateway: through the proxy a client reaches exactly its grant; past
// the proxy it reaches nothing: not the destination directly, not the
// host's other ports, not another container on the same network.
func TestGateway(t *testing.T) {
	dc := runnertest.Docker(t)
	image := runnertest.ExecutorImage(t, dc)
	g := startGateway(t, dc, egress.Options{})

	dest := server(t, dc, image, "bridge")         // a private address, as a company mirror has
	neighbour := server(t, dc, image, g.Network()) // on the egress network itself
	ln, err := net.Listen("tcp", "0.0.0.0:0")      // a host service on every address
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hostPort := ln.Addr().(*net.TCPAddr).Port

	trusted, revokeTrusted := g.Grant(egress.Grant{Hosts: []egress.Host{{Name: dest, Ports: []int{8080}}}, Private: true})
	public, revokePublic := g.Grant(egress.Grant{Hosts: []egress.Host{{Name: dest, Ports: []int{8080}}}})
	defer revokePublic()
	withdrawn, revoke := g.Grant(egress.Grant{Hosts: []egress.Host{{Name: dest, Ports: []int{8080}}}, Private: true})
	revoke()
	wrong, _ := url.Parse(trusted)
	wrong.User = url.UserPassword(wrong.User.Username(), "not-the-secret")
	gateway := strings.Split(strings.Split(trusted, "@")[1], ":")[0]

	checks := [][]any{
		{"fetch", "granted", "http://" + dest + ":8080/", trusted},
		{"fetch", "other port", "http://" + dest + ":9999/", trusted},
		{"fetch", "other host", "http://example.com/", trusted},
		{"fetch", "wrong secret", "http://" + dest + ":8080/", wrong.String()},
		{"fetch", "withdrawn", "http://" + dest + ":8080/", withdrawn},
		{"fetch", "private address without trust", "http://" + dest + ":8080/", public},
		{"connect", "destination directly", dest, 8080},
		{"connect", "neighbour on the network", neighbour, 8080},
		{"connect", "host port through the gateway", gateway, hostPort},
		{"connect", "metadata address", "169.254.169.254", 80},
	}
	arg, _ := json.Marshal(checks)
	out := run(t, dc, image, g.Network(), "import sys; sys.argv = ['probe', "+quote(string(arg))+"]\n"+probe)
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	// A refusal by policy is a 403; missing or wrong credentials, a 407.
	want := map[string]string{"granted": "200", "other port": "403", "other host": "403", "wrong secret": "407",
		"withdrawn": "407", "private address without trust": "403"}
	for name, w := range want {
		if s := toString(got[name]); s != w {
			t.Errorf("%s: %s, want %s", name, s, w)
		}
	}
	for _, name := range []string{"destination directly", "neighbour on the network", "host port through the gateway", "metadata address"} {
		if got[name] == "open" {
			t.Errorf("%s: a connection opened", name)
		}
	}
	if ok, why := g.Guarded(); !ok {
		t.Errorf("the host firewall is not set up: %s", why)
	}
	revokeTrusted()
}

// quote renders s as a Python string literal.
func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func toString(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.Itoa(int(v))
	case string:
		return v
	}
	return ""
}
