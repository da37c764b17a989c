package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/runner/runnertest"
)

// TestGVisorThatFailsItsCheckOnTheServer: on a host whose gVisor runtime
// lacks --host-fifo=open (make gvisor registers one so for the tests),
// permissive jobs run under runc at once, with the warning, and never time
// out starting; the strict job type is unavailable with the reason and the
// fix, everywhere a user looks.
func TestGVisorThatFailsItsCheckOnTheServer(t *testing.T) {
	dc := runnertest.Docker(t)
	runnertest.GVisorRuntime(t, dc)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	s := startOwnServer(t,
		"TAKO_RUNNER_GVISOR_RUNTIME=tako-test-runsc-nofifo",
		"TAKO_JOB_TYPES_LOCKED_SECURITY_MODE=strict",
		"TAKO_JOB_TYPES_LOCKED_POOL_MIN=1", "TAKO_JOB_TYPES_LOCKED_POOL_MAX=2",
	)

	_, body := s.get(t, "/health")
	h := body.(map[string]any)
	reason, _ := h["gvisor_reason"].(string)
	if h["gvisor_available"] != false || !strings.Contains(reason, "lacks the argument --host-fifo=open") {
		t.Errorf("/health gvisor: available %v, reason %q", h["gvisor_available"], reason)
	}
	if c := h["checks"].(map[string]any)["gvisor"].(map[string]any); c["status"] != "failing" {
		t.Errorf("/health checks.gvisor %v, want failing", c)
	}
	problems, _ := h["problems"].([]any)
	var joined []string
	for _, p := range problems {
		joined = append(joined, p.(string))
	}
	all := strings.Join(joined, "\n")
	for _, want := range []string{
		`gVisor runtime tako-test-runsc-nofifo is unusable`,
		`"runtimeArgs":["--host-fifo=open"]`,
		"job type locked is unavailable: security_mode strict requires gVisor",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("/health problems lack %q:\n%s", want, all)
		}
	}
	_, jt := s.get(t, "/job-types/locked")
	if r, _ := jt.(map[string]any)["unavailable_reason"].(string); !strings.Contains(r, "lacks the argument --host-fifo=open") {
		t.Errorf("/job-types/locked: %v", jt)
	}
	code, res := s.post(t, "/execute", `{"job_type": "locked", "code": "print(1)"}`)
	if detail, _ := res["detail"].(string); code != http.StatusServiceUnavailable || !strings.Contains(detail, "strict") {
		t.Errorf("a request for locked: %d %v", code, res)
	}

	// The permissive default job type: runc, at once.
	code, res = s.post(t, "/execute", `{"code": "print(6 * 7)"}`)
	if code != http.StatusOK || res["stdout"] != "42\n" {
		t.Fatalf("permissive job: %d %v", code, res)
	}
	id := res["execution_id"].(string)
	_, rec := s.get(t, "/executions/"+id)
	if got := rec.(map[string]any)["runtime"]; got != "runc" {
		t.Errorf("permissive job ran under %v, want runc", got)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "gVisor is not usable") {
		t.Errorf("no start-up warning in the server's log:\n%s", logs)
	}
	if left := containersOf(t, s.workDir, "locked"); len(left) != 0 {
		t.Errorf("the unavailable strict job type has containers: %v", left)
	}
}

// TestStrictShutdownLeavesNothing: a server stopped while a strict job runs
// under gVisor and its pool is warm finishes the job and leaves no
// container behind.
func TestStrictShutdownLeavesNothing(t *testing.T) {
	dc := runnertest.Docker(t)
	gvisor := runnertest.GVisorRuntime(t, dc)
	startServer(t)
	t.Parallel()
	dbURL, dropDB, err := createDatabase()
	if err != nil {
		t.Fatal(err)
	}
	defer dropDB()
	s, stop, err := launchServer(dbURL, []string{
		"TAKO_RUNNER_GVISOR_RUNTIME=" + gvisor,
		"TAKO_JOB_TYPES_SANDBOXED_SECURITY_MODE=strict",
		"TAKO_JOB_TYPES_SANDBOXED_POOL_MIN=2", "TAKO_JOB_TYPES_SANDBOXED_POOL_MAX=3",
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	waitContainers(t, s.workDir, "sandboxed", 2)
	id := s.submit(t, `{"job_type": "sandboxed", "code": "import time; time.sleep(3); print('done')"}`)
	s.waitStatus(t, id, "running", 2*time.Minute)
	work := s.workDir
	stop()
	stopped = true
	if left := containersOf(t, work, ""); len(left) != 0 {
		t.Errorf("containers left after shutdown: %v", left)
	}
	// The job finished during the drain, under gVisor.
	b, stopB, err := launchServer(dbURL, []string{"TAKO_RUNNER_GVISOR_RUNTIME=" + gvisor, "TAKO_JOB_TYPES_SANDBOXED_SECURITY_MODE=strict"})
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	_, rec := b.get(t, "/executions/"+id)
	if r := rec.(map[string]any); r["status"] != "succeeded" || r["runtime"] != "runsc" || r["stdout"] != "done\n" {
		t.Errorf("the job running at shutdown: %v", r)
	}
}
