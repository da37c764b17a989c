package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/tako-run/tako/jobtypes"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		yaml      string
		wantNames []string
		check     func(t *testing.T, r *jobtypes.Registry)
	}{
		{
			name:      "no job types: the built-in default",
			yaml:      "server: {port: 8000}",
			wantNames: []string{"default"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				got, _ := r.Get("default")
				want := DefaultJobType()
				want.Concurrency = 4 // runner.max_concurrent
				want.SecurityMode = jobtypes.Permissive
				if !reflect.DeepEqual(got, want) {
					t.Errorf("default =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name:      "declared types without default get the built-in default too",
			yaml:      "job_types: {data: {limits: {memory: 1g}}}",
			wantNames: []string{"data", "default"},
		},
		{
			name:      "a job type that sets only memory inherits the rest",
			yaml:      "security_mode: strict\njob_types: {data: {limits: {memory: 1g}}}",
			wantNames: []string{"data", "default"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				got, _ := r.Get("data")
				want := DefaultJobType()
				want.Name = "data"
				want.Limits.Memory = 1 << 30
				want.Concurrency = 4
				want.SecurityMode = jobtypes.Strict
				if !reflect.DeepEqual(got, want) {
					t.Errorf("data =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name:      "a job type's security mode beats the global one",
			yaml:      "security_mode: strict\njob_types: {default: {security_mode: permissive}}",
			wantNames: []string{"default"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				if got, _ := r.Get("default"); got.SecurityMode != jobtypes.Permissive {
					t.Errorf("default.SecurityMode = %q, want permissive", got.SecurityMode)
				}
			},
		},
		{
			name: "declared default replaces the built-in",
			yaml: `
job_types:
  default:
    network: bridge
    image: python:3.12-slim
    env: {A: "1", DEBUG: true, N: 2}
    requirements: ["requests>=2"]
    limits: {cpus: 0.5, pids: 64, timeout: 45s, tmp: 32m, nofile: 128, file_size: 10m}
    pool: {min: 0, max: 0, idle_ttl: 1m}
`,
			wantNames: []string{"default"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				got, _ := r.Get("default")
				want := jobtypes.JobType{
					Concurrency:  4,
					Name:         "default",
					Image:        "python:3.12-slim",
					Env:          map[string]string{"A": "1", "DEBUG": "true", "N": "2"},
					Requirements: []string{"requests>=2"},
					Network:      jobtypes.NetworkBridge,
					SecurityMode: jobtypes.Permissive,
					Limits: jobtypes.Limits{
						CPUs: 0.5, FileSize: 10 << 20, Memory: 512 << 20, NoFile: 128,
						Pids: 64, Timeout: 45 * time.Second, Tmp: 32 << 20,
					},
					Pool: jobtypes.Pool{Min: 0, Max: 0, IdleTTL: time.Minute},
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("default =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name:      "an inherited timeout is capped by max_timeout",
			yaml:      "limits: {max_timeout: 10s}\njob_types: {data: {}}",
			wantNames: []string{"data", "default"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				for _, jt := range r.All() {
					if jt.Limits.Timeout != 10*time.Second {
						t.Errorf("%s timeout = %v, want max_timeout 10s", jt.Name, jt.Limits.Timeout)
					}
				}
			},
		},
		{
			name:      "an explicit pool bound moves the inherited one",
			yaml:      "job_types: {small: {pool: {max: 1}}, big: {pool: {min: 10}}}",
			wantNames: []string{"big", "default", "small"},
			check: func(t *testing.T, r *jobtypes.Registry) {
				small, _ := r.Get("small")
				big, _ := r.Get("big")
				if small.Pool.Min != 1 || small.Pool.Max != 1 || big.Pool.Min != 10 || big.Pool.Max != 10 {
					t.Errorf("small pool = %+v, big pool = %+v; want 1..1 and 10..10", small.Pool, big.Pool)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, tt.yaml, nil, nil)
			r, err := cfg.Registry()
			if err != nil {
				t.Fatalf("Registry: %v", err)
			}
			if got := r.Names(); !reflect.DeepEqual(got, tt.wantNames) {
				t.Errorf("Names() = %q, want %q", got, tt.wantNames)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestRegistryCopies(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "job_types: {data: {env: {A: '1'}, preload: [numpy]}}", nil, nil)
	r, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	cfg.JobTypes["data"].Env["A"] = "changed"
	cfg.JobTypes["data"].Preload[0] = "changed"
	if got, _ := r.Get("data"); got.Env["A"] != "1" || got.Preload[0] != "numpy" {
		t.Errorf("registry shares memory with the Config: %+v", got)
	}
}
