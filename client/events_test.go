package client

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestReadEvents(t *testing.T) {
	t.Parallel()
	in := ": ping\r\n\r\n" +
		"id: 1\nevent: queued\ndata: {\"job_id\":\"j\"}\n\n" +
		"id: 2\r\nevent: stdout\r\ndata:{\"seq\":1,\"data\":\"hi\\n\"}\r\n\r\n" +
		"retry: 10\nevent: x\ndata: a\ndata: b\n\n" +
		"id: 4\nevent: done\ndata: {\"status\":\"succeeded\"}\n\n" +
		"id: 5\nevent: stdout\ndata: {\"data\":\"cut off\"}\n" // no blank line: never dispatched
	var got []string
	err := readEvents(strings.NewReader(in), func(ev Event) bool {
		got = append(got, fmt.Sprintf("%s/%s/%s/%q/%s", ev.ID, ev.Type, ev.Data, ev.Text, ev.Status))
		return true
	})
	want := []string{
		`1/queued/{"job_id":"j"}/""/`,
		`2/stdout/{"seq":1,"data":"hi\n"}/"hi\n"/`,
		`2/x/a` + "\n" + `b/""/`, // the id carries over, as SSE says
		`4/done/{"status":"succeeded"}/""/succeeded`,
	}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err == nil {
		t.Error("a cut-off stream ended without an error")
	}
}

// sseServer serves a job's stream over several connections: each is the
// list of frames it writes before it hangs up. It records each
// connection's Last-Event-ID.
type sseServer struct {
	conns [][]string
	mu    sync.Mutex
	n     int
	last  []string
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.n
	s.n++
	s.last = append(s.last, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	if r.Header.Get("Accept") != "text/event-stream" || r.URL.Path != "/jobs/j1/events" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if i >= len(s.conns) {
		http.Error(w, `{"detail":"no more"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	for _, f := range s.conns[i] {
		fmt.Fprint(w, f)
		w.(http.Flusher).Flush()
	}
}

func TestStreamResumesWithLastEventID(t *testing.T) {
	t.Parallel()
	s := &sseServer{conns: [][]string{
		// The connection drops after two events, in the middle of a third.
		{"id: 1\nevent: queued\ndata: {}\n\n", "id: 2\nevent: stdout\ndata: {\"data\":\"a\"}\n\n", "id: 3\nevent: std"},
		// The server breaks off with a stream_error.
		{"id: 3\nevent: stdout\ndata: {\"data\":\"b\"}\n\n", "event: error\ndata: {\"type\":\"stream_error\",\"message\":\"x\"}\n\n"},
		{"id: 4\nevent: result\ndata: {\"job_id\":\"j1\",\"status\":\"succeeded\",\"success\":true,\"stdout\":\"ab\"}\n\n", "id: 5\nevent: done\ndata: {\"status\":\"succeeded\"}\n\n"},
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var got []string
	for ev, err := range newTestClient(t, srv.URL).Stream(t.Context(), "j1", "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev.ID+":"+ev.Type+":"+ev.Text)
		if ev.Type == EventResult && (ev.Result == nil || ev.Result.Stdout != "ab" || !ev.Result.Success) {
			t.Errorf("result %+v", ev.Result)
		}
	}
	if want := "1:queued: 2:stdout:a 3:stdout:b 4:result: 5:done:"; strings.Join(got, " ") != want {
		t.Errorf("events %v, want %s", got, want)
	}
	if want := ",2,3"; strings.Join(s.last, ",") != want {
		t.Errorf("Last-Event-IDs %q, want %q", s.last, want)
	}
}

func TestStreamFromLastEventIDAndBreak(t *testing.T) {
	t.Parallel()
	s := &sseServer{conns: [][]string{{"id: 8\nevent: stdout\ndata: {\"data\":\"x\"}\n\n", "id: 9\nevent: stdout\ndata: {\"data\":\"y\"}\n\n"}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	n := 0
	for _, err := range newTestClient(t, srv.URL).Stream(t.Context(), "j1", "7") {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 || s.last[0] != "7" {
		t.Errorf("%d events, Last-Event-ID %q", n, s.last[0])
	}
}

func TestStreamGivesUp(t *testing.T) {
	t.Parallel()
	// Every connection ends at once, without an event.
	s := &sseServer{conns: [][]string{{}, {}, {}, {}, {}, {}}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var errs []error
	for _, err := range newTestClient(t, srv.URL).Stream(t.Context(), "j1", "") {
		errs = append(errs, err)
	}
	if len(errs) != 1 || errs[0] == nil || s.n != DefaultRetries+1 {
		t.Errorf("errors %v after %d connections, want one after %d", errs, s.n, DefaultRetries+1)
	}
}

func TestStreamNotFound(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"detail":"Job not found"}`))
	}))
	defer srv.Close()
	for _, err := range newTestClient(t, srv.URL).Stream(t.Context(), "nope", "") {
		if apiErr, ok := err.(*APIError); !ok || apiErr.Status != 404 || apiErr.Detail != "Job not found" {
			t.Errorf("err = %v, want 404", err)
		}
	}
}

// TestExecuteStream: POST /execute's stream, resumed through GET
// /jobs/{id}/events when it drops, unless retries are off.
func TestExecuteStream(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var requests []string // method path last-event-id
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path+" "+r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		if r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch r.Method + " " + r.URL.Path {
		case "POST /execute":
			fmt.Fprint(w, "id: 1\nevent: queued\ndata: {\"job_id\":\"j1\"}\n\nid: 2\nevent: stdout\ndata: {\"data\":\"a\"}\n\n")
		case "GET /jobs/j1/events":
			fmt.Fprint(w, "id: 3\nevent: stdout\ndata: {\"data\":\"b\"}\n\nid: 4\nevent: done\ndata: {\"status\":\"succeeded\"}\n\n")
		}
	}))
	defer srv.Close()
	collect := func(c *Client) (string, error) {
		var out []string
		for ev, err := range c.ExecuteStream(t.Context(), Request{Code: "print(1)"}) {
			if err != nil {
				return strings.Join(out, ","), err
			}
			out = append(out, ev.Type+":"+ev.Text)
		}
		return strings.Join(out, ","), nil
	}
	got, err := collect(newTestClient(t, srv.URL))
	if err != nil || got != "queued:,stdout:a,stdout:b,done:" {
		t.Errorf("resumed stream: %q, %v", got, err)
	}
	mu.Lock()
	if strings.Join(requests, "|") != "POST /execute |GET /jobs/j1/events 2" {
		t.Errorf("requests %q, want the POST then a resume after event 2", requests)
	}
	mu.Unlock()
	got, err = collect(newTestClient(t, srv.URL, WithRetries(0)))
	if err == nil || !strings.Contains(err.Error(), "the stream ended before its done event") || got != "queued:,stdout:a" {
		t.Errorf("without retries: %q, %v", got, err)
	}
}
