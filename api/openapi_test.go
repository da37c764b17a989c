package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/metrics"
)

// openAPIPath turns a fiber route into its OpenAPI path: ":id" is "{id}",
// and the artifact route's wildcard is "{name}".
func openAPIPath(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		case s == "*":
			segs[i] = "{name}"
		}
	}
	return strings.Join(segs, "/")
}

// TestOpenAPIDescribesEveryRoute keeps /openapi.json true: every route the
// server has is in the document, and the document has nothing else.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	s := New(Options{Registry: testRegistry(t), Runner: &fakeRunner{}, Service: &fakeService{}, Metrics: metrics.New("test"), Version: "test"})
	stopOnCleanup(t, s)
	r := do(t, s, "GET", "/openapi.json", "", nil)
	if r.status != 200 || r.header.Get("Content-Type") != fiber.MIMEApplicationJSON {
		t.Fatalf("GET /openapi.json: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}

	var served []string
	for _, route := range s.App().GetRoutes(true) {
		if route.Method == fiber.MethodHead { // fiber answers HEAD with GET's handler
			continue
		}
		served = append(served, route.Method+" "+openAPIPath(route.Path))
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(served)
	served = slices.Compact(served)
	slices.Sort(described)
	if !slices.Equal(served, described) {
		t.Errorf("routes and document differ\n served    %v\n described %v", served, described)
	}
	for _, name := range []string{"ExecuteResponse", "ExecutionResponse", "ExecutionSummary", "ErrorResponse", "HealthResponse", "JobTypeResponse"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
}

// TestOpenAPISchemasMatchResponses: the schema of a response lists exactly
// the fields a real answer has.
func TestOpenAPISchemasMatchResponses(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil, nil, Limits{})
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(do(t, s, "GET", "/openapi.json", "", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	answers := map[string]response{
		"ExecuteResponse": do(t, s, "POST", "/execute", `{"code": "print(1)"}`, nil),
		"ErrorResponse":   do(t, s, "POST", "/execute", `{"code": ""}`, nil),
		"HealthResponse":  do(t, s, "GET", "/health", "", nil),
	}
	fs := &fakeService{}
	// With every optional field: an allowlisted job's egress record.
	e := finishedExecution()
	e.NetworkAllow = []string{"api.example.com"}
	e.Result.Egress = []jobs.EgressAttempt{{Host: "api.example.com", Port: 443, Result: jobs.EgressAllowed}}
	fs.record(e)
	list := do(t, newTestServer(t, fs, nil, Limits{}), "GET", "/executions", "", nil)
	answers["ExecutionListResponse"] = list
	items, _ := list.object(t)["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("list: %s", list.body)
	}
	item, _ := json.Marshal(items[0])
	answers["ExecutionSummary"] = response{body: item}
	for name, r := range answers {
		got := keysOf(r.object(t))
		var want []string
		for k := range doc.Components.Schemas[name].Properties {
			want = append(want, k)
		}
		slices.Sort(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the answer has %v, the schema %v", name, got, want)
		}
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
