package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/tako-run/tako/internal/dockerlabel"
	"github.com/tako-run/tako/internal/testsync"
	"github.com/tako-run/tako/runner/runnertest"
)

// composeFile is deploy/compose.yaml, from this package's directory.
const composeFile = "../../deploy/compose.yaml"

// TestCompose: deploy/compose.yaml runs as is under docker-compose with
// the images `tako image --stack` builds. The quick start works through
// the load balancer with the API key, Prometheus finds every node, a
// rolling restart of the api replicas loses no request, and `down -v`
// leaves no container, network, volume or job container behind.
func TestCompose(t *testing.T) {
	compose := requireTool(t, "docker-compose")
	dc := runnertest.Docker(t)
	runnertest.ExecutorImage(t, dc)
	st := newStack(t, dc, "takocompose")
	p := &composeProject{bin: compose, name: st.name, env: st.env}
	t.Cleanup(func() { st.teardown(t, p.down) })

	began := time.Now()
	if out, err := p.run("up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	c := st.client()
	defer c.close()
	c.waitHealthy(t, 5*time.Minute, p.logs)
	t.Logf("compose up to healthy through the load balancer: %s", time.Since(began).Round(100*time.Millisecond))
	quickStart(t, c)

	t.Run("prometheus finds the api replicas and the worker", func(t *testing.T) {
		if out, err := p.run("up", "-d", "--scale", "prometheus=1", "prometheus"); err != nil {
			t.Fatalf("docker-compose up prometheus: %v\n%s", err, out)
		}
		waitPrometheus(t, st.promURL, 3, p.logs)
	})

	t.Run("a rolling restart of the api replicas loses no request", func(t *testing.T) {
		ids := st.containers(t, map[string]string{"com.docker.compose.project": p.name, "com.docker.compose.service": "api"})
		if len(ids) != 2 {
			t.Fatalf("%d api containers, want the 2 replicas", len(ids))
		}
		load := startLoad(c)
		for _, id := range ids {
			stop := 40
			restarted := time.Now()
			if err := dc.ContainerRestart(context.Background(), id, container.StopOptions{Timeout: &stop}); err != nil {
				t.Fatalf("restart %.12s: %v", id, err)
			}
			waitServing(t, dc, id, restarted, p.logs)
			t.Logf("api replica %.12s restarted and serving in %s", id, time.Since(restarted).Round(100*time.Millisecond))
		}
		load.stopAndCheck(t, 10)
	})

	began = time.Now()
	if out, err := p.down(); err != nil {
		t.Fatalf("docker-compose down: %v\n%s", err, out)
	}
	t.Logf("compose down: %s", time.Since(began).Round(100*time.Millisecond))
	st.assertGone(t, "com.docker.compose.project="+p.name)
}

// composeProject runs docker-compose on deploy/compose.yaml as one project.
type composeProject struct {
	bin  string   // docker-compose
	name string   // the project's name
	env  []string // the command's environment, with the file's settings
}

// run runs docker-compose with args and returns what it printed.
func (p *composeProject) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"-p", p.name, "-f", composeFile, "--no-ansi"}, args...)...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// down stops the project and removes its containers, networks and
// volumes.
func (p *composeProject) down() (string, error) {
	return p.run("down", "-v", "--remove-orphans", "--timeout", "60")
}

// logs returns the last lines of every service's logs, for a failure.
func (p *composeProject) logs() string {
	out, err := p.run("logs", "--tail", "40")
	if err != nil {
		return fmt.Sprintf("docker-compose logs: %v\n%s", err, out)
	}
	return out
}

// requireTool returns the path of the command name. When it is missing,
// the test fails in CI and is skipped elsewhere.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s required in CI: %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
	return path
}

// stack is one deployment of deploy/compose.yaml by a test: its images,
// tagged for the test alone, its settings and its own work directory.
type stack struct {
	dc      *client.Client
	name    string   // the compose project's or swarm stack's name
	tag     string   // the images' tag, TAKO_VERSION
	key     string   // the API key, TAKO_API_KEY
	workDir string   // TAKO_WORK_DIR, on the host and in the workers
	url     string   // the load balancer
	promURL string   // Prometheus
	env     []string // the environment of docker-compose or docker stack
}

