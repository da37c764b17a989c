package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// operation is one route of the API as GET /openapi.json describes it. The
// request and response bodies are Go values whose types the schemas are
// generated from, so the document cannot drift from what the handlers
// send; a test checks that every route is described and nothing else.
type operation struct {
	method, path, summary string
	query                 []param // query parameters
	request               any     // a JSON body schema (map) or nil
	responses             map[int]any
}

// param is one query parameter.
type param struct {
	name, typ, description string
}

// errorBody is the body of every 4xx and 5xx.
var errorBody = ErrorResponse{}

// oneOf is a response whose body is one of several types.
type oneOf []any

// operations are tako's routes.
var operations = []operation{
	{method: "POST", path: "/execute", summary: "Run a program and wait for its result",
		request: executeRequestSchema(), responses: map[int]any{200: ExecuteResponse{}, 415: errorBody, 422: errorBody, 429: errorBody, 503: errorBody}},
	{method: "POST", path: "/execute/async", summary: "Queue a program; the answer comes at once",
		request: executeRequestSchema(), responses: map[int]any{200: SubmitResponse{}, 409: errorBody, 415: errorBody, 429: errorBody, 503: errorBody}},
	{method: "GET", path: "/jobs/{id}", summary: "A job's status", responses: map[int]any{200: JobStatusResponse{}, 404: errorBody}},
	{method: "GET", path: "/jobs/{id}/result", summary: "A job's result, optionally waiting for it",
		query: []param{
			{"wait", "boolean", "wait for the job to end (default false)"},
			{"timeout", "number", "seconds to wait, 1 to 300 (default 30); 408 when it runs out"},
			viewParam,
		},
		responses: map[int]any{200: oneOf{ExecutionResponse{}, PendingResultResponse{}}, 404: errorBody, 408: errorBody}},
	{method: "GET", path: "/jobs/{id}/events", summary: "The job's events as Server-Sent Events (text/event-stream), from any node: queued, started, stdout, stderr, truncated, result, error, done; send Last-Event-ID to resume; a ': ping' comment every 15 s",
		responses: map[int]any{200: "event-stream", 404: errorBody, 422: errorBody, 503: errorBody}},
	{method: "GET", path: "/jobs/{id}/deliveries", summary: "Every attempt to deliver the job's webhook, oldest first",
		responses: map[int]any{200: DeliveriesResponse{}, 404: errorBody}},
	{method: "POST", path: "/jobs/{id}/deliveries/retry", summary: "Deliver an ended job's webhook again, with a fresh retry schedule",
		responses: map[int]any{202: RetryDeliveryResponse{}, 400: errorBody, 404: errorBody, 409: errorBody}},
	{method: "POST", path: "/jobs/{id}/cancel", summary: "Cancel a queued or running job, on any node; 404 when it has ended",
		responses: map[int]any{200: CancelResponse{}, 404: errorBody}},
	{method: "POST", path: "/jobs/{id}/rerun", summary: "Run a finished job's code and input again; 400 when it has not ended",
		request: replayRequestSchema(false), responses: map[int]any{200: ReplayResponse{}, 400: errorBody, 404: errorBody, 415: errorBody, 429: errorBody}},
	{method: "POST", path: "/jobs/{id}/fork", summary: "Run new code on a job's input",
		request: replayRequestSchema(true), responses: map[int]any{200: ReplayResponse{}, 404: errorBody, 415: errorBody, 429: errorBody}},
	{method: "GET", path: "/jobs/{id}/artifacts/{name}", summary: "Download an artifact (also HEAD); ETag is its sha256",
		responses: map[int]any{200: "binary", 304: nil, 404: errorBody}},
	{method: "GET", path: "/executions", summary: "The history the caller may see, newest first, without artifacts; a page stops early (count < limit, has_more true) to stay under 1 MiB",
		query: []param{
			{"status", "string", "only executions with this status"},
			{"job_type", "string", "only executions of this job type"},
			{"start", "string", "only executions that got a warm (prewarmed) or a cold container"},
			{"parent_id", "string", "only the executions made from this one: its reruns and forks"},
			{"api_key", "string", "only executions this API key (by name) submitted; a caller who is not an admin sees only its own, so another key's name gives an empty page"},
			{"limit", "integer", "page size, 1 to 1000 (default 100)"},
			{"offset", "integer", "skip that many executions first (the original's paging; advance it by count)"},
			{"cursor", "integer", "next_cursor of the previous page"},
			viewParam,
		},
		responses: map[int]any{200: ExecutionListResponse{}, 422: errorBody}},
	{method: "GET", path: "/executions/{id}", summary: "One execution's full record, with its code and input",
		query: []param{viewParam}, responses: map[int]any{200: ExecutionRecordResponse{}, 404: errorBody, 422: errorBody}},
	{method: "GET", path: "/job-types", summary: "The job types and whether they can run here", responses: map[int]any{200: []JobTypeResponse{}}},
	{method: "GET", path: "/job-types/{name}", summary: "One job type", responses: map[int]any{200: JobTypeResponse{}, 404: errorBody}},
	{method: "POST", path: "/job-types/{name}/build", summary: "Build a job type's image if it is missing",
		responses: map[int]any{200: BuildResponse{}, 404: errorBody}},
	{method: "GET", path: "/health", summary: "Docker, the database, runtimes and queue; never needs a key", responses: map[int]any{200: HealthResponse{}}},
	{method: "GET", path: "/metrics", summary: "Prometheus metrics (text format)", responses: map[int]any{200: "text"}},
	{method: "GET", path: "/openapi.json", summary: "This document; never needs a key", responses: map[int]any{200: "json"}},
	{method: "GET", path: "/", summary: "Redirects to /docs, as the original does", responses: map[int]any{307: nil}},
	{method: "GET", path: "/docs", summary: "An interactive page for this document, served offline; never needs a key", responses: map[int]any{200: "html"}},
	{method: "GET", path: "/docs/{name}", summary: "The docs page's scripts, styles and icon", responses: map[int]any{200: "binary", 404: errorBody}},
	{method: "GET", path: "/pool/stats", summary: "The original's worker pool statistics, plus each job type's prewarmed pool on this node",
		responses: map[int]any{200: PoolStatsResponse{}}},
	{method: "GET", path: "/dlq", summary: "The dead-letter queue: jobs that exhausted their attempts on failures of tako's own, newest first",
		query: []param{
			{"error_type", "string", "only entries with this error type"},
			{"limit", "integer", "page size, 1 to 1000 (default 100)"},
			{"offset", "integer", "skip that many entries first"},
		},
		responses: map[int]any{200: DeadLetterListResponse{}, 422: errorBody}},
	{method: "GET", path: "/dlq/stats", summary: "How many dead-letter entries there are, in all and by error type",
		responses: map[int]any{200: DeadLetterStatsResponse{}}},
	{method: "DELETE", path: "/dlq/{id}", summary: "Remove a dead-letter entry; the job's record stays",
		responses: map[int]any{200: DeadLetterRemoveResponse{}, 404: errorBody, 422: errorBody}},
	{method: "POST", path: "/dlq/{id}/retry", summary: "Queue a dead-letter entry's job again, under the same job id (tako's own route)",
		responses: map[int]any{200: DeadLetterRetryResponse{}, 404: errorBody, 422: errorBody}},
}

