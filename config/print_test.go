package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteYAML(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `
pip:
  index_url: https://user:hunter2@pypi.internal/simple
  extra_index_urls: [https://mirror.example/simple]
job_types:
  data:
    limits: {memory: 1g, timeout: 90s}
    env: {API_KEY: abc123, LANG: C.UTF-8, IDEMPOTENCY_KEY: k1}
`, nil, nil)
	var buf bytes.Buffer
	if err := cfg.WriteYAML(&buf); err != nil {
		t.Fatalf("WriteYAML: %v", err)
	}
	out := buf.String()
	for _, want := range []string{
		"index_url: https://user:********@pypi.internal/simple",
		"- https://mirror.example/simple",
		"memory: 1GiB",
		"timeout: 1m30s",
		"max_body_bytes: 2MiB",
		"max_code_bytes: 100KiB",
		"acquire_timeout: 10s",
		`API_KEY: '********'`,
		"LANG: C.UTF-8",
		"IDEMPOTENCY_KEY: k1",
		"default:", // the built-in job type is in effect, so it is printed
		"security_mode: permissive",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteYAML output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2", "abc123"} {
		if strings.Contains(out, secret) {
			t.Errorf("WriteYAML output shows secret %q:\n%s", secret, out)
		}
	}

	// The output is a valid configuration that means the same, masked
	// values aside.
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := Load(LoadOptions{File: path})
	if err != nil {
		t.Fatalf("Load(printed): %v", err)
	}
	r1, _ := cfg.Registry()
	r2, _ := again.Registry()
	d1, _ := r1.Get("data")
	d2, _ := r2.Get("data")
	d2.Env["API_KEY"] = "abc123"
	if !reflect.DeepEqual(d1, d2) || again.Limits != cfg.Limits || !reflect.DeepEqual(again.Server, cfg.Server) {
		t.Errorf("printed configuration loads differently:\n%+v\n%+v", d1, d2)
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://u:p@host/simple", "https://u:********@host/simple"},
		{"https://__token__:pypi-AgEI@pypi.example:8443/simple/?x=1", "https://__token__:********@pypi.example:8443/simple/?x=1"},
		{"https://u:p@ss@host/simple", "https://u:********@host/simple"},
		{"http://u:@host", "http://u:********@host"},
		{"https://user@host/simple", "https://user@host/simple"},
		{"https://host/simple", "https://host/simple"},
		{"https://host/a@b:c", "https://host/a@b:c"},
		{"not a url: u:p@x", "not a url: u:p@x"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := maskURL(tt.in); got != tt.want {
			t.Errorf("maskURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSecretKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"password", true},
		{"db_password", true},
		{"client_secret", true},
		{"token", true},
		{"api_keys", true},
		{"API_KEY", true},
		{"ssh_key", true},
		{"idempotency_key", false},
		{"index_url", false},
		{"host", false},
	}
	for _, tt := range tests {
		if got := secretKey(tt.name); got != tt.want {
			t.Errorf("secretKey(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMaskEmptySecret(t *testing.T) {
	t.Parallel()
	tree := map[string]any{"api_keys": []any{}, "auth": map[string]any{"token": "t0k", "password": ""}}
	got := mask("", tree)
	want := map[string]any{"api_keys": []any{}, "auth": map[string]any{"token": masked, "password": ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mask = %v, want %v (unset secrets stay visible as unset)", got, want)
	}
}
