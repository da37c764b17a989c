package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/knadh/koanf/maps"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

// LoadOptions says where Load finds the configuration besides its built-in
// defaults.
type LoadOptions struct {
	// File is an explicit configuration file (--config); "" means
	// TAKO_CONFIG, then the search paths.
	File string
	// Getenv looks up TAKO_CONFIG; nil means looking it up in Environ.
	Getenv func(string) string
	// Environ is the whole environment as "K=V" entries; its TAKO_*
	// variables set keys.
	Environ []string
	// Flags are command-line overrides keyed by configuration key, such as
	// "server.port": "9000". List values are comma-separated.
	Flags map[string]string
	// SearchPaths are the files tried, in order, when neither File nor
	// TAKO_CONFIG names one; nil means DefaultSearchPaths().
	SearchPaths []string
}

// DefaultSearchPaths returns where Load looks for tako.yaml when no file is
// named: the working directory, the user's configuration directory, then
// /etc/tako.
func DefaultSearchPaths() []string {
	paths := []string{"tako.yaml"}
	if dir, err := os.UserConfigDir(); err == nil {
		paths = append(paths, filepath.Join(dir, "tako", "tako.yaml"))
	}
	return append(paths, filepath.Join("/etc", "tako", "tako.yaml"))
}

// Load builds the configuration from, in increasing precedence, the
// built-in defaults, the configuration file, TAKO_* environment variables
// and opts.Flags, and validates it. Every error names the key, variable or
// file at fault. The returned Config records the file it read in Path.
func Load(opts LoadOptions) (*Config, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = lookupIn(opts.Environ)
	}
	path, err := findFile(opts.File, getenv(envConfigFile), opts.SearchPaths)
	if err != nil {
		return nil, err
	}

	k := koanf.New(".")
	if err := k.Load(layer(defaults()), nil); err != nil {
		return nil, fmt.Errorf("config: load defaults: %w", err)
	}
	if path != "" {
		data, err := readYAMLFile(path, path)
		if err != nil {
			return nil, err
		}
		if err := k.Load(rawbytes.Provider(data), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := expandShortForms(k); err != nil {
			return nil, err
		}
	}

	root := schema()
	env, err := envLayer(root, opts.Environ, k.MapKeys)
	if err != nil {
		return nil, err
	}
	if err := k.Load(layer(env), nil); err != nil {
		return nil, fmt.Errorf("config: load environment: %w", err)
	}
	flags, err := flagLayer(root, opts.Flags)
	if err != nil {
		return nil, err
	}
	if err := k.Load(layer(flags), nil); err != nil {
		return nil, fmt.Errorf("config: load flags: %w", err)
	}

	cfg, err := decode(k, root)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// expandShortForms rewrites the short form of an API key in the file,
// "name: key", as the block "name: {key: key}", so that the environment
// can add a role or quotas to it ("TAKO_AUTH_API_KEYS_<NAME>_ROLE") without
// replacing the key.
func expandShortForms(k *koanf.Koanf) error {
	for _, name := range k.MapKeys(apiKeysKey) {
		path := apiKeysKey + "." + name
		v := k.Get(path)
		if _, block := v.(map[string]any); block {
			continue
		}
		if err := k.Set(path+"."+shortFormField, v); err != nil {
			return fmt.Errorf("config: %s: %w", path, err)
		}
	}
	return nil
}

// findFile returns the configuration file to read: explicit (the --config
// flag), then fromEnv (TAKO_CONFIG), both of which must exist, then the
// first search path that exists. It returns "" when there is none.
func findFile(explicit, fromEnv string, search []string) (string, error) {
	for _, named := range []struct{ path, by string }{{explicit, "--config"}, {fromEnv, envConfigFile}} {
		if named.path == "" {
			continue
		}
		_, err := os.Stat(named.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("config: file %s (from %s) does not exist", named.path, named.by)
		case err != nil:
			return "", fmt.Errorf("config: file %s (from %s): %w", named.path, named.by, err)
		}
		return named.path, nil
	}
	if search == nil {
		search = DefaultSearchPaths()
	}
	for _, p := range search {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			return p, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("config: file %s: %w", p, err)
		}
	}
	return "", nil
}

// layer is a koanf provider of a map built for one Load, keyed by dotted
// paths. koanf's confmap provider deep-copies its map by reflection, which
// was most of the cost of a Load; a map nobody else holds needs no copy.
type layer map[string]any

