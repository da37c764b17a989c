package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tako-run/tako/config"
)

// What every recipe must agree on with tako.
const (
	// port is where tako serves the API, /health and /metrics (server.port).
	port = 8000
	// healthPath is the probe path: it never needs a key.
	healthPath = "/health"
	// dockerSocket is the Docker Engine a worker runs jobs in.
	dockerSocket = "/var/run/docker.sock"
	// serverConfig is the tako.yaml baked into the image (TAKO_CONFIG).
	serverConfig = "server.yaml"
)

// Role values of TAKO_SERVER_ROLE (server.role).
const (
	roleAPI    = "api"
	roleWorker = "worker"
)

// serverImage returns the image `tako image` builds, tako-server:<version>,
// with the version read from cmd/tako/run.go.
func serverImage(t *testing.T) string {
	t.Helper()
	path := filepath.Join("..", "cmd", "tako", "run.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("read tako's version: %v", err)
	}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name != "version" || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("read tako's version: %v", err)
					}
					return "tako-server:" + v
				}
			}
		}
	}
	t.Fatalf("no string var version in %s", path)
	return ""
}

// placeholder stands for the value of a secret the environment gets from
// elsewhere (a Secret, a Nomad variable), in a form tako accepts.
func placeholder(name string) string {
	if name == "TAKO_DATABASE_URL" {
		return "postgres://tako:secret@postgres:5432/tako"
	}
	return strings.Repeat("k", 2*config.MinAPIKeyLength)
}

// loadEnv feeds env, a workload's environment as "K=V" entries, to tako's
// configuration loader with the image's configuration file, as the server
// in the image would, and returns the configuration; its server.role must
// be role.
func loadEnv(t *testing.T, env []string, role string) *config.Config {
	t.Helper()
	environ := []string{"TAKO_CONFIG=" + serverConfig}
	seen := map[string]bool{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if seen[name] {
			t.Errorf("%s is set twice", name)
		}
		seen[name] = true
		environ = append(environ, kv)
	}
	cfg, err := config.Load(config.LoadOptions{Environ: environ, SearchPaths: []string{}})
	if err != nil {
		t.Fatalf("tako refuses the environment %q: %v", environ, err)
	}
	if cfg.Server.Role != role {
		t.Errorf("server.role %q, want %q", cfg.Server.Role, role)
	}
	if cfg.Server.Port != port {
		t.Errorf("server.port %d, want %d", cfg.Server.Port, port)
	}
	if ip := cfg.Server.Host; ip == "127.0.0.1" || ip == "localhost" {
		t.Errorf("server.host %s: nothing outside the container can reach it", ip)
	}
	keys, err := cfg.APIKeys()
	if err != nil {
		t.Errorf("API keys: %v", err)
	} else if len(keys) == 0 {
		t.Error("no API key: tako refuses a network address without one")
	}
	if !cfg.Metrics.Enabled || cfg.Metrics.RequireAuth {
		t.Errorf("metrics.enabled %v, metrics.require_auth %v: Prometheus scrapes /metrics without a key",
			cfg.Metrics.Enabled, cfg.Metrics.RequireAuth)
	}
	return cfg
}

// valueOf returns the value of name in env ("K=V" entries), "" if unset.
func valueOf(env []string, name string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v
		}
	}
	return ""
}

// readmeHas fails t unless the README in dir holds every one of lines.
func readmeHas(t *testing.T, dir string, lines ...string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range lines {
		if !strings.Contains(string(data), s) {
			t.Errorf("%s/README.md does not say %q", dir, s)
		}
	}
}
