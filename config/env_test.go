package config

import (
	"reflect"
	"testing"
	"time"
)

func TestEnvJobTypes(t *testing.T) {
	t.Parallel()
	const file = `
job_types:
  data: {}
  my-type: {}
  data_science: {}
`
	tests := []struct {
		name    string
		environ []string
		check   func(t *testing.T, c *Config)
	}{
		{
			name:    "default job type",
			environ: []string{"TAKO_JOB_TYPES_DEFAULT_LIMITS_MEMORY=1g"},
			check: func(t *testing.T, c *Config) {
				if got := c.JobTypes["default"].Limits.Memory; got != 1<<30 {
					t.Errorf("job_types.default.limits.memory = %d, want 1GiB", got)
				}
			},
		},
		{
			name:    "pointer field set to zero",
			environ: []string{"TAKO_JOB_TYPES_DATA_POOL_MIN=0", "TAKO_JOB_TYPES_DATA_POOL_IDLE_TTL=1m"},
			check: func(t *testing.T, c *Config) {
				p := c.JobTypes["data"].Pool
				if p.Min == nil || *p.Min != 0 || p.IdleTTL == nil || *p.IdleTTL != Duration(time.Minute) {
					t.Errorf("job_types.data.pool = %+v, want min 0 and idle_ttl 1m", p)
				}
			},
		},
		{
			name:    "declared name with '-' written as '_'",
			environ: []string{"TAKO_JOB_TYPES_MY_TYPE_NETWORK=bridge"},
			check: func(t *testing.T, c *Config) {
				if got := c.JobTypes["my-type"].Network.Mode; got != "bridge" {
					t.Errorf("job_types.my-type.network = %q, want bridge", got)
				}
				if _, ok := c.JobTypes["my_type"]; ok {
					t.Error("env created job type my_type; want it to set my-type")
				}
			},
		},
		{
			name:    "longest declared name wins",
			environ: []string{"TAKO_JOB_TYPES_DATA_SCIENCE_LIMITS_CPUS=4"},
			check: func(t *testing.T, c *Config) {
				if got := c.JobTypes["data_science"].Limits.CPUs; got != 4 {
					t.Errorf("job_types.data_science.limits.cpus = %v, want 4", got)
				}
			},
		},
		{
			name:    "undeclared name with '_' creates a job type",
			environ: []string{"TAKO_JOB_TYPES_GPU_HEAVY_LIMITS_PIDS=64"},
			check: func(t *testing.T, c *Config) {
				if got := c.JobTypes["gpu_heavy"].Limits.Pids; got != 64 {
					t.Errorf("job_types.gpu_heavy.limits.pids = %d, want 64", got)
				}
			},
		},
		{
			name:    "env map keeps the variable's case and underscores",
			environ: []string{"TAKO_JOB_TYPES_DATA_ENV_OMP_NUM_THREADS=2", "TAKO_JOB_TYPES_MY_TYPE_ENV_Mixed_Case=x"},
			check: func(t *testing.T, c *Config) {
				if got := c.JobTypes["data"].Env; !reflect.DeepEqual(got, map[string]string{"OMP_NUM_THREADS": "2"}) {
					t.Errorf("job_types.data.env = %v", got)
				}
				if got := c.JobTypes["my-type"].Env["Mixed_Case"]; got != "x" {
					t.Errorf("job_types.my-type.env.Mixed_Case = %q, want x", got)
				}
			},
		},
		{
			name:    "lists are comma-separated",
			environ: []string{"TAKO_JOB_TYPES_DATA_SYSTEM_PACKAGES=python3-numpy,python3-pandas", "TAKO_JOB_TYPES_DATA_PRELOAD=numpy"},
			check: func(t *testing.T, c *Config) {
				jt := c.JobTypes["data"]
				if want := []string{"python3-numpy", "python3-pandas"}; !reflect.DeepEqual(jt.SystemPackages, want) {
					t.Errorf("system_packages = %q, want %q", jt.SystemPackages, want)
				}
				if want := []string{"numpy"}; !reflect.DeepEqual(jt.Preload, want) {
					t.Errorf("preload = %q, want %q", jt.Preload, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, mustLoad(t, file, tt.environ, nil))
		})
	}
}
