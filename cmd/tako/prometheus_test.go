package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tako-run/tako/runner/runnertest"
)

// deployDir holds the Prometheus configuration and the Grafana dashboard
// that the end-to-end test proves.
const deployDir = "../../deploy"

// TestPrometheusEndToEnd runs a real Prometheus server with the
// repository's scrape configuration and alert rules against a running tako,
// runs jobs with known outcomes, and checks what Prometheus saw: the counts,
// the histograms, every dashboard expression and every alert rule.
func TestPrometheusEndToEnd(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	promBin, promtool := prometheusTools(t)
	s := startOwnServer(t,
		"TAKO_JOB_TYPES_PROBE_POOL_MIN=1", "TAKO_JOB_TYPES_PROBE_POOL_MAX=2",
		"TAKO_METRICS_SAMPLE_INTERVAL=500ms",
		"TAKO_LOG_LEVEL=info", "TAKO_LOG_FORMAT=json",
	)

	// Known outcomes: four successes (one of them async), a failure and a
	// timeout, all of job type probe.
	for range 3 {
		if code, res := s.post(t, "/execute", `{"job_type": "probe", "code": "print('ok')"}`); code != http.StatusOK || res["status"] != "succeeded" {
			t.Fatalf("success: %d %v", code, res)
		}
	}
	if code, res := s.post(t, "/execute", `{"job_type": "probe", "code": "raise ValueError('boom')"}`); code != http.StatusOK || res["status"] != "failed" {
		t.Fatalf("failure: %d %v", code, res)
	}
	if code, res := s.post(t, "/execute", `{"job_type": "probe", "code": "import time; time.sleep(30)", "timeout": 1}`); code != http.StatusOK || res["status"] != "timeout" {
		t.Fatalf("timeout: %d %v", code, res)
	}
	id := s.submit(t, `{"job_type": "probe", "code": "print('async')"}`)
	if res := s.result(t, id); res["status"] != "succeeded" {
		t.Fatalf("async: %v", res)
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = resp.Body
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})
	t.Run("promtool rules", func(t *testing.T) {
		for _, args := range [][]string{
			{"check", "rules", filepath.Join(deployDir, "prometheus/rules.yml")},
			{"test", "rules", filepath.Join(deployDir, "prometheus/rules_test.yml")},
		} {
			if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	prom := startPrometheus(t, promBin, promtool, strings.TrimPrefix(s.url, "http://"))

	t.Run("counts", func(t *testing.T) {
		wantValues := map[string]float64{
			`sum(tako_jobs_total{job_type="probe",status="succeeded"})`:                      4,
			`sum(tako_jobs_total{job_type="probe",status="failed"})`:                         1,
			`sum(tako_jobs_total{job_type="probe",status="timeout"})`:                        1,
			`sum(tako_job_errors_total{job_type="probe",error_type="timeout"})`:              1,
			`sum(tako_job_errors_total{job_type="probe",error_type="value_error"})`:          1,
			`sum(tako_pool_checkouts_total{job_type="probe"})`:                               6,
			`sum(tako_job_duration_seconds_count{job_type="probe"})`:                         6,
			`sum(tako_job_phase_seconds_count{job_type="probe",phase="run"})`:                6,
			`sum(tako_http_requests_total{route="/execute",method="POST",code="200"})`:       5,
			`sum(tako_http_requests_total{route="/execute/async",method="POST",code="200"})`: 1,
			`tako_docker_up`:                                       1,
			`tako_database_up`:                                     1,
			`tako_queue_depth{job_type="probe"}`:                   0,
			`count(tako_build_info)`:                               1,
			`sum(tako_jobs_running)`:                               0,
			`count(tako_pool_target_containers{job_type="probe"})`: 1,
			`count(tako_container_removals_pending)`:               1,
			`sum(tako_job_duration_seconds_bucket{job_type="probe",status="timeout",le="+Inf"})`:            1,
			`sum(tako_job_duration_seconds_bucket{job_type="probe",status="succeeded",le="+Inf"}) > bool 0`: 1,
		}
		// Prometheus scrapes every second; wait for a scrape after the jobs.
		deadline := time.Now().Add(2 * time.Minute)
		for expr, want := range wantValues {
			for {
				got, ok := prom.scalar(t, expr)
				if ok && got == want {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s = %v (present %v), want %v", expr, got, ok, want)
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
		// The histogram resolves the successes' median to a real number
		// inside its buckets. How large it is depends on the machine's
		// load: on a loaded 2-core machine under gVisor a success took
		// 1.75 s.
		if p50, ok := prom.scalar(t, `histogram_quantile(0.5, sum by (le) (tako_job_duration_seconds_bucket{job_type="probe",status="succeeded"}))`); !ok || math.IsNaN(p50) || p50 <= 0 || p50 >= 60 {
			t.Errorf("p50 of the successes: %v (present %v)", p50, ok)
		}
	})

	t.Run("dashboard expressions", func(t *testing.T) {
		exprs := dashboardExprs(t)
		if len(exprs) < 10 {
			t.Fatalf("the dashboard has %d expressions", len(exprs))
		}
		// Rates need a few scrapes in their window.
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
			if n, ok := prom.scalar(t, `count_over_time(tako_build_info[1m])`); ok && n >= 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("prometheus did not scrape tako five times in 30 s")
			}
		}
		withData := 0
		for _, expr := range exprs {
			n, err := prom.query(expr)
			if err != nil {
				t.Errorf("%s: %v", expr, err)
			}
			if n > 0 {
				withData++
			} else {
				t.Logf("no data yet: %s", expr)
			}
		}
		// Most panels have something to show after six jobs; an expression
		// naming a metric tako does not export would show nothing.
		if withData < len(exprs)*2/3 {
			t.Errorf("only %d of %d dashboard expressions returned data", withData, len(exprs))
		}
	})

	t.Run("alert rules", func(t *testing.T) {
		want := []string{"TakoQueueBacklogGrowing", "TakoHighJobErrorRate", "TakoHighTimeoutRate", "TakoPoolsEmptyUnderLoad", "TakoDockerDown", "TakoDatabaseDown"}
		var rules []promRule
		deadline := time.Now().Add(2 * time.Minute)
		for {
			rules = prom.rules(t)
			if allEvaluated(rules) || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		names := map[string]bool{}
		for _, r := range rules {
			names[r.Name] = true
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
			}
		}
		for _, name := range want {
			if !names[name] {
				t.Errorf("no alert rule %s", name)
			}
		}
		// Docker and the database are up: their alerts stay quiet.
		for _, r := range rules {
			if (r.Name == "TakoDockerDown" || r.Name == "TakoDatabaseDown") && r.State != "inactive" {
				t.Errorf("%s is %s while both are up", r.Name, r.State)
			}
		}
	})

	t.Run("job logs", func(t *testing.T) {
		// Every line about a job names it, its type and its correlation id.
		finished := 0
		for _, line := range strings.Split(s.logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["execution_id"] == nil {
				continue
			}
			if rec["job_type"] == nil || rec["correlation_id"] == nil {
				t.Errorf("job line without job_type or correlation_id: %s", line)
			}
			if rec["msg"] == "execution finished" && rec["job_type"] == "probe" {
				finished++
			}
		}
		if finished != 6 {
			t.Errorf("%d 'execution finished' lines for probe, want 6", finished)
		}
	})
}

// prometheusTools returns the paths of prometheus and promtool. In CI their
// absence fails the test; elsewhere it skips.
func prometheusTools(t *testing.T) (string, string) {
	t.Helper()
	prom, err1 := exec.LookPath("prometheus")
	tool, err2 := exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus and promtool are required in CI (Debian package prometheus; make test installs it)")
		}
		t.Skip("prometheus is not installed")
	}
	return prom, tool
}

// promServer is a Prometheus server the test started.
type promServer struct {
	url string
}

// startPrometheus runs prometheus with deploy/prometheus/prometheus.yml,
// its target pointed at target and its intervals cut to a second, and
// returns once it is ready. It is stopped when the test ends.
func startPrometheus(t *testing.T, bin, promtool, target string) *promServer {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("deploy/prometheus/prometheus.yml: %v", err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
	}
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1s"
	cfg["global"] = global
	rulesPath, err := filepath.Abs(filepath.Join(deployDir, "prometheus/rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg["rule_files"] = []any{rulesPath}
	scrapes, _ := cfg["scrape_configs"].([]any)
	found := false
	for _, sc := range scrapes {
		sc := sc.(map[string]any)
		if sc["job_name"] == "tako" {
			sc["static_configs"] = []any{map[string]any{"targets": []any{target}}}
			delete(sc, "scrape_interval")
			found = true
		}
	}
	if !found {
		t.Fatal(`deploy/prometheus/prometheus.yml has no scrape job "tako"`)
	}
	dir := t.TempDir()
	out, _ := yaml.Marshal(cfg)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	p := &promServer{url: "http://" + addr}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 2 minutes:\n%s", logs.String())
		}
	}
}

// promResponse is the envelope of Prometheus's HTTP API.
type promResponse struct {
	Status    string          `json:"status"`
	Error     string          `json:"error"`
	ErrorType string          `json:"errorType"`
	Data      json.RawMessage `json:"data"`
}

// api calls Prometheus's HTTP API with GET and decodes the envelope.
func (p *promServer) api(path string, params url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r promResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// query evaluates expr now and returns how many series or values it gave.
func (p *promServer) query(expr string) (int, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	if d.ResultType != "vector" && d.ResultType != "matrix" {
		return 1, nil // a scalar or a string
	}
	var series []json.RawMessage
	if err := json.Unmarshal(d.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// scalar evaluates expr, which must give at most one series, and returns
// its value; ok is false when it gave none.
func (p *promServer) scalar(t *testing.T, expr string) (float64, bool) {
	t.Helper()
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var d struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if len(d.Result) == 0 {
		return 0, false
	}
	if len(d.Result) > 1 {
		t.Fatalf("%s gave %d series", expr, len(d.Result))
	}
	s, _ := d.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s: value %q", expr, s)
	}
	return v, true
}

// promRule is one rule as GET /api/v1/rules shows it.
type promRule struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	Health         string `json:"health"`
	LastError      string `json:"lastError"`
	State          string `json:"state"`
	LastEvaluation string `json:"lastEvaluation"`
}

func (p *promServer) rules(t *testing.T) []promRule {
	t.Helper()
	data, err := p.api("/api/v1/rules", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var out []promRule
	for _, g := range d.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// allEvaluated reports whether Prometheus has evaluated every rule.
func allEvaluated(rules []promRule) bool {
	if len(rules) == 0 {
		return false
	}
	for _, r := range rules {
		if r.Health == "unknown" || strings.HasPrefix(r.LastEvaluation, "0001-") {
			return false
		}
	}
	return true
}

// dashboardExprs returns every query of deploy/grafana/tako.json with its
// variables set as "all job types" and a one-minute rate window.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana/tako.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/tako.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash.(map[string]any)["panels"])
	r := strings.NewReplacer("${job_type}", ".*", "$job_type", ".*", "$__rate_interval", "1m")
	for i, e := range exprs {
		exprs[i] = r.Replace(e)
		if strings.Contains(exprs[i], "$") {
			t.Errorf("dashboard expression uses an unknown variable: %s", e)
		}
	}
	return exprs
}
