package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/tako-run/tako/runner/runnertest"
	"github.com/tako-run/tako/runner/runnertest/pkgindex"
)

// submit posts body to /execute/async and returns the job id.
func (s *testServer) submit(t *testing.T, body string) string {
	t.Helper()
	code, res := s.post(t, "/execute/async", body)
	if code != http.StatusOK || res["status"] != "queued" {
		t.Fatalf("submit: %d %v", code, res)
	}
	return res["job_id"].(string)
}

// result long-polls a job's result.
func (s *testServer) result(t *testing.T, id string) map[string]any {
	t.Helper()
	code, res := s.get(t, "/jobs/"+id+"/result?wait=true&timeout=120")
	if code != http.StatusOK {
		_, job := s.get(t, "/jobs/"+id)
		_, health := s.get(t, "/health")
		t.Fatalf("result of %s: %d %v\njob: %v\nhealth: %v", id, code, res, job, health)
	}
	return res.(map[string]any)
}

// waitStatus polls GET /jobs/{id} until the job has status.
func (s *testServer) waitStatus(t *testing.T, id, status string, within time.Duration) map[string]any {
	t.Helper()
	var last any
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, last = s.get(t, "/jobs/"+id)
		if last.(map[string]any)["status"] == status {
			return last.(map[string]any)
		}
	}
	t.Fatalf("job %s never reached %s: %v", id, status, last)
	return nil
}

func TestAsyncQuickstart(t *testing.T) {
	s := startServer(t)
	id := s.submit(t, `{"code": "import time; time.sleep(1); print('done')"}`)
	_, status := s.get(t, "/jobs/"+id)
	if st := status.(map[string]any)["status"]; st != "queued" && st != "running" && st != "succeeded" {
		t.Errorf("status %v", st)
	}
	res := s.result(t, id)
	if res["stdout"] != "done\n" || res["status"] != "succeeded" || res["success"] != true {
		t.Errorf("result %v", res)
	}
	// The sync run is in the history too.
	_, sync := s.post(t, "/execute", `{"code": "print('hello')"}`)
	code, rec := s.get(t, "/executions/"+sync["execution_id"].(string))
	if code != http.StatusOK || rec.(map[string]any)["stdout"] != "hello\n" {
		t.Errorf("history of a sync run: %d %v", code, rec)
	}
}

// TestIdempotentSubmissions sends 100 submissions, 20 of which reuse 10
// idempotency keys with the same payload: exactly 90 executions run.
func TestIdempotentSubmissions(t *testing.T) {
	s := startServer(t)
	prefix := fmt.Sprintf("k%d", time.Now().UnixNano())
	bodies := make([]string, 0, 100)
	for i := 0; i < 80; i++ {
		bodies = append(bodies, fmt.Sprintf(`{"code": "print(%d)"}`, i))
	}
	for k := 0; k < 10; k++ {
		b := fmt.Sprintf(`{"code": "print('key %d')", "idempotency_key": "%s-%02d"}`, k, prefix, k)
		bodies = append(bodies, b, b)
	}
	var mu sync.Mutex
	ids := map[string]int{}
	var order []string // the jobs in the order they were queued
	var wg sync.WaitGroup
	work := make(chan string)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				code, res := s.post(t, "/execute/async", body)
				if code != http.StatusOK {
					t.Errorf("submit: %d %v", code, res)
					continue
				}
				mu.Lock()
				id := res["job_id"].(string)
				if ids[id]++; ids[id] == 1 {
					order = append(order, id)
				}
				mu.Unlock()
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	if len(ids) != 90 {
		t.Fatalf("%d distinct jobs for 100 submissions with 10 keys used twice, want 90", len(ids))
	}
	code, res := s.post(t, "/execute/async", fmt.Sprintf(`{"code": "print('changed')", "idempotency_key": "%s-00"}`, prefix))
	if code != http.StatusConflict {
		t.Errorf("reused key with a changed payload: %d %v", code, res)
	}
	// Waiting in queue order gives each long poll the time of a few
	// jobs, however loaded the machine, rather than the whole queue's.
	for _, id := range order {
		if r := s.result(t, id); r["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, r)
		}
	}
}

