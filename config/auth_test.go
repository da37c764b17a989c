package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte("# mounted secret\nops: ops-key-0123456789abcdef\n"+
		"audit: {key: audit-key-0123456789abcdef, role: admin, max_pending: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `
auth:
  api_keys:
    ci: ci-key-0123456789abcdef
    batch2: {key: batch2-key-0123456789abcdef, max_pending: 5, max_concurrent: 2}
    root: {key: root-key-0123456789abcdef, role: admin}
  api_keys_file: ` + keysFile + `
  default_quota: {max_pending: 50, max_concurrent: 3}
`
	cfg := mustLoad(t, file, []string{
		"TAKO_AUTH_API_KEYS_BATCH=batch-key-0123456789abcdef",
		// The environment adds a role and a quota to the file's short form.
		"TAKO_AUTH_API_KEYS_ci_ROLE=admin", "TAKO_AUTH_API_KEYS_ci_MAX_CONCURRENT=1",
		// A whole key from its fields.
		"TAKO_AUTH_API_KEYS_NIGHTLY_KEY=nightly-key-0123456789abcdef", "TAKO_AUTH_API_KEYS_NIGHTLY_MAX_PENDING=7",
		"TAKO_AUTH_API_KEYS_NIGHTLY_ROLE=user",
	}, nil)
	keys, err := cfg.APIKeys()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]APIKey{
		"ci":      {Key: "ci-key-0123456789abcdef", Role: RoleAdmin, MaxPending: 50, MaxConcurrent: 1},
		"batch2":  {Key: "batch2-key-0123456789abcdef", Role: RoleUser, MaxPending: 5, MaxConcurrent: 2},
		"root":    {Key: "root-key-0123456789abcdef", Role: RoleAdmin, MaxPending: 50, MaxConcurrent: 3},
		"ops":     {Key: "ops-key-0123456789abcdef", Role: RoleUser, MaxPending: 50, MaxConcurrent: 3},
		"audit":   {Key: "audit-key-0123456789abcdef", Role: RoleAdmin, MaxPending: 0, MaxConcurrent: 3},
		"BATCH":   {Key: "batch-key-0123456789abcdef", Role: RoleUser, MaxPending: 50, MaxConcurrent: 3},
		"NIGHTLY": {Key: "nightly-key-0123456789abcdef", Role: RoleUser, MaxPending: 7, MaxConcurrent: 3},
	}
	// The name from an environment variable is kept as written.
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys:\n got %v\nwant %v", keys, want)
	}
	if !keys["root"].Admin() || keys["ops"].Admin() {
		t.Error("Admin() does not follow the role")
	}
}

func TestDefaultQuota(t *testing.T) {
	t.Parallel()
	keys, err := mustLoad(t, "auth: {api_keys: {ci: ci-key-0123456789abcdef}}", nil, nil).APIKeys()
	if err != nil {
		t.Fatal(err)
	}
	if got := keys["ci"]; got.MaxPending != 100 || got.MaxConcurrent != 0 || got.Role != RoleUser {
		t.Errorf("a key with the built-in defaults: %+v; want max_pending 100, max_concurrent 0 (no limit), user", got)
	}
}

func TestAPIKeyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dup := write("dup.yaml", "ci: another-key-0123456789\n")
	notMap := write("list.yaml", "- a\n- b\n")
	badRole := write("role.yaml", "ci: {key: 0123456789abcdef0, role: root}\n")
	badField := write("field.yaml", "ci: {key: 0123456789abcdef0, rol: admin}\n")
	badQuota := write("quota.yaml", "ci: {key: 0123456789abcdef0, max_pending: many}\n")
	negQuota := write("neg.yaml", "ci: {key: 0123456789abcdef0, max_concurrent: -2}\n")
	badShape := write("shape.yaml", "ci: [0123456789abcdef0]\n")
	tests := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"short key", "auth: {api_keys: {ci: short}}", nil, "config: auth.api_keys.ci: the key must be at least 16 characters"},
		{"block without key", "auth: {api_keys: {ci: {role: admin}}}", nil, "config: auth.api_keys.ci: the key must be at least 16 characters"},
		{"bad name", "auth: {api_keys: {'a b': 0123456789abcdef0}}", nil, "config: auth.api_keys.a b: a key name is"},
		{"shared key", "auth: {api_keys: {a: 0123456789abcdef0, b: 0123456789abcdef0}}", nil, "config: auth.api_keys.b: the same key as a"},
		{"bad role", "auth: {api_keys: {ci: {key: 0123456789abcdef0, role: root}}}", nil, `config: auth.api_keys.ci.role: "root" is not one of admin, user`},
		{"negative quota", "auth: {api_keys: {ci: {key: 0123456789abcdef0, max_pending: -1}}}", nil, "config: auth.api_keys.ci.max_pending: -1 must not be negative"},
		{"unknown block key", "auth: {api_keys: {ci: {key: 0123456789abcdef0, quota: 3}}}", nil, `config: unknown key "auth.api_keys.ci.quota"`},
		{"quota not a number", "auth: {api_keys: {ci: {key: 0123456789abcdef0, max_concurrent: lots}}}", nil, "config: auth.api_keys.ci.max_concurrent"},
		{"env role", "", []string{"TAKO_AUTH_API_KEYS_CI=0123456789abcdef0", "TAKO_AUTH_API_KEYS_CI_ROLE=owner"}, `config: auth.api_keys.CI.role: "owner" is not one of admin, user`},
		{"env quota", "", []string{"TAKO_AUTH_API_KEYS_CI=0123456789abcdef0", "TAKO_AUTH_API_KEYS_CI_MAX_PENDING=ten"}, "config: auth.api_keys.CI.max_pending"},
		{"env role without key", "", []string{"TAKO_AUTH_API_KEYS_CI_ROLE=admin"}, "config: auth.api_keys.CI: the key must be at least 16 characters"},
		{"default quota", "auth: {default_quota: {max_pending: -5}}", nil, "config: auth.default_quota.max_pending: -5 must not be negative"},
		{"default concurrency", "", []string{"TAKO_AUTH_DEFAULT_QUOTA_MAX_CONCURRENT=-1"}, "config: auth.default_quota.max_concurrent: -1 must not be negative"},
		{"missing file", "auth: {api_keys_file: /nonexistent/keys.yaml}", nil, "config: auth.api_keys_file: open /nonexistent/keys.yaml"},
		{"duplicate name", "auth: {api_keys: {ci: ci-key-0123456789abcdef}, api_keys_file: " + dup + "}", nil, `config: auth.api_keys_file: key name "ci" is also in auth.api_keys`},
		{"file not a map", "auth: {api_keys_file: " + notMap + "}", nil, "is not a YAML map of name: key"},
		{"file role", "auth: {api_keys_file: " + badRole + "}", nil, `config: auth.api_keys_file: ci.role: "root" is not one of admin, user`},
		{"file field", "auth: {api_keys_file: " + badField + "}", nil, `config: auth.api_keys_file: ci: unknown key "rol"`},
		{"file quota", "auth: {api_keys_file: " + badQuota + "}", nil, `config: auth.api_keys_file: ci.max_pending: "many" is not a whole number`},
		{"file negative quota", "auth: {api_keys_file: " + negQuota + "}", nil, "config: auth.api_keys_file: ci.max_concurrent: -2 must not be negative"},
		{"file entry shape", "auth: {api_keys_file: " + badShape + "}", nil, "config: auth.api_keys_file: ci: must be a key or a block"},
		{"header", "auth: {header: 'X Key'}", nil, `config: auth.header: "X Key" is not an HTTP header name`},
		{"rate", "server: {rate_limit: {requests_per_second: -1}}", nil, "config: server.rate_limit.requests_per_second: -1 must not be negative"},
		{"burst", "server: {rate_limit: {requests_per_second: 5, burst: 0}}", nil, "config: server.rate_limit.burst: 0 must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml, tt.env, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

func TestServerHostsAndOrigins(t *testing.T) {
	t.Parallel()
	good := mustLoad(t, `server: {allowed_hosts: [api.example.com, "api.example.com:8443", 10.0.0.5, "[::1]:8000", "::1", "*.internal.example", "*", localhost.], cors_origins: ["https://app.example.com", "http://127.0.0.1:3000/"]}`, nil, nil)
	if len(good.Server.AllowedHosts) != 8 || len(good.Server.CORSOrigins) != 2 {
		t.Errorf("loaded %v and %v", good.Server.AllowedHosts, good.Server.CORSOrigins)
	}
	env := mustLoad(t, "", []string{"TAKO_SERVER_ALLOWED_HOSTS=a.example, b.example:81", "TAKO_SERVER_CORS_ORIGINS=https://x.example"}, nil)
	if !reflect.DeepEqual(env.Server.AllowedHosts, []string{"a.example", "b.example:81"}) || !reflect.DeepEqual(env.Server.CORSOrigins, []string{"https://x.example"}) {
		t.Errorf("from the environment: %v %v", env.Server.AllowedHosts, env.Server.CORSOrigins)
	}
	tests := []struct{ yaml, want string }{
		{`server: {allowed_hosts: ["http://api.example.com"]}`, `config: server.allowed_hosts[0]: "http://api.example.com" is not a host`},
		{`server: {allowed_hosts: [ok.example, "a b"]}`, `config: server.allowed_hosts[1]: "a b" is not a host`},
		{`server: {allowed_hosts: ["api.example.com:0"]}`, `server.allowed_hosts[0]: "api.example.com:0" is not a host`},
		{`server: {allowed_hosts: ["api.example.com:99999"]}`, `server.allowed_hosts[0]`},
		{`server: {allowed_hosts: ["api.example.com/x"]}`, `server.allowed_hosts[0]`},
		{`server: {allowed_hosts: [""]}`, `server.allowed_hosts[0]: "" is not a host`},
		{`server: {allowed_hosts: ["[10.0.0.1]"]}`, `server.allowed_hosts[0]`},
		{`server: {allowed_hosts: ["*example.com"]}`, `server.allowed_hosts[0]`},
		{`server: {cors_origins: ["*"]}`, `config: server.cors_origins[0]: "*" is not an origin: name each origin; wildcards are not allowed`},
		{`server: {cors_origins: ["https://*.example.com"]}`, `server.cors_origins[0]: "https://*.example.com" is not an origin: name each origin`},
		{`server: {cors_origins: ["app.example.com"]}`, `server.cors_origins[0]: "app.example.com" is not an origin: write it as scheme://host[:port]`},
		{`server: {cors_origins: ["https://app.example.com/path"]}`, `server.cors_origins[0]: "https://app.example.com/path" is not an origin: an origin has no user, path, query or fragment`},
		{`server: {cors_origins: ["ftp://app.example.com"]}`, `server.cors_origins[0]`},
		{`server: {cors_origins: ["https://a.example,https://b.example"]}`, `server.cors_origins[0]`},
	}
	for _, tt := range tests {
		_, err := load(t, tt.yaml, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.yaml, err, tt.want)
		}
	}
}

