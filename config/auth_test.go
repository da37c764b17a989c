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
	if err := os.WriteFile(keysFile, []byte("# mounted secret\nops: ops-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "auth: {api_keys: {ci: ci-key-0123456789abcdef}, api_keys_file: "+keysFile+"}",
		[]string{"TAKO_AUTH_API_KEYS_BATCH=batch-key-0123456789abcdef"}, nil)
	keys, err := cfg.APIKeys()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ci":    "ci-key-0123456789abcdef",
		"ops":   "ops-key-0123456789abcdef",
		"BATCH": "batch-key-0123456789abcdef",
	}
	// The name from an environment variable is kept as written.
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys: got %v, want %v", keys, want)
	}
}

func TestAPIKeyErrors(t *testing.T) {
	t.Parallel()
	dup := filepath.Join(t.TempDir(), "dup.yaml")
	if err := os.WriteFile(dup, []byte("ci: another-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notMap := filepath.Join(t.TempDir(), "list.yaml")
	if err := os.WriteFile(notMap, []byte("- a\n- b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml, want string
	}{
		{"short key", "auth: {api_keys: {ci: short}}", "config: auth.api_keys.ci: the key must be at least 16 characters"},
		{"bad name", "auth: {api_keys: {'a b': 0123456789abcdef0}}", "config: auth.api_keys.a b: a key name is"},
		{"shared key", "auth: {api_keys: {a: 0123456789abcdef0, b: 0123456789abcdef0}}", "config: auth.api_keys.b: the same key as a"},
		{"missing file", "auth: {api_keys_file: /nonexistent/keys.yaml}", "config: auth.api_keys_file: open /nonexistent/keys.yaml"},
		{"duplicate name", "auth: {api_keys: {ci: ci-key-0123456789abcdef}, api_keys_file: " + dup + "}", `config: auth.api_keys_file: key name "ci" is also in auth.api_keys`},
		{"file not a map", "auth: {api_keys_file: " + notMap + "}", "is not a YAML map of name: key"},
		{"header", "auth: {header: 'X Key'}", `config: auth.header: "X Key" is not an HTTP header name`},
		{"rate", "server: {rate_limit: {requests_per_second: -1}}", "config: server.rate_limit.requests_per_second: -1 must not be negative"},
		{"burst", "server: {rate_limit: {requests_per_second: 5, burst: 0}}", "config: server.rate_limit.burst: 0 must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.yaml, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

// TestAPIKeysMaskedInConfig: `tako config` shows the names of the keys,
// never the keys.
func TestAPIKeysMaskedInConfig(t *testing.T) {
	t.Parallel()
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "auth: {api_keys: {ci: ci-key-0123456789abcdef}, api_keys_file: "+keysFile+"}", nil, nil)
	var out strings.Builder
	if err := cfg.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "0123456789abcdef") {
		t.Errorf("the key is printed:\n%s", out.String())
	}
	for _, want := range []string{"ci: '********'", "api_keys_file: " + keysFile} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
