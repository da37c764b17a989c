package api

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tako-run/tako/runner"
)

func TestJobTypes(t *testing.T) {
	t.Parallel()
	fr := &fakeRunner{avail: map[string]runner.Availability{
		"data": {Available: false, Image: "tako-data:abc", Reason: "security_mode strict needs gVisor (runsc)", Runtime: "runsc"},
	}}
	s := newTestServer(t, nil, fr, Limits{})

	r := do(t, s, "GET", "/job-types", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var list []map[string]any
	if err := jsonUnmarshal(r.body, &list); err != nil {
		t.Fatalf("GET /job-types is not a JSON array: %v: %s", err, r.body)
	}
	if len(list) != 2 || list[0]["name"] != "data" || list[1]["name"] != "default" {
		t.Fatalf("got %s", r.body)
	}
	def := list[1]
	want := map[string]any{
		"name":            "default",
		"image":           "tako-executor:default",
		"image_exists":    true,
		"system_packages": []any{},
		"requirements":    []any{},
		"preload":         []any{},
		"python_version":  "3.11",
		"session_enabled": false,
		"gpu_enabled":     false,
		"gpu_vendor":      nil,
		"memory_limit":    "512m",
		"cpu_limit":       1.0,
		"timeout":         30.0,
		"network":         "none",
		"network_enabled": false,
		"security_mode":   "permissive",
		"runtime":         "runc",
		"available":       true,
		"pool":            map[string]any{"warm": 2.0, "busy": 1.0, "target": 3.0, "min": 2.0, "max": 8.0, "idle_ttl_seconds": 300.0},
		"limits":          map[string]any{"memory_bytes": float64(512 << 20), "cpus": 1.0, "pids": 128.0, "tmp_bytes": float64(64 << 20), "timeout_seconds": 30.0},
	}
	if !reflect.DeepEqual(def, want) {
		t.Errorf("default job type\n got %v\nwant %v", def, want)
	}
	if _, ok := def["unavailable_reason"]; ok {
		t.Errorf("unavailable_reason present on an available job type")
	}

	tests := []struct {
		path   string
		status int
		check  func(t *testing.T, m map[string]any)
	}{
		{"/job-types/data", 200, func(t *testing.T, m map[string]any) {
			if m["name"] != "data" || m["memory_limit"] != "1g" || m["available"] != false ||
				m["unavailable_reason"] != "security_mode strict needs gVisor (runsc)" ||
				!reflect.DeepEqual(m["preload"], []any{"numpy"}) || !reflect.DeepEqual(m["system_packages"], []any{"python3-numpy"}) {
				t.Errorf("got %v", m)
			}
		}},
		{"/job-types/gpu", 404, func(t *testing.T, m map[string]any) {
			if m["detail"] != "Job type 'gpu' not found" {
				t.Errorf("detail %v", m["detail"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			r := do(t, s, "GET", tt.path, "", nil)
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.status >= 400 {
				checkErrorBody(t, r)
			}
			tt.check(t, r.object(t))
		})
	}
}

func TestDockerSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{512 << 20, "512m"},
		{1 << 30, "1g"},
		{1536 << 20, "1536m"},
		{64 << 10, "64k"},
		{1000, "1000"},
		{0, "0"},
	}
	for _, tt := range tests {
		if got := dockerSize(tt.n); got != tt.want {
			t.Errorf("dockerSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestBuildJobType(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, &fakeService{}, &fakeRunner{}, Limits{})
	r := do(t, s, "POST", "/job-types/data/build", "", nil)
	if r.status != http.StatusOK || string(r.body) != `{"status":"built","job_type":"data","version":"data@tako-jt-data:built","digest":"built","image_ref":"tako-jt-data:built","image":"tako-jt-data:built"}` {
		t.Errorf("build: %d %s", r.status, r.body)
	}
	if r := do(t, s, "POST", "/job-types/nope/build", "", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown job type: %d %s", r.status, r.body)
	}
	failing := newTestServer(t, &fakeService{}, &fakeRunner{buildErr: errors.New("pip exploded at /secret/path")}, Limits{})
	if r := do(t, failing, "POST", "/job-types/data/build", "", nil); r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "secret") {
		t.Errorf("failed build: %d %s", r.status, r.body)
	}
}