func TestAllowedHostsDefault(t *testing.T) {
	t.Parallel()
	loopback := []string{"localhost", "127.0.0.1", "[::1]"}
	tests := []struct {
		host    string
		set     []string
		keys    bool
		want    []string
		because string
	}{
		{"127.0.0.1", nil, false, loopback, "the default server: loopback names only"},
		{"127.0.0.1", nil, true, loopback, "keys do not widen a loopback server"},
		{"localhost", nil, false, loopback, "localhost"},
		{"127.0.0.2", nil, false, append(loopback, "127.0.0.2"), "another loopback address"},
		{"::1", nil, false, loopback, "the IPv6 loopback"},
		{"0.0.0.0", nil, true, []string{"*"}, "a wildcard address with keys answers any name"},
		{"10.0.0.5", nil, true, []string{"*"}, "a network address with keys answers any name"},
		{"0.0.0.0", nil, false, loopback, "an open wildcard server answers loopback names only unless told"},
		{"10.0.0.5", nil, false, append(loopback, "10.0.0.5"), "an open network server answers its address"},
		{"fd00::5", nil, false, append(loopback, "[fd00::5]"), "an IPv6 network address"},
		{"0.0.0.0", []string{"tako.internal"}, true, []string{"tako.internal"}, "a list is taken as it is"},
	}
	for _, tt := range tests {
		c := &Config{Server: ServerConfig{Host: tt.host, AllowedHosts: tt.set}}
		if got := c.AllowedHosts(tt.keys); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s (host %s, keys %v): %v, want %v", tt.because, tt.host, tt.keys, got, tt.want)
		}
	}
}

// TestAPIKeysMaskedInConfig: `tako config` shows the names, roles and
// quotas of the keys, never the keys, and loads again.
func TestAPIKeysMaskedInConfig(t *testing.T) {
	t.Parallel()
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "auth: {api_keys: {ci: ci-key-0123456789abcdef, ops: {key: ops-key-0123456789abcdef, role: admin, max_pending: 3}}, api_keys_file: "+keysFile+"}", nil, nil)
	var out strings.Builder
	if err := cfg.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "0123456789abcdef") {
		t.Errorf("the key is printed:\n%s", out.String())
	}
	for _, want := range []string{"key: '********'", "role: admin", "max_pending: 3", "api_keys_file: " + keysFile, "default_quota:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
