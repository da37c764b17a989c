package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tako.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBadConfigStopsStartup checks that `tako server` refuses a bad
// configuration before touching Docker, naming the key at fault.
func TestBadConfigStopsStartup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config, wantKey string
	}{
		{"unknown key", "server:\n  prot: 9000\n", "server.prot"},
		{"unknown job type key", "job_types:\n  data:\n    limits: {memroy: 1g}\n", "job_types.data.limits.memroy"},
		{"bad size", "job_types:\n  default:\n    limits: {memory: 512x}\n", "job_types.default.limits.memory"},
		{"negative timeout", "limits:\n  max_timeout: -5s\n", "limits.max_timeout"},
		{"timeout above max_timeout", "limits: {max_timeout: 60s}\njob_types:\n  slow:\n    limits: {timeout: 120s}\n", "job_types.slow.limits.timeout"},
		{"bridge in strict mode", "security_mode: strict\njob_types:\n  web:\n    network: bridge\n", "job_types.web.network"},
		{"bad allowlist entry", "job_types:\n  web:\n    network: {allow: [api.example.com, 'api.example.com:99999']}\n", "job_types.web.network.allow[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tt.config)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"tako", "server", "--config", path}, nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("server error = %v, want one naming %s", err, tt.wantKey)
			}
			err = run(context.Background(), []string{"tako", "validate", path}, nil, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("validate error = %v, want one naming %s", err, tt.wantKey)
			}
		})
	}
}

func TestValidateRepositoryConfig(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"tako", "validate", "../../tako.yaml"}, nil, &stdout, &stdout); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !strings.Contains(stdout.String(), "ok, 2 job types: data, default") {
		t.Errorf("validate output %q", stdout.String())
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "pip:\n  index_url: https://user:hunter2@pypi.example.com/simple\n")
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"tako", "config", "--config", path}, []string{"TAKO_SERVER_PORT=9000"}, &stdout, &stdout); err != nil {
		t.Fatalf("config: %v", err)
	}
	out := stdout.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "port: 9000") {
		t.Errorf("config output:\n%s", out)
	}
}

// TestSetupIsIdempotent runs `tako setup` twice: the second run finds every
// image and says there is nothing to do.
func TestSetupIsIdempotent(t *testing.T) {
	startServer(t) // builds the images once for the whole package
	environ := append(os.Environ(), "TAKO_RUNNER_WORK_DIR="+t.TempDir())
	var out bytes.Buffer
	if err := run(context.Background(), []string{"tako", "setup", "--config", "../../tako.yaml"}, environ, &out, &out); err != nil {
		t.Fatalf("setup: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "nothing to do: 2 images are up to date") {
		t.Errorf("second setup output:\n%s", out.String())
	}
}

func TestDockerUnreachableIsOneClearSentence(t *testing.T) {
	t.Parallel()
	environ := []string{"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-docker.sock")}
	for _, cmd := range []string{"setup", "server"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"tako", cmd, "--config", "../../tako.yaml"}, environ, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "cannot reach the Docker engine") || !strings.Contains(err.Error(), "start Docker or set DOCKER_HOST") {
			t.Errorf("tako %s error = %v", cmd, err)
		}
	}
}

// TestDatabaseUnreachableIsOneClearSentence starts a server against a
// database that does not answer.
func TestDatabaseUnreachableIsOneClearSentence(t *testing.T) {
	startServer(t) // the images
	environ := append(os.Environ(), "TAKO_DATABASE_URL=postgres://postgres:secret-pw@127.0.0.1:1/tako", "TAKO_RUNNER_WORK_DIR="+t.TempDir())
	var out bytes.Buffer
	err := run(context.Background(), []string{"tako", "server", "--config", "../../tako.yaml"}, environ, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot reach PostgreSQL at 127.0.0.1:1") || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("server error = %v", err)
	}
}

// TestConfigBeforeCommand: Tako VM's CLI takes --config before the
// command; tako takes it there too.
func TestConfigBeforeCommand(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"tako", "--config", "f.yaml", "validate"}, []string{"tako", "validate", "--config", "f.yaml"}},
		{[]string{"tako", "-c", "f.yaml", "server", "--port", "1"}, []string{"tako", "server", "-c", "f.yaml", "--port", "1"}},
		{[]string{"tako", "--config=f.yaml", "config"}, []string{"tako", "config", "--config=f.yaml"}},
		{[]string{"tako", "validate", "--config", "f.yaml"}, []string{"tako", "validate", "--config", "f.yaml"}},
		{[]string{"tako", "--config", "f.yaml"}, []string{"tako", "--config", "f.yaml"}},
	}
	for _, tt := range tests {
		if got := configAfterCommand(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("configAfterCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"tako", "--config", "../../tako.yaml", "validate"}, nil, &out, &errOut); err != nil || !strings.Contains(out.String(), "ok") {
		t.Errorf("tako --config FILE validate: %v %s %s", err, out.String(), errOut.String())
	}
}

// TestHelpRunsNothing: -h prints a command's help and stops there, with
// success, for every command that reads the configuration.
func TestHelpRunsNothing(t *testing.T) {
	for _, cmd := range []string{"server", "setup", "doctor", "validate", "config"} {
		var out, errOut strings.Builder
		// A configuration that does not exist: any command that went on
		// past its help would fail on it.
		err := run(context.Background(), []string{"tako", cmd, "--config", "/nonexistent/tako.yaml", "-h"}, nil, &out, &errOut)
		if err != nil || !strings.Contains(errOut.String(), "-config") || out.Len() != 0 {
			t.Errorf("tako %s -h: %v\nstdout %q\nstderr %q", cmd, err, out.String(), errOut.String())
		}
	}
}
