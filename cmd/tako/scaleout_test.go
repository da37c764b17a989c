package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/tako-run/tako/internal/dockerlabel"
	"github.com/tako-run/tako/runner/runnertest"
)

// worker is a `tako server --role worker` process of a test.
type worker struct {
	t    *testing.T
	bin  string
	env  []string
	url  string
	logs *lockedWriter
	cmd  *exec.Cmd
	// exited receives the process's end.
	exited chan error
	node   string // its id, as executions' node names it
}

// startWorker starts a worker process of bin on database dbURL, on the
// Docker engine dockerHost names, with the extra environment env. It is
// stopped when the test ends.
func startWorker(t *testing.T, bin, dbURL, dockerHost string, env ...string) *worker {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{t: t, bin: bin, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	w.env = append(os.Environ(),
		"DOCKER_HOST="+dockerHost,
		"TAKO_SERVER_ROLE=worker",
		"TAKO_DATABASE_URL="+dbURL,
		"TAKO_RUNNER_WORK_DIR="+t.TempDir(),
		fmt.Sprintf("TAKO_SERVER_PORT=%d", port),
		"TAKO_LOG_LEVEL=warn",
	)
	w.env = append(w.env, env...)
	w.start()
	t.Cleanup(w.stop)
	return w
}

// start runs the process and waits until it answers /health, then learns
// its node id.
func (w *worker) start() {
	w.t.Helper()
	w.logs = &lockedWriter{w: &bytes.Buffer{}}
	w.cmd = exec.Command(w.bin, "server", "--config", "../../tako.yaml")
	w.cmd.Env = w.env
	w.cmd.Stderr = w.logs
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- w.cmd.Wait() }()
	w.exited = exited
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			w.t.Fatalf("worker exited: %v\n%s", err, w.logs.String())
		default:
		}
		resp, err := http.Get(w.url + "/health")
		if err != nil {
			continue
		}
		var h struct{ Node string }
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		w.node = h.Node
		return
	}
	w.t.Fatalf("worker did not answer within 5 minutes\n%s", w.logs.String())
}

// signal sends sig to the process.
func (w *worker) signal(sig syscall.Signal) {
	if err := syscall.Kill(w.cmd.Process.Pid, sig); err != nil {
		w.t.Errorf("signal %v: %v", sig, err)
	}
}