// newStack builds the stack's images through `tako image --stack` with a
// tag of the test's own, and picks a name starting with prefix, an API
// key, free ports and a work directory. The images' tags go when the test
// ends; the images stay cached under their content-addressed tags.
func newStack(t *testing.T, dc *client.Client, prefix string) *stack {
	t.Helper()
	suffix := strings.ToLower(rand.Text()[:10])
	st := &stack{
		dc:      dc,
		name:    prefix + suffix,
		tag:     "test-" + suffix,
		key:     "key-" + rand.Text(),
		workDir: "/var/lib/tako-" + prefix + "-" + suffix,
	}

	bin := filepath.Join(t.TempDir(), "tako-static")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tags := []string{"tako-server:" + st.tag}
	for _, repo := range []string{stackPostgresRepo, stackLBRepo, stackPrometheusRepo} {
		tags = append(tags, repo+":"+st.tag)
	}
	t.Cleanup(func() {
		for _, tag := range tags {
			dc.ImageRemove(context.Background(), tag, image.RemoveOptions{})
		}
	})
	began := time.Now()
	unlock := testsync.LockImagesUntil(t)
	var out bytes.Buffer
	err := run(context.Background(), []string{"tako", "image", "--binary", bin, "--tag", tags[0], "--stack"}, os.Environ(), &out, &out)
	unlock()
	if err != nil {
		t.Fatalf("tako image --stack: %v\n%s", err, out.String())
	}
	for _, tag := range tags {
		if !strings.Contains(out.String(), "built "+tag+" (") {
			t.Errorf("tako image --stack did not report %s:\n%s", tag, out.String())
		}
	}
	t.Logf("tako image --stack: %s", time.Since(began).Round(100*time.Millisecond))

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	promPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	st.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	st.promURL = fmt.Sprintf("http://127.0.0.1:%d", promPort)
	if err := os.MkdirAll(st.workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	st.env = append(os.Environ(),
		"TAKO_VERSION="+st.tag,
		"TAKO_API_KEY="+st.key,
		"POSTGRES_PASSWORD="+strings.ToLower(rand.Text()),
		fmt.Sprintf("TAKO_PORT=%d", port),
		fmt.Sprintf("TAKO_PROMETHEUS_PORT=%d", promPort),
		"TAKO_WORK_DIR="+st.workDir,
	)
	return st
}

// teardown runs down (docker-compose down or docker stack rm) unless the
// test did, then removes by force whatever the stack left: containers,
// networks and volumes labelled with its name and the job containers of
// its workers, and its work directory.
func (st *stack) teardown(t *testing.T, down func() (string, error)) {
	if len(st.leftovers(t)) > 0 {
		if out, err := down(); err != nil {
			t.Errorf("teardown: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, l := range st.leftovers(t) {
		kind, id, _ := strings.Cut(l, " ")
		switch kind {
		case "container":
			st.dc.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		case "network":
			st.dc.NetworkRemove(ctx, id)
		case "volume":
			st.dc.VolumeRemove(ctx, id, true)
		}
	}
	os.RemoveAll(st.workDir)
}

// stackLabels are the labels docker-compose and docker stack put on what
// they create for the stack.
func (st *stack) stackLabels() []string {
	return []string{"com.docker.compose.project=" + st.name, "com.docker.stack.namespace=" + st.name}
}

// leftovers lists what of the stack exists: its containers, networks and
// volumes, and its workers' job containers and networks (tako.managed,
// with a lock file in the stack's work directory), as "kind id" lines.
func (st *stack) leftovers(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for _, label := range st.stackLabels() {
		f := filters.NewArgs(filters.Arg("label", label))
		cs, err := st.dc.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Errorf("list containers: %v", err)
		}
		for _, c := range cs {
			out = append(out, "container "+c.ID)
		}
		ns, err := st.dc.NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			t.Errorf("list networks: %v", err)
		}
		for _, n := range ns {
			out = append(out, "network "+n.ID)
		}
		vs, err := st.dc.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			t.Errorf("list volumes: %v", err)
		}
		for _, v := range vs.Volumes {
			out = append(out, "volume "+v.Name)
		}
	}
	jobs, err := st.dc.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", dockerlabel.Managed+"=true")),
	})
	if err != nil {
		t.Errorf("list job containers: %v", err)
	}
	for _, c := range jobs {
		if strings.HasPrefix(c.Labels[dockerlabel.Lock], st.workDir+"/") {
			out = append(out, "container "+c.ID)
		}
	}
	nets, err := st.dc.NetworkList(ctx, network.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", dockerlabel.Managed+"=true")),
	})
	if err != nil {
		t.Errorf("list tako networks: %v", err)
	}
	for _, n := range nets {
		if strings.HasPrefix(n.Labels[dockerlabel.Lock], st.workDir+"/") {
			out = append(out, "network "+n.ID)
		}
	}
	return out
}

