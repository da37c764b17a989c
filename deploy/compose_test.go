package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeService is the part of a service of compose.yaml the checks read.
type composeService struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
	Deploy      struct {
		Mode     string `yaml:"mode"`
		Replicas *int   `yaml:"replicas"`
	} `yaml:"deploy"`
}

// defaultsRe matches the ${NAME:-default} substitutions of compose.yaml.
var defaultsRe = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

// requiredRe matches its ${NAME:?message} substitutions: settings with no
// safe default, which the file refuses to deploy without.
var requiredRe = regexp.MustCompile(`\$\{([A-Z_]+):\?([^}]*)\}`)

// TestComposeFile: compose.yaml, with its defaults, gives the api and
// worker services environments tako accepts for their roles, mounts the
// workers' work directory at its host path, names the images `tako image
// --stack` tags, publishes the load balancer on 127.0.0.1 and uses no key
// `docker stack deploy` refuses; the load balancer's configuration keeps
// requests across restarts and streams.
func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !requiredRe.MatchString(string(data)) || !strings.Contains(requiredRe.FindString(string(data)), "TAKO_API_KEY") {
		t.Errorf("compose.yaml has a default API key; the stack must not start without TAKO_API_KEY")
	}
	text := defaultsRe.ReplaceAllString(string(data), "$2")
	text = requiredRe.ReplaceAllString(text, "set-by-the-user-$1")
	if strings.Contains(text, "${") {
		t.Errorf("compose.yaml has a substitution without a default")
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(text), &file); err != nil {
		t.Fatal(err)
	}
	svc := file.Services
	env := func(name string) []string {
		var out []string
		for k, v := range svc[name].Environment {
			out = append(out, k+"="+v)
		}
		return out
	}

	loadEnv(t, env("api"), roleAPI)
	worker := loadEnv(t, env("worker"), roleWorker)
	mount := worker.Runner.WorkDir + ":" + worker.Runner.WorkDir
	if !slices.Contains(svc["worker"].Volumes, mount) || !slices.Contains(svc["worker"].Volumes, dockerSocket+":"+dockerSocket) {
		t.Errorf("worker volumes %q, want the Docker socket and %s", svc["worker"].Volumes, mount)
	}
	for _, v := range svc["api"].Volumes {
		if strings.Contains(v, dockerSocket) {
			t.Errorf("api mounts %s: api nodes run no jobs", v)
		}
	}
	if r := svc["api"].Deploy.Replicas; r == nil || *r != 2 {
		t.Errorf("api deploy.replicas %v, want 2", r)
	}
	if m := svc["worker"].Deploy.Mode; m != "global" {
		t.Errorf("worker deploy.mode %q, want global: one worker per Docker engine", m)
	}
	if r := svc["prometheus"].Deploy.Replicas; r == nil || *r != 0 {
		t.Errorf("prometheus deploy.replicas %v, want 0: on demand", r)
	}

	server := serverImage(t)
	_, version, _ := strings.Cut(server, ":")
	for name, want := range map[string]string{
		"api": server, "worker": server, "postgres": "tako-postgres:" + version,
		"lb": "tako-lb:" + version, "prometheus": "tako-prometheus:" + version,
	} {
		if got := svc[name].Image; got != want {
			t.Errorf("service %s: image %q, want %q", name, got, want)
		}
		if len(svc[name].Profiles) > 0 {
			t.Errorf("service %s: profiles, which docker stack deploy refuses", name)
		}
	}
	if p := svc["lb"].Ports; len(p) != 1 || p[0] != "127.0.0.1:8000:8000" {
		t.Errorf("lb ports %q, want 127.0.0.1:8000:8000 by default", p)
	}

	conf, err := os.ReadFile("lb/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"resolver 127.0.0.11 valid=5s",
		"proxy_pass http://$api_backend:8000;",
		"proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
		"proxy_buffering off;",
		"proxy_read_timeout 1h;",
		"add_header Retry-After",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("lb/nginx.conf does not say %q", want)
		}
	}
}
