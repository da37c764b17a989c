package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/tako-run/tako/runner/runnertest"
	"github.com/tako-run/tako/runner/runnertest/pkgindex"
)

// TestAdHocRequirements runs requests with requirements against a server
// whose pip index is a local one serving takotiny.
func TestAdHocRequirements(t *testing.T) {
	dc := runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	index := pkgindex.Start(t, dc, runnertest.ExecutorImage(t, dc))
	s := startOwnServer(t,
		"TAKO_PIP_INDEX_URL=http://"+index+":8080/simple", "TAKO_PIP_TRUSTED_HOSTS="+index,
		"TAKO_RUNNER_GVISOR_RUNTIME="+runnertest.GVisorRuntime(t, dc),
		"TAKO_JOB_TYPES_PINNED_RUNTIME=runc", "TAKO_JOB_TYPES_SANDBOXED_SECURITY_MODE=strict",
	)
	builds := func() int { return strings.Count(s.logs.String(), "==> building requirements image") }
	// Requirement sets of this run only, so that images of earlier runs are
	// not found; all are met by takotiny 0.1. Their images go at the end.
	n := time.Now().UnixNano() % 1_000_000
	one, other, missing := fmt.Sprintf("takotiny>=0.0.%d", n), fmt.Sprintf("takotiny>=0.0.%d,<1", n), fmt.Sprintf("tako-missing-%d", n)
	defer removeRequirementImages(t, one, other)

	// The quick start's Python example as written, its requirements line
	// naming a package this index serves.
	example, _ := json.Marshal(map[string]any{"code": quickstartCode, "input_data": map[string]any{"x": 10, "y": 20}, "requirements": []string{one}})
	code, res := s.post(t, "/execute", string(example))
	output, _ := json.Marshal(res["output"])
	if code != http.StatusOK || res["success"] != true || string(output) != `{"product":200,"sum":30}` || res["stdout"] != "Done!\n" {
		t.Fatalf("quick start with requirements: %d %v", code, res)
	}
	if n := builds(); n != 1 {
		t.Errorf("%d builds for the first request, want 1", n)
	}
	// The record keeps the requirements and the image; a rerun uses both.
	_, rec := s.get(t, "/executions/"+res["execution_id"].(string))
	r := rec.(map[string]any)
	if fmt.Sprint(r["requirements"]) != "["+one+"]" || !strings.HasPrefix(fmt.Sprint(r["image"]), "tako-req:") {
		t.Errorf("record: requirements %v image %v", r["requirements"], r["image"])
	}
	_, rerun := s.post(t, "/jobs/"+res["execution_id"].(string)+"/rerun", "{}")
	if again := s.result(t, rerun["job_id"].(string)); again["image"] != r["image"] || again["stdout"] != "Done!\n" || builds() != 1 {
		t.Errorf("rerun: %v", again)
	}

	t.Run("the package imports, and the same set does not build again", func(t *testing.T) {
		code, res := s.post(t, "/execute", `{"code": "import takotiny; print(takotiny.VALUE)", "requirements": ["`+one+`"]}`)
		if code != http.StatusOK || res["stdout"] != "42\n" {
			t.Fatalf("%d %v", code, res)
		}
		if n := builds(); n != 1 {
			t.Errorf("%d builds after a second request with the same set, want 1", n)
		}
	})

	t.Run("10 concurrent identical requests make one build", func(t *testing.T) {
		before := builds()
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				code, res := s.post(t, "/execute", `{"code": "import takotiny; print(takotiny.VALUE + 1)", "requirements": ["`+other+`"]}`)
				if code != http.StatusOK || res["stdout"] != "43\n" {
					t.Errorf("%d %v", code, res)
				}
			})
		}
		wg.Wait()
		if n := builds() - before; n != 1 {
			t.Errorf("%d builds for 10 concurrent requests, want 1", n)
		}
	})

	t.Run("a set that keeps coming back runs warm", func(t *testing.T) {
		for deadline := time.Now().Add(2 * time.Minute); ; {
			_, res := s.post(t, "/execute", `{"code": "import takotiny; print(takotiny.VALUE)", "requirements": ["`+other+`"]}`)
			if res["start"] == "warm" && res["stdout"] == "42\n" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("never warm: %v", res)
			}
			time.Sleep(200 * time.Millisecond) // the pool of the set is filling
		}
	})

	t.Run("under runc and under gVisor, cold then warm, with artifacts", func(t *testing.T) {
		body := `{"job_type": "%s", "code": "import takotiny\nopen('/output/v.txt', 'w').write(str(takotiny.VALUE))\nprint(takotiny.VALUE)", "requirements": ["` + one + `"]}`
		for jt, runtime := range map[string]string{"pinned": "runc", "sandboxed": "runsc"} {
			var starts []string
			for deadline := time.Now().Add(3 * time.Minute); ; {
				code, res := s.post(t, "/execute", fmt.Sprintf(body, jt))
				arts, _ := res["artifacts"].([]any)
				if code != http.StatusOK || res["stdout"] != "42\n" || len(arts) != 1 || arts[0].(map[string]any)["name"] != "v.txt" {
					t.Fatalf("%s: %d %v", jt, code, res)
				}
				_, rec := s.get(t, "/executions/"+res["execution_id"].(string))
				if got := rec.(map[string]any)["runtime"]; got != runtime {
					t.Errorf("%s ran under %v, want %s", jt, got, runtime)
				}
				starts = append(starts, res["start"].(string))
				if res["start"] == "warm" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never warm: %v", jt, starts)
				}
				time.Sleep(200 * time.Millisecond) // the pool of the set is filling
			}
			if starts[0] != "cold" {
				t.Errorf("%s: starts %v, want cold first", jt, starts)
			}
		}
	})

	t.Run("user code still has no network", func(t *testing.T) {
		_, res := s.post(t, "/execute", `{"code": "import socket, takotiny\nsocket.create_connection(('`+index+`', 8080), timeout=3)", "requirements": ["`+one+`"]}`)
		if res["status"] != "failed" || !strings.Contains(res["stderr"].(string), "Network is unreachable") {
			t.Errorf("%v", res)
		}
	})

	t.Run("an invalid entry is 422 naming it", func(t *testing.T) {
		code, res := s.post(t, "/execute", `{"code": "x", "requirements": ["takotiny", "-e ."]}`)
		if code != http.StatusUnprocessableEntity || !strings.Contains(res["detail"].(string), `requirements[1]: "-e ."`) {
			t.Errorf("%d %v", code, res)
		}
	})

	t.Run("a package the index lacks fails clearly, once", func(t *testing.T) {
		before := builds()
		for i := range 3 {
			code, res := s.post(t, "/execute", `{"code": "x", "requirements": ["`+missing+`"]}`)
			if code != http.StatusUnprocessableEntity || !strings.Contains(res["detail"].(string), "No matching distribution found for "+missing) {
				t.Errorf("try %d: %d %v", i, code, res)
			}
		}
		id := s.submit(t, `{"code": "x", "requirements": ["`+missing+`"]}`)
		r := s.result(t, id)
		if r["status"] != "failed" || r["attempt"] != 1.0 || fmt.Sprint(r["error"].(map[string]any)["type"]) != "dependency_error" {
			t.Errorf("async: %v", r)
		}
		if n := builds() - before; n != 1 {
			t.Errorf("%d builds for a missing package asked for 4 times, want 1", n)
		}
	})
	waitNoContainers(t, s)
}

// removeRequirementImages removes the ad-hoc images of the given sets.
func removeRequirementImages(t *testing.T, sets ...string) {
	dc := runnertest.Docker(t)
	for _, set := range sets {
		list, err := dc.ImageList(context.Background(), image.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", "tako.requirements="+set)),
		})
		if err != nil {
			t.Errorf("list requirement images: %v", err)
			continue
		}
		for _, img := range list {
			dc.ImageRemove(context.Background(), img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	}
}