// assertGone fails the test when anything of the stack is left.
func (st *stack) assertGone(t *testing.T, what string) {
	t.Helper()
	if left := st.leftovers(t); len(left) > 0 {
		t.Errorf("after removing %s, left behind:\n%s", what, strings.Join(left, "\n"))
	}
}

// containers returns the IDs of the running containers that carry every
// label in labels.
func (st *stack) containers(t *testing.T, labels map[string]string) []string {
	t.Helper()
	f := filters.NewArgs()
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	cs, err := st.dc.ContainerList(context.Background(), container.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// client returns a client of the stack's load balancer with its API key.
func (st *stack) client() *stackClient {
	return &stackClient{url: st.url, key: st.key, http: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{}}}
}

// stackClient talks to a stack through its load balancer.
type stackClient struct {
	url  string
	key  string
	http *http.Client
}

// close closes the client's idle connections.
func (c *stackClient) close() { c.http.CloseIdleConnections() }

// stackReply is one answer of the API.
type stackReply struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map, or nil.
func (r stackReply) json() map[string]any {
	var m map[string]any
	json.Unmarshal(r.body, &m)
	return m
}

// do sends a request with the API key; body "" sends none.
func (c *stackClient) do(method, path, body string) (stackReply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return stackReply{}, err
	}
	req.Header.Set("X-API-Key", c.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return stackReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return stackReply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// waitHealthy polls /health through the load balancer until it answers
// 200, then until a job runs, for at most d; logs explains a timeout.
func (c *stackClient) waitHealthy(t *testing.T, d time.Duration, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		r, err := c.do(http.MethodGet, "/health", "")
		if err == nil && r.status == http.StatusOK {
			// The API answers; a worker may still be starting.
			r, err = c.do(http.MethodPost, "/execute", `{"code": "print(1 + 1)"}`)
			if err == nil && r.status == http.StatusOK && r.json()["stdout"] == "2\n" {
				return
			}
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stack did not run a job through %s within %s; last answer: %s\n%s", c.url, d, last, logs())
		}
		time.Sleep(time.Second)
	}
}

// quickStartCode is the quick start's program, with an artifact.
const quickStartCode = `import json

with open("/input/data.json") as f:
    data = json.load(f)

result = {"sum": data["x"] + data["y"], "product": data["x"] * data["y"]}
with open("/output/result.json", "w") as f:
    json.dump(result, f)
with open("/output/report.txt", "w") as f:
    f.write("sum=%d\n" % result["sum"])

print("Done!")
`

// quickStart runs the quick start's requests through c: a synchronous
// run with input, output and an artifact; an asynchronous one waited for
// with a long-poll.
func quickStart(t *testing.T, c *stackClient) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"code": quickStartCode, "input_data": map[string]int{"x": 10, "y": 20}})
	r, err := c.do(http.MethodPost, "/execute", string(body))
	if err != nil {
		t.Fatalf("POST /execute: %v", err)
	}
	res := r.json()
	out, _ := json.Marshal(res["output"])
	if r.status != http.StatusOK || res["success"] != true || res["stdout"] != "Done!\n" || string(out) != `{"product":200,"sum":30}` {
		t.Fatalf("POST /execute: %d %s", r.status, r.body)
	}
	id, _ := res["execution_id"].(string)
	r, err = c.do(http.MethodGet, "/jobs/"+id+"/artifacts/report.txt", "")
	if err != nil || r.status != http.StatusOK || string(r.body) != "sum=30\n" {
		t.Errorf("GET /jobs/%s/artifacts/report.txt: %v %d %q", id, err, r.status, r.body)
	}
	// Without the key: refused.
	req, _ := http.NewRequest(http.MethodGet, c.url+"/jobs/"+id, nil)
	if resp, err := c.http.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /jobs/%s without a key: %v %v, want 401", id, err, resp)
	} else {
		resp.Body.Close()
	}

	r, err = c.do(http.MethodPost, "/execute/async", `{"code": "import time; time.sleep(1); print('done')"}`)
	if err != nil || r.status != http.StatusAccepted && r.status != http.StatusOK {
		t.Fatalf("POST /execute/async: %v %d %s", err, r.status, r.body)
	}
	id, _ = r.json()["job_id"].(string)
	r, err = c.do(http.MethodGet, "/jobs/"+id+"/result?wait=true&timeout=60", "")
	if err != nil || r.status != http.StatusOK || r.json()["stdout"] != "done\n" {
		t.Errorf("GET /jobs/%s/result?wait=true: %v %d %s", id, err, r.status, r.body)
	}
	// /metrics stays inside the stack.
	if r, err := c.do(http.MethodGet, "/metrics", ""); err != nil || r.status != http.StatusNotFound {
		t.Errorf("GET /metrics through the load balancer: %v %d, want 404", err, r.status)
	}
}