// viewParam is the original's view query parameter of the record routes.
var viewParam = param{"view", "string", "full or slim; tako's record always has every field of the original's full view"}

// executeRequestSchema is the body of POST /execute and /execute/async.
func executeRequestSchema() map[string]any {
	return object(map[string]any{
		"code":            prop("string", "the Python program, run as /code/main.py"),
		"input_data":      map[string]any{"type": "object", "description": "written to /input/data.json"},
		"job_type":        prop("string", "default: \"default\""),
		"timeout":         prop("integer", "seconds, at most the job type's limit"),
		"startup_timeout": prop("integer", "seconds to get a container ready"),
		"requirements":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "ad-hoc pip requirements (PEP 508), at most 50"},
		"idempotency_key": prop("string", "async only: 8 to 255 of [A-Za-z0-9_-]; the same key and body return the same job"),
		"callback_url":    prop("string", "where to POST the result, signed (Standard Webhooks), when the job ends; https unless webhooks.allow_http"),
		"network":         prop("object", "{\"allow\": [hosts]}: narrows the job type's egress allowlist for this job; an entry outside it is a 422"),
	}, "code")
}

// replayRequestSchema is the body of a rerun or a fork.
func replayRequestSchema(fork bool) map[string]any {
	props := map[string]any{
		"job_type": prop("string", "run under another job type"),
		"timeout":  prop("integer", "seconds"),
	}
	if fork {
		props["code"] = prop("string", "the new program")
		return object(props, "code")
	}
	return object(props)
}