// Read implements koanf.Provider: the map, nested at its dots.
func (l layer) Read() (map[string]any, error) { return maps.Unflatten(l, "."), nil }

// ReadBytes implements koanf.Provider; a layer has no bytes to parse.
func (l layer) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: a map layer has no bytes")
}

// lookupIn returns a Getenv that reads environ.
func lookupIn(environ []string) func(string) string {
	return func(key string) string {
		value := ""
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				value = v
			}
		}
		return value
	}
}

// defaults are the built-in values of every global key. Job types have
// theirs in DefaultJobType.
func defaults() map[string]any {
	return map[string]any{
		"server.host":           "127.0.0.1",
		"server.port":           8000,
		"server.max_body_bytes": "2MiB",
		"server.allow_unauthenticated_network_access": false,
		"server.rate_limit.requests_per_second":       100,
		"server.rate_limit.burst":                     200,
		"server.allowed_hosts":                        []any{},
		"server.cors_origins":                         []any{},

		"auth.api_keys":                     map[string]any{},
		"auth.api_keys_file":                "",
		"auth.header":                       "X-API-Key",
		"auth.default_quota.max_pending":    100,
		"auth.default_quota.max_concurrent": 0,

		"runner.max_concurrent":        4,
		"runner.max_concurrent_starts": 1,
		"runner.work_dir":              "",
		"runner.acquire_timeout":       "10s",
		"runner.reap_interval":         "30s",
		"runner.uid_range":             "200000-265535",
		"runner.gvisor_runtime":        "runsc",
		"runner.gvisor_required_args":  []any{"--host-fifo=open"},

		"security_mode": "permissive",

		"limits.max_timeout":              "300s",
		"limits.max_stdout_bytes":         "64KiB",
		"limits.max_stderr_bytes":         "64KiB",
		"limits.max_artifact_bytes":       "10MiB",
		"limits.max_total_artifact_bytes": "50MiB",
		"limits.max_output_bytes":         "200MiB",
		"limits.max_artifacts":            100,
		"limits.max_code_bytes":           "100KiB",
		"limits.max_input_bytes":          "1MiB",

		"pip.index_url":        "",
		"pip.extra_index_urls": []any{},
		"pip.trusted_hosts":    []any{},

		"images.base_image":          "debian:bookworm-slim",
		"images.build_timeout":       "15m",
		"images.debian_mirror":       "",
		"images.debian_suite":        "bookworm",
		"images.executor":            "tako-executor",
		"images.build_limits.cpus":   1.0,
		"images.build_limits.memory": "2g",
		"images.build_limits.pids":   512,

		"server.role":      RoleAll,
		"worker.job_types": []string{},

		"cluster.heartbeat_interval": "2s",
		"cluster.node_timeout":       "15s",

		"database.url":                  "",
		"database.max_conns":            20,
		"database.sync_history_commit":  "async",
		"database.auto_start.container": "tako-postgres",
		"database.auto_start.image":     "postgres:16-alpine",
		"database.auto_start.port":      55432,
		"database.auto_start.volume":    "tako-postgres-data",

		"queue.max_pending":    1000,
		"queue.max_attempts":   3,
		"queue.rescue_after":   "0s",
		"queue.retention_days": 30,

		"streaming.keep_chunks": false,
		"streaming.max_streams": 1000,

		"egress.allow_private_networks":   []string{},
		"egress.hosts":                    map[string]any{},
		"webhooks.allow_http":             false,
		"webhooks.allow_private_networks": false,
		"webhooks.retry_schedule":         []string{"5s", "30s", "2m", "10m", "30m", "1h", "2h"},
		"webhooks.secret":                 []string{},
		"webhooks.timeout":                "15s",

		"requirements.allow_ad_hoc":          true,
		"requirements.allow_source_builds":   false,
		"requirements.max_concurrent_builds": 1,
		"requirements.failure_ttl":           "5m",
		"requirements.cache.max_images":      50,
		"requirements.cache.max_bytes":       "20GiB",

		"log.level":  "info",
		"log.format": "auto",

		"metrics.enabled":         true,
		"metrics.require_auth":    true,
		"metrics.sample_interval": "5s",

		"ui.enabled": true,
	}
}