// load is a client loop sending jobs through a stack's load balancer
// while its replicas change.
type load struct {
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	ok      int
	retry   int      // 503 with Retry-After
	failed  []string // anything else
	clients []*stackClient
}

// startLoad starts two client loops on c's stack, each sending one job
// after the other until stopAndCheck.
func startLoad(c *stackClient) *load {
	l := &load{stop: make(chan struct{})}
	for i := range 2 {
		lc := &stackClient{url: c.url, key: c.key, http: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{}}}
		l.clients = append(l.clients, lc)
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				want := fmt.Sprintf("%d-%d\n", i, n)
				r, err := lc.do(http.MethodPost, "/execute", fmt.Sprintf(`{"code": "print('%d-%d')"}`, i, n))
				l.mu.Lock()
				switch {
				case err != nil:
					l.failed = append(l.failed, err.Error())
				case r.status == http.StatusOK && r.json()["stdout"] == want:
					l.ok++
				case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "":
					l.retry++
				default:
					l.failed = append(l.failed, fmt.Sprintf("%d %s", r.status, r.body))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stopAndCheck waits until at least min jobs have succeeded (for up to 3
// minutes: the machine may be loaded), stops the loops and fails the test
// when a request got anything but its job's output or a 503 with
// Retry-After, or when fewer than min succeeded.
func (l *load) stopAndCheck(t *testing.T, min int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		l.mu.Lock()
		ok := l.ok
		l.mu.Unlock()
		if ok >= min || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(l.stop)
	l.done.Wait()
	for _, c := range l.clients {
		c.close()
	}
	t.Logf("under load: %d jobs answered, %d told to retry (503), %d lost", l.ok, l.retry, len(l.failed))
	if len(l.failed) > 0 {
		t.Errorf("%d requests lost, e.g. %s", len(l.failed), l.failed[0])
	}
	if l.ok < min {
		t.Errorf("only %d jobs answered, want at least %d", l.ok, min)
	}
}

// waitServing waits until the tako container id has said, since since,
// that it serves HTTP.
func waitServing(t *testing.T, dc *client.Client, id string, since time.Time, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r, err := dc.ContainerLogs(context.Background(), id, container.LogsOptions{
			ShowStdout: true, Since: since.Add(-time.Second).Format(time.RFC3339Nano),
		})
		if err != nil {
			t.Fatalf("logs of %.12s: %v", id, err)
		}
		var b bytes.Buffer
		stdcopy.StdCopy(&b, &b, r)
		r.Close()
		if strings.Contains(b.String(), "serving on http://") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tako in %.12s does not serve within 3 minutes\n%s", id, logs())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitPrometheus waits until Prometheus at url has want targets of job
// tako up and has loaded tako's rules.
func waitPrometheus(t *testing.T, url string, want int, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	get := func(path string, v any) error {
		resp, err := hc.Get(url + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(v)
	}
	var last string
	for {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		var rules struct {
			Data struct {
				Groups []struct {
					Name string `json:"name"`
				} `json:"groups"`
			} `json:"data"`
		}
		up := 0
		err := get("/api/v1/targets", &targets)
		if err == nil {
			for _, tg := range targets.Data.ActiveTargets {
				if tg.Labels["job"] == "tako" && tg.Health == "up" {
					up++
				}
			}
			last = fmt.Sprintf("%+v", targets.Data.ActiveTargets)
			if err = get("/api/v1/rules", &rules); err == nil && up == want && len(rules.Data.Groups) > 0 && rules.Data.Groups[0].Name == "tako" {
				return
			}
		}
		if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not %d tako targets up and the rules within 3 minutes; last: %s\n%s", want, last, logs())
		}
		time.Sleep(time.Second)
	}
}

// TestStackTag: tako image --stack tags the stack's images with --tag's tag.
func TestStackTag(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		"tako-server:0.1.0-dev":              "0.1.0-dev",
		"tako-server":                        "latest",
		"registry.local:5000/tako-server":    "latest",
		"registry.local:5000/tako-server:v2": "v2",
	} {
		if got := stackTag(ref); got != want {
			t.Errorf("stackTag(%q) = %q, want %q", ref, got, want)
		}
	}
}