func object(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func prop(typ, description string) map[string]any {
	return map[string]any{"type": typ, "description": description}
}

// openAPIDocument builds the OpenAPI 3.1 document of the API.
func openAPIDocument(version, keyHeader string) ([]byte, error) {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, op := range operations {
		op.responses = maps.Clone(op.responses)
		// Any request for a host the server does not answer for.
		op.responses[http.StatusMisdirectedRequest] = errorBody
		if op.method == "POST" || op.method == "DELETE" {
			// A page of another origin; a body that is not JSON.
			op.responses[http.StatusForbidden] = errorBody
			op.responses[http.StatusUnsupportedMediaType] = errorBody
		}
		o := map[string]any{"summary": op.summary, "responses": responsesOf(op, schemas)}
		var params []any
		for _, name := range pathParams(op.path) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.description, "schema": map[string]any{"type": q.typ}})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.request != nil {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": op.request}}}
		}
		if publicPath(strings.ReplaceAll(op.path, "{name}", "x")) {
			o["security"] = []any{}
		}
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][strings.ToLower(op.method)] = o
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "tako",
			"version":     version,
			"description": "Runs untrusted Python in hardened, single-use containers. Compatible with Tako VM's API.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": keyHeader},
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
		// Either scheme, when the server has keys.
		"security": []any{map[string]any{"apiKey": []any{}}, map[string]any{"bearer": []any{}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// responsesOf describes op's responses, registering their schemas.
func responsesOf(op operation, schemas map[string]any) map[string]any {
	out := map[string]any{}
	for code, body := range op.responses {
		r := map[string]any{"description": http.StatusText(code)}
		if alts, ok := body.(oneOf); ok {
			var choices []any
			for _, alt := range alts {
				choices = append(choices, schemaOf(reflect.TypeOf(alt), schemas))
			}
			r["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"oneOf": choices}}}
			out[strconv.Itoa(code)] = r
			continue
		}
		switch body {
		case nil:
		case "binary":
			r["content"] = map[string]any{"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
		case "text":
			r["content"] = map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
		case "html":
			r["content"] = map[string]any{"text/html": map[string]any{"schema": map[string]any{"type": "string"}}}
		case "json":
			r["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		case "event-stream":
			r["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
		default:
			r["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(body), schemas)}}
		}
		out[strconv.Itoa(code)] = r
	}
	return out
}

// pathParams returns the {names} in path.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// schemaOf returns the JSON Schema of values of t as encoding/json writes
// them. Named structs go into schemas and are referenced.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	switch {
	case t == rawType:
		return map[string]any{} // any JSON value
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{schemaOf(t.Elem(), schemas), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		name := t.Name()
		if _, done := schemas[name]; !done {
			schemas[name] = map[string]any{} // a placeholder against recursion
			props := map[string]any{}
			structProps(t, props, schemas)
			schemas[name] = map[string]any{"type": "object", "properties": props}
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	default:
		return map[string]any{}
	}
}

// structProps adds the JSON properties of struct t, embedded structs
// flattened, to props.
func structProps(t reflect.Type, props map[string]any, schemas map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			structProps(f.Type, props, schemas)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type, schemas)
	}
}

// handleOpenAPI is GET /openapi.json.
func (s *Server) handleOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.openapi)
}