func TestCancel(t *testing.T) {
	s := startServer(t)
	// The serial job type runs one job at a time, so the second one queues.
	running := s.submit(t, `{"code": "import time; print('started', flush=True); time.sleep(60)", "job_type": "serial", "timeout": 90}`)
	s.waitStatus(t, running, "running", 30*time.Second)
	queued := s.submit(t, `{"code": "print('never')", "job_type": "serial"}`)
	if st := s.waitStatus(t, queued, "queued", 30*time.Second); st["queue_position"] != 1.0 {
		t.Errorf("queue_position %v, want 1", st["queue_position"])
	}
	// /health answers from a snapshot at most 2 s old: wait for it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, h := s.get(t, "/health")
		if h.(map[string]any)["queue_stats"].(map[string]any)["pending"].(float64) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("health does not count the queued job: %v", h)
			break
		}
	}

	t.Run("queued", func(t *testing.T) {
		code, res := s.post(t, "/jobs/"+queued+"/cancel", "")
		if code != http.StatusOK || res["status"] != "cancelled" {
			t.Fatalf("cancel queued: %d %v", code, res)
		}
		r := s.result(t, queued)
		if r["status"] != "cancelled" || r["started_at"] != nil || r["stdout"] != "" {
			t.Errorf("cancelled queued job %v", r)
		}
	})
	t.Run("running", func(t *testing.T) {
		// Running means its container runs, not just its record.
		waitContainers(t, s.workDir, "serial", 1)
		began := time.Now()
		code, res := s.post(t, "/jobs/"+running+"/cancel", "")
		took := time.Since(began)
		if code != http.StatusOK || res["status"] != "cancelled" {
			t.Fatalf("cancel running: %d %v", code, res)
		}
		// The program sleeps for 60 s: an answer well before that shows
		// that cancel stopped it rather than waiting for it, with room for a
		// loaded machine.
		if took > 30*time.Second {
			t.Errorf("cancel of a running job took %s", took)
		}
		if r := s.result(t, running); r["status"] != "cancelled" {
			t.Errorf("cancelled running job %v", r)
		}
		waitContainers(t, s.workDir, "serial", 0)
	})
	if code, res := s.post(t, "/jobs/"+running+"/cancel", ""); code != http.StatusNotFound || res["detail"] != "Job not found or already completed" {
		t.Errorf("cancel of a finished job: %d %v", code, res)
	}
	waitNoContainers(t, s)
}

func TestRerunAndFork(t *testing.T) {
	s := startServer(t)
	parent := s.submit(t, `{"code": "import json; print(json.load(open('/input/data.json'))['x'] * 2)", "input_data": {"x": 21}}`)
	if r := s.result(t, parent); r["stdout"] != "42\n" {
		t.Fatalf("parent %v", r)
	}
	resp, body := s.request(t, "POST", "/jobs/"+parent+"/rerun", "{}", map[string]string{"X-Correlation-ID": "rerun-cid-1"})
	rerun, _ := body.(map[string]any)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rerun: %d %v", resp.StatusCode, body)
	}
	r := s.result(t, rerun["job_id"].(string))
	if r["stdout"] != "42\n" || r["parent_id"] != parent || r["relationship"] != "rerun" {
		t.Errorf("rerun %v", r)
	}
	// The rerun is a request of its own: it carries that request's
	// correlation id, not the parent's.
	if r["correlation_id"] != "rerun-cid-1" {
		t.Errorf("rerun correlation_id %v", r["correlation_id"])
	}
	code, fork := s.post(t, "/jobs/"+parent+"/fork", `{"code": "import json; print(json.load(open('/input/data.json'))['x'] * 3)"}`)
	if code != http.StatusOK {
		t.Fatalf("fork: %d %v", code, fork)
	}
	r = s.result(t, fork["job_id"].(string))
	if r["stdout"] != "63\n" || r["parent_id"] != parent || r["relationship"] != "fork" {
		t.Errorf("fork %v", r)
	}
}

