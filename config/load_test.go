package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeConfig writes content to a tako.yaml in a fresh directory and
// returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tako.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noSearch makes Load ignore any tako.yaml on the machine running the tests.
func noSearch(t *testing.T) []string {
	return []string{filepath.Join(t.TempDir(), "absent.yaml")}
}

// load runs Load with yaml as the file ("" = no file), the environ and the
// flags.
func load(t *testing.T, yaml string, environ []string, flags map[string]string) (*Config, error) {
	t.Helper()
	opts := LoadOptions{Environ: environ, Flags: flags, SearchPaths: noSearch(t)}
	if yaml != "" {
		opts.File = writeConfig(t, yaml)
	}
	return Load(opts)
}

func mustLoad(t *testing.T, yaml string, environ []string, flags map[string]string) *Config {
	t.Helper()
	cfg, err := load(t, yaml, environ, flags)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, "", nil, nil)
	want := &Config{
		Auth:    AuthConfig{APIKeys: map[string]APIKeyConfig{}, Header: "X-API-Key", DefaultQuota: QuotaConfig{MaxPending: 100}},
		Cluster: ClusterConfig{HeartbeatInterval: Duration(2 * time.Second), NodeTimeout: Duration(15 * time.Second)},
		Database: DatabaseConfig{
			AutoStart: AutoStartConfig{Container: "tako-postgres", Image: "postgres:16-alpine", Port: 55432, Volume: "tako-postgres-data"},
			MaxConns:  20, SyncHistoryCommit: "async",
		},
		Egress: EgressConfig{AllowPrivateNetworks: []string{}, Hosts: HostPins{}},
		Queue:  QueueConfig{MaxAttempts: 3, MaxPending: 1000, RetentionDays: 30},
		Requirements: RequirementsConfig{
			AllowAdHoc: true, FailureTTL: Duration(5 * time.Minute), MaxConcurrentBuilds: 1,
			Cache: RequirementCacheConfig{MaxBytes: 20 << 30, MaxImages: 50},
		},
		Images: ImagesConfig{
			BaseImage:    "debian:bookworm-slim",
			BuildTimeout: Duration(15 * time.Minute),
			DebianSuite:  "bookworm",
			Executor:     "tako-executor",
			BuildLimits:  BuildLimitsConfig{CPUs: 1, Memory: 2 << 30, Pids: 512},
		},
		Limits: LimitsConfig{
			MaxArtifactBytes:      10 << 20,
			MaxArtifacts:          100,
			MaxCodeBytes:          102400,
			MaxInputBytes:         1 << 20,
			MaxOutputBytes:        200 << 20,
			MaxStderrBytes:        64 << 10,
			MaxStdoutBytes:        64 << 10,
			MaxTimeout:            Duration(300 * time.Second),
			MaxTotalArtifactBytes: 50 << 20,
		},
		Log:     LogConfig{Format: "auto", Level: "info"},
		Metrics: MetricsConfig{Enabled: true, RequireAuth: true, SampleInterval: Duration(5 * time.Second)},
		Pip:     PipConfig{ExtraIndexURLs: []string{}, TrustedHosts: []string{}},
		Runner: RunnerConfig{AcquireTimeout: Duration(10 * time.Second), MaxConcurrent: 4, MaxConcurrentStarts: 1, ReapInterval: Duration(30 * time.Second),
			UIDRange: "200000-265535", GVisorRuntime: "runsc", GVisorRequiredArgs: []string{"--host-fifo=open"}},
		SecurityMode: "permissive",
		Server: ServerConfig{Host: "127.0.0.1", MaxBodyBytes: 2 << 20, Port: 8000,
			RateLimit:    RateLimitConfig{RequestsPerSecond: 100, Burst: 200},
			AllowedHosts: []string{}, CORSOrigins: []string{}, Role: RoleAll},
		Streaming: StreamingConfig{MaxStreams: 1000},
		UI:        UIConfig{Enabled: true},
		Worker:    WorkerConfig{JobTypes: []string{}},
		Webhooks: WebhooksConfig{
			RetrySchedule: []Duration{Duration(5 * time.Second), Duration(30 * time.Second), Duration(2 * time.Minute),
				Duration(10 * time.Minute), Duration(30 * time.Minute), Duration(time.Hour), Duration(2 * time.Hour)},
			Secret:  []string{},
			Timeout: Duration(15 * time.Second),
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadLayers(t *testing.T) {
	t.Parallel()
	const file = `
server: {port: 9001, max_body_bytes: 4m}
limits: {max_timeout: 10m}
pip: {extra_index_urls: [https://file.example/simple]}
runner: {work_dir: /from/file}
`
	tests := []struct {
		name    string
		yaml    string
		environ []string
		flags   map[string]string
		check   func(t *testing.T, c *Config)
	}{
		{
			name: "file overrides defaults",
			yaml: file,
			check: func(t *testing.T, c *Config) {
				if c.Server.Port != 9001 || c.Server.MaxBodyBytes != 4<<20 || c.Limits.MaxTimeout != Duration(10*time.Minute) {
					t.Errorf("server = %+v, max_timeout = %v", c.Server, c.Limits.MaxTimeout)
				}
				if c.Server.Host != "127.0.0.1" {
					t.Errorf("server.host = %q, want the default", c.Server.Host)
				}
			},
		},
		{
			name: "env overrides file",
			yaml: file,
			environ: []string{
				"TAKO_SERVER_PORT=9002",
				"TAKO_SERVER_MAX_BODY_BYTES=1048576",
				"TAKO_LIMITS_MAX_TIMEOUT=120",
				"TAKO_PIP_INDEX_URL=https://env.example/simple",
				"TAKO_PIP_EXTRA_INDEX_URLS=https://a.example/simple, https://b.example/simple",
				"TAKO_RUNNER_WORK_DIR=/from/env",
				"TAKO_SECURITY_MODE=strict",
				"TAKO_SERVER_ALLOW_UNAUTHENTICATED_NETWORK_ACCESS=true",
				"PATH=/usr/bin",
			},
			check: func(t *testing.T, c *Config) {
				if c.Server.Port != 9002 || c.Server.MaxBodyBytes != 1<<20 || !c.Server.AllowUnauthenticatedNetworkAccess {
					t.Errorf("server = %+v", c.Server)
				}
				if c.Limits.MaxTimeout != Duration(120*time.Second) {
					t.Errorf("limits.max_timeout = %v, want 120s", c.Limits.MaxTimeout)
				}
				wantPip := PipConfig{
					IndexURL:       "https://env.example/simple",
					ExtraIndexURLs: []string{"https://a.example/simple", "https://b.example/simple"},
					TrustedHosts:   []string{},
				}
				if !reflect.DeepEqual(c.Pip, wantPip) {
					t.Errorf("pip = %+v, want %+v", c.Pip, wantPip)
				}
				if c.Runner.WorkDir != "/from/env" || c.SecurityMode != "strict" {
					t.Errorf("work_dir = %q, security_mode = %q", c.Runner.WorkDir, c.SecurityMode)
				}
			},
		},
		{
			name:    "flags override env",
			yaml:    file,
			environ: []string{"TAKO_SERVER_PORT=9002", "TAKO_RUNNER_WORK_DIR=/from/env"},
			flags:   map[string]string{"server.port": "9003", "pip.trusted_hosts": "a.example,b.example"},
			check: func(t *testing.T, c *Config) {
				if c.Server.Port != 9003 {
					t.Errorf("server.port = %d, want the flag's 9003", c.Server.Port)
				}
				if c.Runner.WorkDir != "/from/env" {
					t.Errorf("runner.work_dir = %q, want the env's", c.Runner.WorkDir)
				}
				if want := []string{"a.example", "b.example"}; !reflect.DeepEqual(c.Pip.TrustedHosts, want) {
					t.Errorf("pip.trusted_hosts = %q, want %q", c.Pip.TrustedHosts, want)
				}
			},
		},
		{
			name:    "empty env list clears the file's list",
			yaml:    file,
			environ: []string{"TAKO_PIP_EXTRA_INDEX_URLS="},
			check: func(t *testing.T, c *Config) {
				if len(c.Pip.ExtraIndexURLs) != 0 {
					t.Errorf("pip.extra_index_urls = %q, want none", c.Pip.ExtraIndexURLs)
				}
			},
		},
		{
			name:  "port 0 picks a free port",
			flags: map[string]string{"server.port": "0"},
			check: func(t *testing.T, c *Config) {
				if c.Server.Port != 0 {
					t.Errorf("server.port = %d, want 0", c.Server.Port)
				}
			},
		},
		{
			name:    "TAKO_TEST_ and TAKO_CONFIG are not keys",
			environ: []string{"TAKO_TEST_ANYTHING=1", "TAKO_CONFIG="},
			check:   func(t *testing.T, c *Config) {},
		},
		{
			name: "sizes and durations as numbers",
			yaml: "server: {max_body_bytes: 4096}\nrunner: {acquire_timeout: 2.5}\nimages: {build_timeout: 90}",
			check: func(t *testing.T, c *Config) {
				if c.Server.MaxBodyBytes != 4096 {
					t.Errorf("server.max_body_bytes = %d, want 4096", c.Server.MaxBodyBytes)
				}
				if c.Runner.AcquireTimeout != Duration(2500*time.Millisecond) || c.Images.BuildTimeout != Duration(90*time.Second) {
					t.Errorf("acquire_timeout = %v, build_timeout = %v", c.Runner.AcquireTimeout, c.Images.BuildTimeout)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, mustLoad(t, tt.yaml, tt.environ, tt.flags))
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		environ []string
		flags   map[string]string
		want    []string // each must appear in the error
	}{
		{
			name: "unknown top-level key",
			yaml: "sever: {port: 1}",
			want: []string{`config: unknown key "sever"`},
		},
		{
			name: "unknown nested key",
			yaml: "server: {prot: 1}",
			want: []string{`config: unknown key "server.prot"`},
		},
		{
			name: "unknown key in a job type",
			yaml: "job_types: {data: {limits: {memroy: 1g}}}",
			want: []string{`config: unknown key "job_types.data.limits.memroy"`},
		},
		{
			name:    "ui.enabled is a boolean",
			environ: []string{"TAKO_UI_ENABLED=maybe"},
			want:    []string{"ui.enabled"},
		},
		{
			name: "unknown key under ui",
			yaml: "ui: {enable: false}",
			want: []string{`config: unknown key "ui.enable"`},
		},
		{
			name: "keys are case-sensitive",
			yaml: "Server: {port: 1}",
			want: []string{`config: unknown key "Server"`},
		},
		{
			name: "dotted key in the file",
			yaml: "server.port: 9000",
			want: []string{`config: unknown key "server.port": write nested keys as blocks (server: {port: ...})`},
		},
		{
			name: "every unknown key is reported",
			yaml: "a: 1\njob_types: {x: {b: 2}}",
			want: []string{`unknown key "a"`, `unknown key "job_types.x.b"`},
		},
		{
			name: "malformed size",
			yaml: "job_types: {default: {limits: {memory: 512x}}}",
			want: []string{`config: job_types.default.limits.memory: malformed size "512x"`},
		},
		{
			name:    "malformed size from env",
			environ: []string{"TAKO_LIMITS_MAX_STDOUT_BYTES=lots"},
			want:    []string{`config: limits.max_stdout_bytes: malformed size "lots"`},
		},
		{
			name: "negative size",
			yaml: "server: {max_body_bytes: -1}",
			want: []string{"config: server.max_body_bytes: negative size -1"},
		},
		{
			name: "malformed duration",
			yaml: "runner: {acquire_timeout: soon}",
			want: []string{`config: runner.acquire_timeout: malformed duration "soon"`},
		},
		{
			name: "not a number",
			yaml: "server: {port: eighty}",
			want: []string{"config: server.port: "},
		},
		{
			name: "block where a value belongs",
			yaml: "job_types: {data: {preload: [{numpy: 1}]}}",
			want: []string{"config: job_types.data.preload[0]: "},
		},
		{
			name: "negative job type timeout",
			yaml: "job_types: {data: {limits: {timeout: -5s}}}",
			want: []string{"config: job_types.data.limits.timeout: -5s must not be negative"},
		},
		{
			name: "negative max_timeout",
			yaml: "limits: {max_timeout: -1s}",
			want: []string{"config: limits.max_timeout: -1s must be positive"},
		},
		{
			name: "job type timeout above max_timeout",
			yaml: "job_types: {data: {limits: {timeout: 600s}}}",
			want: []string{"config: job_types.data.limits.timeout (600s) exceeds limits.max_timeout (300s)"},
		},
		{
			name: "port out of range",
			yaml: "server: {port: 70000}",
			want: []string{"config: server.port: 70000 is not a port"},
		},
		{
			name: "empty host",
			yaml: "server: {host: ''}",
			want: []string{"config: server.host: must not be empty"},
		},
		{
			name: "security mode",
			yaml: "security_mode: lax\njob_types: {data: {security_mode: loose}}",
			want: []string{`config: security_mode: "lax" is not one of permissive, strict`, `config: job_types.data.security_mode: "loose"`},
		},
		{
			name: "runtime",
			yaml: "job_types: {a: {runtime: kata}, b: {runtime: runc, security_mode: strict}}",
			want: []string{`config: job_types.a.runtime: "kata" is not one of runc, runsc`, "config: job_types.b.runtime: runc cannot honour security_mode strict"},
		},
		{
			name: "gvisor runtime",
			yaml: "runner: {gvisor_runtime: 'run sc', gvisor_required_args: [host-fifo]}",
			want: []string{`config: runner.gvisor_runtime: "run sc" is not a Docker runtime name`, `config: runner.gvisor_required_args[0]: "host-fifo" is not a runsc flag`},
		},
		{
			name: "network",
			yaml: "job_types: {data: {network: host}}",
			want: []string{`config: job_types.data.network: "host" is not one of none, bridge`},
		},
		{
			name: "memory below the minimum",
			yaml: "job_types: {data: {limits: {memory: 1m}}}",
			want: []string{"config: job_types.data.limits.memory: 1MiB is below the minimum of 6MiB"},
		},
		{
			name: "cpus out of range",
			yaml: "job_types: {a: {limits: {cpus: 65}}, b: {limits: {cpus: -1}}}",
			want: []string{"config: job_types.a.limits.cpus: 65 must be", "config: job_types.b.limits.cpus: -1 must be"},
		},
		{
			name: "pids",
			yaml: "job_types: {data: {limits: {pids: -1}}}",
			want: []string{"config: job_types.data.limits.pids: -1 must be at least 1"},
		},
		{
			name: "pool bounds",
			yaml: "job_types: {a: {pool: {min: 3, max: 2}}, b: {pool: {min: -1}}}",
			want: []string{"config: job_types.a.pool.max: 2 is less than job_types.a.pool.min (3)", "config: job_types.b.pool.min: -1 must not be negative"},
		},
		{
			name: "max_concurrent",
			yaml: "runner: {max_concurrent: 0}",
			want: []string{"config: runner.max_concurrent: 0 must be at least 1"},
		},
		{
			name: "max_concurrent_starts",
			yaml: "runner: {max_concurrent_starts: 0}",
			want: []string{"config: runner.max_concurrent_starts: 0 must be at least 1"},
		},
		{
			name: "sync_history_commit",
			yaml: "database: {sync_history_commit: later}",
			want: []string{`config: database.sync_history_commit: "later" must be async or sync`},
		},
		{
			name: "job type name",
			yaml: "job_types: {Data: {}}",
			want: []string{`config: job_types.Data: "Data" is not a job type name`},
		},
		{
			name: "system package",
			yaml: "job_types: {data: {system_packages: [python3-numpy, 'curl; rm -rf /']}}",
			want: []string{`config: job_types.data.system_packages[1]: "curl; rm -rf /" is not a Debian package name`},
		},
		{
			name: "requirement",
			yaml: "job_types: {data: {requirements: [numpy, --index-url=https://evil.example]}}",
			want: []string{"config: job_types.data.requirements[1]: ", "pip option"},
		},
		{
			name: "preload",
			yaml: "job_types: {data: {preload: [numpy, 'os; import x']}}",
			want: []string{`config: job_types.data.preload[1]: "os; import x" is not a Python module name`},
		},
		{
			name: "env name",
			yaml: "job_types: {data: {env: {'1BAD': x}}}",
			want: []string{`config: job_types.data.env: "1BAD" is not an environment variable name`},
		},
		{
			name: "log level and format",
			yaml: "log: {level: loud, format: xml}",
			want: []string{`config: log.level: "loud"`, `config: log.format: "xml"`},
		},
		{
			name: "pip URLs",
			yaml: "pip: {index_url: 'ftp://x/simple', extra_index_urls: [not-a-url]}",
			want: []string{`config: pip.index_url: "ftp://x/simple" is not an http(s) URL`, `config: pip.extra_index_urls[0]: "not-a-url"`},
		},
		{
			name:    "unknown TAKO_ variable",
			environ: []string{"TAKO_SERVER_PROT=1"},
			want:    []string{"config: environment variable TAKO_SERVER_PROT matches no configuration key"},
		},
		{
			name:    "TAKO_ variable naming a block",
			environ: []string{"TAKO_SERVER=1"},
			want:    []string{"environment variable TAKO_SERVER matches no configuration key"},
		},
		{
			name:    "TAKO_ variable naming a job type without a key",
			environ: []string{"TAKO_JOB_TYPES_DATA=1"},
			want:    []string{"environment variable TAKO_JOB_TYPES_DATA matches no configuration key"},
		},
		{
			name:    "ambiguous job type in env",
			yaml:    "job_types: {my-type: {}, my_type: {}}",
			environ: []string{"TAKO_JOB_TYPES_MY_TYPE_NETWORK=bridge"},
			want:    []string{`environment variable TAKO_JOB_TYPES_MY_TYPE_NETWORK: "my-type" and "my_type" are both written MY_TYPE`},
		},
		{
			name:    "unknown role",
			environ: []string{"TAKO_SERVER_ROLE=front"},
			want:    []string{`server.role: "front" is not one of all, api, worker`},
		},
		{
			name:  "api role without a database",
			flags: map[string]string{"server.role": "api"},
			want:  []string{"database.url: must be set when server.role is api"},
		},
		{
			name:    "worker of a job type that does not exist",
			yaml:    "job_types: {data: {}}",
			environ: []string{"TAKO_WORKER_JOB_TYPES=data,dta"},
			want:    []string{`worker.job_types[1]: "dta" is not a configured job type`},
		},
		{
			name:  "unknown flag key",
			flags: map[string]string{"server.prot": "1"},
			want:  []string{`config: flag sets unknown key "server.prot"`},
		},
		{
			name: "not YAML",
			yaml: "server: [",
			want: []string{"config: read ", "tako.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml, tt.environ, tt.flags)
			if err == nil {
				t.Fatalf("Load succeeded, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := filepath.Join(dir, "first.yaml")
	second := filepath.Join(dir, "second.yaml")
	absent := filepath.Join(dir, "absent.yaml")
	for path, port := range map[string]string{first: "1001", second: "1002"} {
		if err := os.WriteFile(path, []byte("server: {port: "+port+"}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		opts     LoadOptions
		wantPath string
		wantPort int
		wantErr  string
	}{
		{name: "explicit file", opts: LoadOptions{File: second, SearchPaths: []string{first}}, wantPath: second, wantPort: 1002},
		{name: "TAKO_CONFIG", opts: LoadOptions{Environ: []string{"TAKO_CONFIG=" + second}, SearchPaths: []string{first}}, wantPath: second, wantPort: 1002},
		{
			name:     "Getenv supplies TAKO_CONFIG",
			opts:     LoadOptions{Getenv: func(k string) string { return map[string]string{"TAKO_CONFIG": second}[k] }},
			wantPath: second, wantPort: 1002,
		},
		{name: "explicit file beats TAKO_CONFIG", opts: LoadOptions{File: first, Environ: []string{"TAKO_CONFIG=" + second}}, wantPath: first, wantPort: 1001},
		{name: "first search path that exists", opts: LoadOptions{SearchPaths: []string{absent, second, first}}, wantPath: second, wantPort: 1002},
		{name: "no file: defaults only", opts: LoadOptions{SearchPaths: []string{absent}}, wantPath: "", wantPort: 8000},
		{name: "missing explicit file", opts: LoadOptions{File: absent}, wantErr: "config: file " + absent + " (from --config) does not exist"},
		{name: "missing TAKO_CONFIG file", opts: LoadOptions{Environ: []string{"TAKO_CONFIG=" + absent}}, wantErr: "config: file " + absent + " (from TAKO_CONFIG) does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Path != tt.wantPath || cfg.Server.Port != tt.wantPort {
				t.Errorf("Path = %q, port = %d; want %q, %d", cfg.Path, cfg.Server.Port, tt.wantPath, tt.wantPort)
			}
		})
	}
}

func TestDefaultSearchPaths(t *testing.T) {
	t.Parallel()
	paths := DefaultSearchPaths()
	if paths[0] != "tako.yaml" || paths[len(paths)-1] != "/etc/tako/tako.yaml" {
		t.Errorf("DefaultSearchPaths() = %q, want ./tako.yaml first and /etc/tako/tako.yaml last", paths)
	}
}
