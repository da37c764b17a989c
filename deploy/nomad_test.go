package deploy_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/tako-run/tako/config"
)

// The Nomad recipe's files and the worker pool's node meta key.
const (
	nomadDir        = "nomad"
	nomadAPIFile    = "tako-api.nomad.hcl"
	nomadWorkerFile = "tako-worker.nomad.hcl"
	nomadPoolMeta   = "tako_worker"
)

// The structs below are the part of the Nomad job specification that the
// recipes use. They have no remain fields, so decoding refuses an argument
// or block they do not list: a misspelt one fails the test, and a new one
// needs a field here.

type nomadFile struct {
	Job nomadJob `hcl:"job,block"`
}

type nomadJob struct {
	Name        string            `hcl:"name,label"`
	Type        string            `hcl:"type"`
	Datacenters []string          `hcl:"datacenters,optional"`
	Constraints []nomadConstraint `hcl:"constraint,block"`
	Groups      []nomadGroup      `hcl:"group,block"`
}

type nomadConstraint struct {
	// Attribute is an interpolation such as "${meta.tako_worker}", kept as
	// an expression: Nomad evaluates it on each client.
	Attribute hcl.Expression `hcl:"attribute"`
	Operator  string         `hcl:"operator,optional"`
	Value     string         `hcl:"value"`
}

type nomadGroup struct {
	Name     string         `hcl:"name,label"`
	Count    *int           `hcl:"count,optional"`
	Spreads  []nomadSpread  `hcl:"spread,block"`
	Network  *nomadNetwork  `hcl:"network,block"`
	Update   *nomadUpdate   `hcl:"update,block"`
	Services []nomadService `hcl:"service,block"`
	Tasks    []nomadTask    `hcl:"task,block"`
}

type nomadSpread struct {
	Attribute hcl.Expression `hcl:"attribute"`
}

type nomadNetwork struct {
	Mode  string      `hcl:"mode,optional"`
	Ports []nomadPort `hcl:"port,block"`
}

type nomadPort struct {
	Label  string `hcl:"label,label"`
	Static int    `hcl:"static,optional"`
	To     int    `hcl:"to,optional"`
}

type nomadUpdate struct {
	MaxParallel     int    `hcl:"max_parallel,optional"`
	HealthCheck     string `hcl:"health_check,optional"`
	MinHealthyTime  string `hcl:"min_healthy_time,optional"`
	HealthyDeadline string `hcl:"healthy_deadline,optional"`
	AutoRevert      bool   `hcl:"auto_revert,optional"`
}

type nomadService struct {
	Name     string       `hcl:"name"`
	Provider string       `hcl:"provider,optional"`
	Port     string       `hcl:"port"`
	Tags     []string     `hcl:"tags,optional"`
	Meta     *nomadAttrs  `hcl:"meta,block"`
	Checks   []nomadCheck `hcl:"check,block"`
}

type nomadCheck struct {
	Name     string `hcl:"name,optional"`
	Type     string `hcl:"type"`
	Path     string `hcl:"path,optional"`
	Interval string `hcl:"interval"`
	Timeout  string `hcl:"timeout"`
}

type nomadTask struct {
	Name        string          `hcl:"name,label"`
	Driver      string          `hcl:"driver"`
	KillTimeout string          `hcl:"kill_timeout,optional"`
	Config      nomadDocker     `hcl:"config,block"`
	Env         *nomadAttrs     `hcl:"env,block"`
	Templates   []nomadTemplate `hcl:"template,block"`
	Resources   *nomadResources `hcl:"resources,block"`
}

type nomadDocker struct {
	Image       string   `hcl:"image"`
	Args        []string `hcl:"args,optional"`
	Ports       []string `hcl:"ports,optional"`
	NetworkMode string   `hcl:"network_mode,optional"`
	Volumes     []string `hcl:"volumes,optional"`
}

type nomadTemplate struct {
	Destination string `hcl:"destination"`
	Env         bool   `hcl:"env,optional"`
	Data        string `hcl:"data"`
}

type nomadResources struct {
	CPU    int `hcl:"cpu"`
	Memory int `hcl:"memory"`
}

// nomadAttrs is a block of free-form string arguments, such as env or meta.
type nomadAttrs struct {
	Body hcl.Body `hcl:",remain"`
}