// stop ends the process with SIGTERM (SIGKILL after a minute) unless it
// has exited.
func (w *worker) stop() {
	select {
	case <-w.exited:
		return
	default:
	}
	syscall.Kill(w.cmd.Process.Pid, syscall.SIGCONT)
	syscall.Kill(w.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		syscall.Kill(w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.exited
	}
}

// kill ends the process with SIGKILL and waits for it.
func (w *worker) kill() {
	w.signal(syscall.SIGKILL)
	<-w.exited
}

// TestScaleOut runs the roles as a team would: an api node with no
// Docker, and one worker on this machine's engine and one on a second
// engine of the test's own, standing in for two hosts.
//
//   - Before any worker lives, the api node answers 503 naming the job
//     type, and its /health says why; a worker answers 404 on /execute.
//   - Sync and async jobs sent to the api node run on both workers;
//     cancel, long-poll and artifacts work from the api node.
//   - A worker killed with SIGKILL while it runs jobs: within 30 s every
//     one of its jobs is terminal or running on the other worker, and they
//     all succeed there. Its containers are gone once it comes back.
//   - A worker paused (SIGSTOP) past cluster.node_timeout has its job
//     taken; resumed (SIGCONT), it writes no result: the record is the
//     other worker's.
func TestScaleOut(t *testing.T) {
	dc := runnertest.Docker(t)
	shared := startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "tako")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// The second engine gets the images of the default job type; it has
	// no registry and no network to build them.
	_, info := shared.get(t, "/job-types/default")
	image, _ := info.(map[string]any)["image"].(string)
	engine := runnertest.SecondEngine(t, runnertest.ExecutorImage(t, dc), image)

	// An api node alone.
	api := startOwnServer(t, "TAKO_SERVER_ROLE=api", "TAKO_CLUSTER_NODE_TIMEOUT=6s", "TAKO_CLUSTER_HEARTBEAT_INTERVAL=1s")
	code, res := api.post(t, "/execute", `{"code": "print(1)"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(res), `no live worker runs job type "default"`) {
		t.Errorf("sync submit with no worker: %d %v, want 503 naming the job type", code, res)
	}
	code, res = api.post(t, "/execute/async", `{"code": "print(1)"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(res), `no live worker runs job type "default"`) {
		t.Errorf("async submit with no worker: %d %v, want 503 naming the job type", code, res)
	}
	_, health := api.get(t, "/health")
	if h := health.(map[string]any); h["role"] != "api" || !strings.Contains(fmt.Sprint(h["job_types"]), `no live worker runs job type "default"`) {
		t.Errorf("api /health with no worker: %v", h)
	}

	env := []string{"TAKO_WORKER_JOB_TYPES=default", "TAKO_CLUSTER_NODE_TIMEOUT=6s", "TAKO_CLUSTER_HEARTBEAT_INTERVAL=1s",
		"TAKO_RUNNER_REAP_INTERVAL=2s", "TAKO_RUNNER_MAX_CONCURRENT=4", "TAKO_JOB_TYPES_DEFAULT_POOL_MIN=1"}
	a := startWorker(t, bin, api.dbURL, os.Getenv("DOCKER_HOST"), env...)
	b := startWorker(t, bin, api.dbURL, engine.Host, env...)
	if resp, err := http.Post(a.url+"/execute", "application/json", strings.NewReader(`{"code": "print(1)"}`)); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("a worker's /execute: %d, want 404", resp.StatusCode)
		}
	}
	// A worker's /health answers for the job types it runs alone.
	wh := (&testServer{url: b.url}).getMap(t, "/health")
	if jt := wh["job_types"].(map[string]any); len(jt) != 1 || jt["default"] == nil || wh["role"] != "worker" {
		t.Errorf("worker /health: role %v, job types %v; want worker, default alone", wh["role"], jt)
	}
	waitFor(t, time.Minute, "the api node to see a live worker of default", func() bool {
		_, h := api.get(t, "/health")
		jt, _ := h.(map[string]any)["job_types"].(map[string]any)["default"].(map[string]any)
		return jt["available"] == true
	})

	// Sync through the api node, run by a worker.
	code, res = api.post(t, "/execute", `{"code": "print('via a worker')"}`)
	if code != http.StatusOK || res["success"] != true || !strings.Contains(fmt.Sprint(res["stdout"]), "via a worker") {
		t.Fatalf("sync through the api node: %d %v", code, res)
	}
	// Async jobs spread over both workers.
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, api.submit(t, `{"code": "import time, os; time.sleep(1); open('/output/n.txt', 'w').write('artifact')"}`))
	}
	nodes := map[string]bool{}
	for _, id := range ids {
		code, res := api.get(t, "/jobs/"+id+"/result?wait=true&timeout=120")
		if r := res.(map[string]any); code != http.StatusOK || r["status"] != "succeeded" {
			t.Fatalf("job %s: %d %v", id, code, res)
		}
		_, rec := api.get(t, "/executions/"+id)
		nodes[rec.(map[string]any)["node"].(string)] = true
	}
	if !nodes[a.node] || !nodes[b.node] || len(nodes) != 2 {
		t.Errorf("12 jobs ran on %v, want both workers %s and %s", nodes, a.node, b.node)
	}
	if resp, err := http.Get(api.url + "/jobs/" + ids[0] + "/artifacts/n.txt"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("artifact from the api node: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	sleeper := api.submit(t, `{"code": "import time; time.sleep(25)", "timeout": 30}`)
	api.waitStatus(t, sleeper, "running", time.Minute)
	if code, res := api.post(t, "/jobs/"+sleeper+"/cancel", ""); code != http.StatusOK || res["status"] != "cancelled" {
		t.Errorf("cancel from the api node: %d %v", code, res)
	}

	// SIGKILL a worker running jobs: the one that runs the most of them.
	ids = ids[:0]
	for i := 0; i < 8; i++ {
		ids = append(ids, api.submit(t, `{"code": "import time; time.sleep(8); print('done')", "timeout": 30}`))
	}
	running := map[string][]string{} // node -> its jobs
	for _, id := range ids {
		api.waitStatus(t, id, "running", 2*time.Minute)
		node := nodeOf(t, api, id)
		running[node] = append(running[node], id)
	}
	victim, victimEngine := b, engine.Client
	if len(running[a.node]) > len(running[b.node]) {
		victim, victimEngine = a, dc
	}
	killedAt := time.Now()
	victim.kill()
	for _, id := range running[victim.node] {
		waitFor(t, time.Minute, "job "+id+" to move from the killed worker", func() bool {
			_, rec := api.get(t, "/executions/"+id)
			r := rec.(map[string]any)
			return r["node"] != victim.node && r["status"] == "running" || r["status"] == "succeeded" || r["status"] == "failed"
		})
	}
	if moved := time.Since(killedAt); moved > 30*time.Second {
		t.Errorf("the killed worker's jobs were terminal or running elsewhere %s after the kill, want within 30 s", moved.Round(time.Second))
	}
	t.Logf("the killed worker's %d jobs were terminal or running elsewhere %s after the kill", len(running[victim.node]), time.Since(killedAt).Round(100*time.Millisecond))
	for _, id := range ids {
		code, res := api.get(t, "/jobs/"+id+"/result?wait=true&timeout=120")
		if r := res.(map[string]any); code != http.StatusOK || r["status"] != "succeeded" {
			t.Errorf("job %s after its worker was killed: %d %v", id, code, res)
		}
	}
	// Back up, the killed worker removes what its earlier self left.
	killed := victim.node
	victim.start()
	waitFor(t, time.Minute, "the killed worker's containers to go", func() bool {
		return len(instanceContainers(t, victimEngine, killed)) == 0
	})

	// SIGSTOP the worker that runs a job, past the node timeout.
	id := api.submit(t, `{"code": "import time; time.sleep(12); print('done')", "timeout": 30}`)
	api.waitStatus(t, id, "running", time.Minute)
	paused := a
	if nodeOf(t, api, id) == b.node {
		paused = b
	}
	paused.signal(syscall.SIGSTOP)
	waitFor(t, time.Minute, "the paused worker's job to be taken", func() bool {
		_, rec := api.get(t, "/executions/"+id)
		r := rec.(map[string]any)
		return r["node"] != paused.node && r["node"] != ""
	})
	paused.signal(syscall.SIGCONT)
	code, final := api.get(t, "/jobs/"+id+"/result?wait=true&timeout=120")
	if r := final.(map[string]any); code != http.StatusOK || r["status"] != "succeeded" {
		t.Errorf("the paused worker's job: %d %v", code, final)
	}
	_, after := api.get(t, "/executions/"+id)
	if r := after.(map[string]any); r["node"] == paused.node || r["attempt"] != 2.0 {
		t.Errorf("the paused worker's job was recorded by node %v, attempt %v; want the other worker's, attempt 2", r["node"], r["attempt"])
	}
	waitFor(t, time.Minute, "the resumed worker to drop its attempt", func() bool {
		return strings.Contains(paused.logs.String(), "dropping this attempt's result")
	})
}

// getMap is get for an answer that is a JSON object.
func (s *testServer) getMap(t *testing.T, path string) map[string]any {
	t.Helper()
	_, v := s.get(t, path)
	m, _ := v.(map[string]any)
	return m
}

// nodeOf returns the node that runs or ran execution id.
func nodeOf(t *testing.T, s *testServer, id string) string {
	t.Helper()
	_, rec := s.get(t, "/executions/"+id)
	node, _ := rec.(map[string]any)["node"].(string)
	return node
}

// instanceContainers lists the containers of tako instance id on dc.
func instanceContainers(t *testing.T, dc *client.Client, id string) []container.Summary {
	t.Helper()
	list, err := dc.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", dockerlabel.Instance+"="+id))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", within, what)
}