func TestArtifactDownload(t *testing.T) {
	s := startServer(t)
	_, res := s.post(t, "/execute", `{"code": "open('/output/report.txt', 'w').write('hello')"}`)
	id := res["execution_id"].(string)
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	resp, err := http.Get(s.url + "/jobs/" + id + "/artifacts/report.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" || resp.Header.Get("ETag") != `"`+sum+`"` ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !strings.Contains(resp.Header.Get("Content-Disposition"), "report.txt") {
		t.Errorf("download: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/jobs/"+id+"/artifacts/report.txt", nil)
	req.Header.Set("If-None-Match", `"`+sum+`"`)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	resp, err = http.Get(s.url + "/jobs/" + id + "/artifacts/..%2F..%2Fetc%2Fpasswd")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("traversal name: %d", resp.StatusCode)
	}
}

// TestTwoNodes runs two servers on one database and one Docker engine:
// work submitted to one runs on both, and every job request works from
// either; starting the second does not touch the first's containers.
func TestTwoNodes(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	defer drop()
	a, stopA, err := launchServer(dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopA()

	var early []string
	for i := 0; i < 3; i++ {
		early = append(early, a.submit(t, `{"code": "import time; time.sleep(3); print('ok')"}`))
	}
	for _, id := range early {
		a.waitStatus(t, id, "running", 30*time.Second)
	}
	b, stopB, err := launchServer(dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	for _, id := range early {
		if r := b.result(t, id); r["status"] != "succeeded" {
			t.Errorf("job running on A when B started: %v", r)
		}
	}

	nodes := map[string]bool{}
	var ids []string
	for i := 0; i < 12; i++ {
		ids = append(ids, a.submit(t, `{"code": "import time; time.sleep(1); open('/output/n.txt', 'w').write('x')"}`))
	}
	for _, id := range ids {
		r := b.result(t, id)
		if r["status"] != "succeeded" {
			t.Errorf("job %s: %v", id, r)
		}
		nodes[fmt.Sprint(r["node"])] = true
	}
	if len(nodes) != 2 {
		t.Errorf("jobs submitted to A ran on nodes %v, want both", nodes)
	}
	resp, err := http.Get(b.url + "/jobs/" + ids[0] + "/artifacts/n.txt")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("artifact from the other node: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	sleeper := a.submit(t, `{"code": "import time; time.sleep(25)", "timeout": 30}`)
	a.waitStatus(t, sleeper, "running", 30*time.Second)
	if code, res := b.post(t, "/jobs/"+sleeper+"/cancel", ""); code != http.StatusOK || res["status"] != "cancelled" {
		t.Errorf("cancel from the other node: %d %v", code, res)
	}
}

// TestKill9Recovery kills a server process with 10 running async jobs and
// a sync one, and restarts it: every job reaches a terminal state (the
// async ones run again, the sync one, whose caller is gone, ends as failed
// once its node's heartbeat is stale) and no container is left.
func TestKill9Recovery(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "tako")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	defer drop()
	work := t.TempDir()
	port, _ := freePort()
	env := append(os.Environ(),
		"TAKO_DATABASE_URL="+dbURL, "TAKO_RUNNER_WORK_DIR="+work, fmt.Sprintf("TAKO_SERVER_PORT=%d", port),
		"TAKO_RUNNER_MAX_CONCURRENT=10", "TAKO_LIMITS_MAX_TIMEOUT=20s", "TAKO_JOB_TYPES_DATA_LIMITS_TIMEOUT=20s",
		"TAKO_JOB_TYPES_DEFAULT_LIMITS_TIMEOUT=20s", "TAKO_QUEUE_RESCUE_AFTER=25s", "TAKO_LOG_LEVEL=warn",
		"TAKO_CLUSTER_NODE_TIMEOUT=6s",
		// The sync request waits for a slot behind the async jobs, however
		// slow their starts on a loaded machine.
		"TAKO_RUNNER_ACQUIRE_TIMEOUT=120s",
		// A container whose creation was in flight at the kill appears late.
		"TAKO_RUNNER_REAP_INTERVAL=2s",
	)
	s := &testServer{url: fmt.Sprintf("http://127.0.0.1:%d", port), workDir: work}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "server", "--config", "../../tako.yaml")
		cmd.Env = env
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, err := http.Get(s.url + "/health"); err == nil {
				resp.Body.Close()
				return cmd
			}
		}
		t.Fatal("server did not start")
		return nil
	}
	first := start()
	var ids []string
	for i := 0; i < 10; i++ {
		// A short startup_timeout keeps the bound of one attempt, after which
		// the rescuer takes the job for lost, at 20+10+10 s.
		ids = append(ids, s.submit(t, `{"code": "import time; time.sleep(5); print('finished')", "startup_timeout": 10}`))
	}
	for _, id := range ids {
		s.waitStatus(t, id, "running", 2*time.Minute)
	}
	// A sync request in flight: the running execution that is not one of
	// the async ones.
	go http.Post(s.url+"/execute", "application/json", strings.NewReader(`{"code": "import time; time.sleep(15)"}`))
	async := map[string]bool{}
	for _, id := range ids {
		async[id] = true
	}
	var syncID string
	for deadline := time.Now().Add(2 * time.Minute); syncID == ""; time.Sleep(100 * time.Millisecond) {
		_, page := s.get(t, "/executions?status=running&limit=100")
		for _, item := range page.(map[string]any)["items"].([]any) {
			if id, _ := item.(map[string]any)["execution_id"].(string); !async[id] {
				syncID = id
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the sync execution never showed as running")
		}
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()

	second := start()
	defer func() {
		second.Process.Signal(syscall.SIGTERM)
		second.Wait()
	}()
	for _, id := range ids {
		code, res := s.get(t, "/jobs/"+id+"/result?wait=true&timeout=180")
		if code != http.StatusOK || res.(map[string]any)["status"] != "succeeded" {
			t.Errorf("job %s after kill -9 and restart: %d %v", id, code, res)
		}
	}
	code, res := s.get(t, "/jobs/"+syncID+"/result?wait=true&timeout=120")
	if r, _ := res.(map[string]any); code != http.StatusOK || r["status"] != "failed" || !strings.Contains(fmt.Sprint(r["error"]), "went silent for longer than cluster.node_timeout") {
		t.Errorf("sync execution %s after kill -9 and restart: %d %v", syncID, code, res)
	}
	waitNoContainers(t, s)
}

// TestAutoStartedDatabase starts a server without database.url: it runs
// its own PostgreSQL container on 127.0.0.1:55432, with a random password
// kept in the work directory, and keeps the history across a restart. No
// job or build can reach it: a bridge job and a package's build code each
// try its own address and the host's published port.
func TestAutoStartedDatabase(t *testing.T) {
	dc := runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	// Names of this run's own: a second run of the suite on the machine
	// must not remove this one's database.
	name := fmt.Sprintf("tako-postgres-test-%d", os.Getpid())
	vol := name + "-data"
	cleanup := func() {
		dc.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true})
		dc.VolumeRemove(context.Background(), vol, true)
		dc.NetworkRemove(context.Background(), name)
	}
	cleanup()
	defer cleanup()
	work := t.TempDir() // kept across the restart: the password lives here
	env := []string{"TAKO_DATABASE_AUTO_START_CONTAINER=" + name, "TAKO_DATABASE_AUTO_START_VOLUME=" + vol, "TAKO_RUNNER_WORK_DIR=" + work}
	// The default port, unless the machine's own tako-postgres holds it
	// (someone ran `make run` here): then any free one.
	port := "55432"
	if ln, err := net.Listen("tcp", "127.0.0.1:"+port); err != nil {
		free, _ := freePort()
		port = fmt.Sprint(free)
		env = append(env, "TAKO_DATABASE_AUTO_START_PORT="+port)
		t.Logf("port 55432 is taken; using %s", port)
	} else {
		ln.Close()
	}

	s, stop, err := launchServer("", env)
	if err != nil {
		t.Fatal(err)
	}
	_, res := s.post(t, "/execute", `{"code": "print('remember me')"}`)
	stop()
	info, err := dc.ContainerInspect(context.Background(), name)
	if err != nil || info.HostConfig.PortBindings["5432/tcp"][0].HostPort != port {
		t.Fatalf("database container: %v %+v", err, info.HostConfig)
	}
	if nets := info.NetworkSettings.Networks; len(nets) != 1 || nets[name] == nil {
		t.Errorf("database container networks %v, want %s alone", nets, name)
	}
	password, err := os.ReadFile(filepath.Join(work, "database", name+".password"))
	if fi, serr := os.Stat(filepath.Join(work, "database", name+".password")); err != nil || serr != nil || fi.Mode().Perm() != 0o600 || len(password) < 32 {
		t.Errorf("password file: %v %v", err, serr)
	}
	dbIP := info.NetworkSettings.Networks[name].IPAddress

	// A package whose build code tries the database, served with the
	// executor's wheels by a local index.
	index := pkgindex.StartWith(t, dc, runnertest.ExecutorImage(t, dc), pkgindex.Options{ProbeTargets: []pkgindex.Target{
		{Name: "database container", Host: dbIP, Port: 5432},
		{Name: "published port through docker0", Host: "172.17.0.1", Port: mustAtoi(port)},
		{Name: "published port through the gateway", Host: pkgindex.Gateway, Port: mustAtoi(port)},
	}})
	env = append(env, "TAKO_JOB_TYPES_NET_NETWORK=bridge", "TAKO_JOB_TYPES_NET_POOL_MAX=0",
		"TAKO_JOB_TYPES_SRC_ALLOW_SOURCE_BUILDS=true", "TAKO_JOB_TYPES_SRC_POOL_MAX=0",
		"TAKO_PIP_INDEX_URL=http://"+index+":8080/simple", "TAKO_PIP_TRUSTED_HOSTS="+index)
	s, stop, err = launchServer("", env)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	id := res["execution_id"].(string)
	code, rec := s.get(t, "/executions/"+id)
	if code != http.StatusOK || rec.(map[string]any)["stdout"] != "remember me\n" {
		t.Errorf("history after restart: %d %v", code, rec)
	}
	code, rerun := s.post(t, "/jobs/"+id+"/rerun", "{}")
	if code != http.StatusOK {
		t.Fatalf("rerun after restart: %d %v", code, rerun)
	}
	if r := s.result(t, rerun["job_id"].(string)); r["stdout"] != "remember me\n" {
		t.Errorf("rerun after restart: %v", r)
	}

	// A bridge job tries the database's address and its published port.
	_, probe := s.post(t, "/execute", `{"job_type": "net", "code": "import socket\nfor h, p in [('`+dbIP+`', 5432), ('172.17.0.1', `+port+`)]:\n    try:\n        socket.create_connection((h, p), timeout=3).close(); print('open')\n    except OSError as e:\n        print(type(e).__name__)"}`)
	if out, _ := probe["stdout"].(string); probe["status"] != "succeeded" || strings.Contains(out, "open") || strings.Count(out, "\n") != 2 {
		t.Errorf("a bridge job reached the database: %v", probe)
	}
	// So does a package's build code, while it is downloaded and built.
	// A set of this run's own: the image of another test's takoevil, built
	// from another index that may have had the same address, reports other
	// probes.
	evil := fmt.Sprintf("takoevil>=0.0.%d", time.Now().UnixNano()%1_000_000)
	defer removeRequirementImages(t, evil)
	code, built := s.post(t, "/execute", `{"job_type": "src", "requirements": ["`+evil+`"], "code": "import takoevil; print(takoevil.PROBE)"}`)
	if code != http.StatusOK || built["status"] != "succeeded" {
		t.Fatalf("build of takoevil: %d %v\n%s", code, built, s.logs.String())
	}
	var report map[string]any
	if err := json.Unmarshal([]byte(built["stdout"].(string)), &report); err != nil {
		t.Fatalf("takoevil's report %q: %v", built["stdout"], err)
	}
	for _, k := range []string{"database container", "published port through docker0", "published port through the gateway"} {
		if report[k] != "refused" {
			t.Errorf("build code, %s: %v", k, report[k])
		}
	}
	if uid, _ := report["uid"].(float64); uid == 0 || uid == 1000 {
		t.Errorf("build code ran as uid %v", report["uid"])
	}

	// The database goes away: health says so and new work gets 503; it
	// comes back and the server recovers by itself.
	stopTimeout := 5
	if err := dc.ContainerStop(context.Background(), name, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	// /health answers from a snapshot at most 2 s old: wait for it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, health := s.get(t, "/health")
		h := health.(map[string]any)
		if h["database_available"] == false && h["status"] == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("health with the database down: %v", h)
			break
		}
	}
	if code, res := s.post(t, "/execute/async", `{"code": "print(1)"}`); code != http.StatusServiceUnavailable {
		t.Errorf("submit with the database down: %d %v", code, res)
	}
	if err := dc.ContainerStart(context.Background(), name, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		code, res := s.post(t, "/execute", `{"code": "print('back')"}`)
		if code == http.StatusOK && res["stdout"] == "back\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the database came back: %d %v", code, res)
		}
	}
	if id := s.submit(t, `{"code": "print('queued again')"}`); s.result(t, id)["stdout"] != "queued again\n" {
		t.Errorf("async after the database came back")
	}
}

// TestGracefulDrain stops a server while a job runs: it finishes the job
// before it exits.
func TestGracefulDrain(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	dbURL, drop, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	defer drop()
	a, stopA, err := launchServer(dbURL, []string{"TAKO_JOB_TYPES_DEFAULT_POOL_MIN=0", "TAKO_JOB_TYPES_DEFAULT_POOL_MAX=0"})
	if err != nil {
		t.Fatal(err)
	}
	id := a.submit(t, `{"code": "import time; time.sleep(2); print('drained')"}`)
	waitContainers(t, a.workDir, "default", 1) // no pool: this is the job's
	stopA()                                    // like SIGTERM: returns once the node has drained
	b, stopB, err := launchServer(dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	_, res := b.get(t, "/jobs/"+id)
	if r := res.(map[string]any); r["status"] != "succeeded" || r["attempt"] != 1.0 {
		t.Errorf("job running at shutdown: %v", r)
	}
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