// values returns the block's arguments, failing t on one that is not a
// constant string. A nil block has none.
func (a *nomadAttrs) values(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	if a == nil {
		return out
	}
	attrs, diags := a.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for name, attr := range attrs {
		var v string
		if diags := gohcl.DecodeExpression(attr.Expr, nil, &v); diags.HasErrors() {
			t.Fatal(diags)
		}
		out[name] = v
	}
	return out
}

// decodeNomad parses and decodes one job file.
func decodeNomad(name string, src []byte) (*nomadJob, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, diags
	}
	var out nomadFile
	if diags := gohcl.DecodeBody(f.Body, nil, &out); diags.HasErrors() {
		return nil, diags
	}
	return &out.Job, nil
}

// loadNomad decodes the job in file of nomadDir, failing t if it cannot
// or if the file is not formatted as `nomad fmt` would.
func loadNomad(t *testing.T, file string) *nomadJob {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(nomadDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hclwrite.Format(src), src) {
		t.Errorf("%s is not formatted: run nomad fmt on it", file)
	}
	job, err := decodeNomad(file, src)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// traversal names the variable an expression such as "${meta.x}" reads,
// as "meta.x"; "" unless it reads exactly one.
func traversal(expr hcl.Expression) string {
	vars := expr.Variables()
	if len(vars) != 1 {
		return ""
	}
	parts := []string{vars[0].RootName()}
	for _, step := range vars[0][1:] {
		attr, ok := step.(hcl.TraverseAttr)
		if !ok {
			return ""
		}
		parts = append(parts, attr.Name)
	}
	return strings.Join(parts, ".")
}

// TestNomadStrict: the structs refuse an argument they do not list.
func TestNomadStrict(t *testing.T) {
	t.Parallel()
	_, err := decodeNomad("x.hcl", []byte(`job "x" {
  type = "service"
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image       = "x"
        network_mod = "host"
      }
    }
  }
}`))
	if err == nil || !strings.Contains(err.Error(), `An argument named "network_mod" is not expected here`) {
		t.Errorf("a misspelt argument: %v", err)
	}
}

// nomadWorkload is one job of the recipe as the tests check it.
type nomadWorkload struct {
	job   *nomadJob
	group *nomadGroup
	task  *nomadTask
	// secrets are the Nomad variable paths and keys the templates read.
	secrets map[string][]string
	cfg     *config.Config
}

// templateVar finds, in a template, the Nomad variable it reads, the keys
// it reads from it and the environment variables it sets.
var (
	templateVar = regexp.MustCompile(`nomadVar "([^"]+)"`)
	templateKey = regexp.MustCompile(`\{\{-?\s*\.(\w+)\s*-?\}\}`)
	templateEnv = regexp.MustCompile(`(?m)^\s*(TAKO_\w+)=`)
)

// checkNomad checks what the api and the worker share: one group with
// one docker task of the tako-server image, a port to 8000 with a service
// that checks /health and is tagged for Prometheus, and an environment,
// its env block and templates together, that tako's loader accepts with
// role.
func checkNomad(t *testing.T, file, jobType, role, image string) *nomadWorkload {
	t.Helper()
	job := loadNomad(t, file)
	if job.Type != jobType {
		t.Errorf("job type %q, want %q", job.Type, jobType)
	}
	if len(job.Groups) != 1 || len(job.Groups[0].Tasks) != 1 {
		t.Fatalf("%d groups, want one with one task", len(job.Groups))
	}
	w := &nomadWorkload{job: job, group: &job.Groups[0], task: &job.Groups[0].Tasks[0], secrets: map[string][]string{}}
	task := w.task
	if task.Driver != "docker" || task.Config.Image != image {
		t.Errorf("driver %q image %q, want docker and %s: what `tako image` builds", task.Driver, task.Config.Image, image)
	}

	// The port the service registers reaches the server's port 8000:
	// mapped to it, or the host's own port 8000 on the host's network.
	var label string
	if w.group.Network != nil {
		for _, p := range w.group.Network.Ports {
			mapped := p.To == port && slices.Contains(task.Config.Ports, p.Label)
			host := task.Config.NetworkMode == "host" && p.Static == port && p.To == 0
			if mapped || host {
				label = p.Label
			}
		}
	}
	if label == "" {
		t.Errorf("no port of the group reaches the server's port %d", port)
	}
	if len(w.group.Services) != 1 {
		t.Fatalf("%d services, want 1", len(w.group.Services))
	}
	svc := w.group.Services[0]
	if svc.Port != label || !slices.Contains(svc.Tags, "prometheus") || svc.Meta.values(t)["metrics_path"] != "/metrics" {
		t.Errorf("service %s on port %q, tags %v, meta %v: want port %q, the tag prometheus and metrics_path /metrics",
			svc.Name, svc.Port, svc.Tags, svc.Meta.values(t), label)
	}
	if !slices.ContainsFunc(svc.Checks, func(c nomadCheck) bool { return c.Type == "http" && c.Path == healthPath }) {
		t.Errorf("service %s has no http check of %s: %+v", svc.Name, healthPath, svc.Checks)
	}

	var env []string
	for name, value := range task.Env.values(t) {
		env = append(env, name+"="+value)
	}
	for _, tmpl := range task.Templates {
		if !tmpl.Env {
			continue
		}
		for _, m := range templateVar.FindAllStringSubmatch(tmpl.Data, -1) {
			for _, k := range templateKey.FindAllStringSubmatch(tmpl.Data, -1) {
				w.secrets[m[1]] = append(w.secrets[m[1]], k[1])
			}
		}
		for _, m := range templateEnv.FindAllStringSubmatch(tmpl.Data, -1) {
			env = append(env, m[1]+"="+placeholder(m[1]))
		}
	}
	for _, secret := range []string{"TAKO_DATABASE_URL", "TAKO_AUTH_API_KEYS_DEFAULT"} {
		if _, plain := task.Env.values(t)[secret]; plain || valueOf(env, secret) == "" {
			t.Errorf("%s does not come from a template of the job's Nomad variable", secret)
		}
	}
	sort.Strings(env) // map order; a duplicate is reported either way
	w.cfg = loadEnv(t, env, role)
	return w
}

// TestNomad: the api is a service job of two, the workers a system job on
// the worker pool's clients, both docker tasks of the tako-server image
// that tako's configuration loader accepts, and a worker mounts the Docker
// socket and its work directory at the same path as on the host.
func TestNomad(t *testing.T) {
	t.Parallel()
	image := serverImage(t)
	secrets := map[string][]string{} // Nomad variable path: keys

	t.Run("api", func(t *testing.T) {
		w := checkNomad(t, nomadAPIFile, "service", roleAPI, image)
		if c := w.group.Count; c == nil || *c != 2 {
			t.Errorf("count %v, want 2", c)
		}
		maps.Copy(secrets, w.secrets)
	})

	t.Run("worker", func(t *testing.T) {
		w := checkNomad(t, nomadWorkerFile, "system", roleWorker, image)
		pool := slices.ContainsFunc(w.job.Constraints, func(c nomadConstraint) bool {
			return traversal(c.Attribute) == "meta."+nomadPoolMeta && (c.Operator == "" || c.Operator == "=") && c.Value == workerPoolVal
		})
		if !pool {
			t.Errorf("no constraint to the worker pool, ${meta.%s} = %q", nomadPoolMeta, workerPoolVal)
		}
		binds := map[string]string{}
		for _, v := range w.task.Config.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || (len(parts) == 3 && parts[2] != "rw") || len(parts) > 3 {
				t.Errorf("volume %q: want host:container, writable", v)
				continue
			}
			binds[parts[1]] = parts[0]
		}
		if src := binds[dockerSocket]; src != dockerSocket {
			t.Errorf("the Docker socket is mounted from %q, want %s", src, dockerSocket)
		}
		if work := w.cfg.Runner.WorkDir; binds[work] != work {
			t.Errorf("runner.work_dir %s is mounted from %q, want the same path", work, binds[work])
		}
		maps.Copy(secrets, w.secrets)
	})

	t.Run("readme", func(t *testing.T) {
		// The README's commands store what the templates read, and set up
		// the clients the worker job asks for.
		readmeHas(t, nomadDir,
			fmt.Sprintf("%s = %q", nomadPoolMeta, workerPoolVal),
			"volumes {", "enabled = true",
			"nomad job run deploy/nomad/"+nomadAPIFile,
			"nomad job run deploy/nomad/"+nomadWorkerFile)
		readme, err := os.ReadFile(filepath.Join(nomadDir, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		for path, keys := range secrets {
			stored := slices.ContainsFunc(strings.Split(string(readme), "\n"), func(line string) bool {
				return strings.HasPrefix(line, "nomad var put "+path+" ") &&
					!slices.ContainsFunc(keys, func(k string) bool { return !strings.Contains(line, " "+k+"=") })
			})
			if !stored {
				t.Errorf("%s/README.md has no line nomad var put %s with %v", nomadDir, path, keys)
			}
		}
	})
}
