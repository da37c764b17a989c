package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tako-run/tako/runner/runnertest"
)

// sseEvent is one Server-Sent Event as a client got it.
type sseEvent struct {
	id, name string
	data     string
	at       time.Time
}

// output is the data of a stdout or stderr event.
func (e sseEvent) output(t *testing.T) (seq int, offset int64, data string) {
	t.Helper()
	var d struct {
		Seq    int    `json:"seq"`
		Offset int64  `json:"offset"`
		Data   string `json:"data"`
	}
	if err := json.Unmarshal([]byte(e.data), &d); err != nil {
		t.Fatalf("%s event data %q: %v", e.name, e.data, err)
	}
	return d.Seq, d.Offset, d.Data
}

// object is the data of an event as a JSON object.
func (e sseEvent) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.data), &m); err != nil {
		t.Fatalf("%s event data %q: %v", e.name, e.data, err)
	}
	return m
}

// eventStream is an open text/event-stream answer being read.
type eventStream struct {
	resp   *http.Response
	events chan sseEvent
	pings  atomic.Int64
}

// openStream sends req and reads its answer as Server-Sent Events until it
// ends or close is called. The answer must be 200 text/event-stream.
func openStream(t *testing.T, req *http.Request) *eventStream {
	t.Helper()
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		t.Fatalf("%s %s: %d %s %s", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), b.String())
	}
	s := &eventStream{resp: resp, events: make(chan sseEvent, 1024)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

// read parses the stream into s.events and closes it at the end.
func (s *eventStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				ev.at = time.Now()
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.pings.Add(1)
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// close drops the connection.
func (s *eventStream) close() { s.resp.Body.Close() }

// next returns the next event, failing the test when none comes within
// within or the stream ended.
func (s *eventStream) next(t *testing.T, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended early")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return sseEvent{}
}

// all returns every event until done, which must come within within.
func (s *eventStream) all(t *testing.T, within time.Duration) []sseEvent {
	t.Helper()
	var evs []sseEvent
	deadline := time.Now().Add(within)
	for {
		ev := s.next(t, time.Until(deadline))
		evs = append(evs, ev)
		if ev.name == "done" {
			return evs
		}
	}
}

// streamRequest is GET /jobs/{id}/events on s, resuming after lastID.
func streamRequest(t *testing.T, s *testServer, id, lastID string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+"/jobs/"+id+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return req
}

// streamText adds up the stdout or stderr events of evs, checking that
// each starts where the one before ended, from offset from.
func streamText(t *testing.T, evs []sseEvent, name string, from int64) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.name != name {
			continue
		}
		_, off, data := ev.output(t)
		if off != from+int64(b.Len()) {
			t.Fatalf("%s event at offset %d, want %d: a gap or a repeat", name, off, from+int64(b.Len()))
		}
		b.WriteString(data)
	}
	return b.String()
}

// names lists the events' names, consecutive output events once.
func names(evs []sseEvent) []string {
	var out []string
	for _, ev := range evs {
		if n := len(out); n > 0 && out[n-1] == ev.name && (ev.name == "stdout" || ev.name == "stderr") {
			continue
		}
		out = append(out, ev.name)
	}
	return out
}

// printer prints n numbered lines on stdout and on stderr, every step.
func printer(n int, step time.Duration) string {
	return fmt.Sprintf(`import sys, time
for i in range(%d):
    print("line", i, time.time())
    print("err", i, file=sys.stderr)
    time.sleep(%g)`, n, step.Seconds())
}

// TestLiveOutputAcrossNodes runs jobs on node A, of a job type only A
// serves, and follows them from node B through the shared database.
func TestLiveOutputAcrossNodes(t *testing.T) {
	runnertest.Docker(t)
	startServer(t) // the images, built once before the parallel tests start
	t.Parallel()
	a := startOwnServer(t, "TAKO_JOB_TYPES_LIVE_POOL_MIN=1", "TAKO_JOB_TYPES_LIVE_POOL_MAX=2")
	b := startNode(t, a, "TAKO_STREAMING_MAX_STREAMS=3")
	submit := func(t *testing.T, code string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"code": code, "job_type": "live"})
		return a.submit(t, string(body))
	}

	t.Run("lines arrive on the other node while the job runs, in order", func(t *testing.T) {
		const lines = 20
		id := submit(t, printer(lines, 200*time.Millisecond))
		s := openStream(t, streamRequest(t, b, id, ""))
		var evs []sseEvent
		var soFar map[string]any
		for len(evs) == 0 || evs[len(evs)-1].name != "done" {
			ev := s.next(t, 2*time.Minute)
			evs = append(evs, ev)
			if ev.name == "stdout" && soFar == nil && strings.Count(streamText(t, evs, "stdout", 0), "\n") >= 3 {
				// What B says the running job printed so far holds
				// what B has streamed.
				_, v := b.get(t, "/jobs/"+id)
				soFar = v.(map[string]any)
				if soFar["status"] != "running" || !strings.HasPrefix(fmt.Sprint(soFar["stdout"]), streamText(t, evs, "stdout", 0)) {
					t.Errorf("GET /jobs/%s while it runs: %v; streamed so far %q", id, soFar, streamText(t, evs, "stdout", 0))
				}
			}
		}
		got := names(evs)
		if want := []string{"queued", "started"}; !reflect.DeepEqual(got[:2], want) || !reflect.DeepEqual(got[len(got)-2:], []string{"result", "done"}) {
			t.Fatalf("events: %v", got)
		}
		started := evs[1].object(t)
		if started["node"] == "" || (started["start"] != "warm" && started["start"] != "cold") {
			t.Errorf("started: %v", started)
		}
		stdout, stderr := streamText(t, evs, "stdout", 0), streamText(t, evs, "stderr", 0)
		var wantErr strings.Builder
		for i := range lines {
			fmt.Fprintf(&wantErr, "err %d\n", i)
		}
		if stderr != wantErr.String() {
			t.Errorf("stderr streamed: %q, want %q", stderr, wantErr.String())
		}
		outLines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if len(outLines) != lines {
			t.Fatalf("stdout streamed: %q", stdout)
		}
		// A line may come in pieces (print writes its text and its end
		// apart): it arrived with its newline.
		var delays []time.Duration
		var firstOut, result time.Time
		var pending string
		for _, ev := range evs {
			if ev.name == "result" {
				result = ev.at
			}
			if ev.name != "stdout" {
				continue
			}
			if firstOut.IsZero() {
				firstOut = ev.at
			}
			_, _, data := ev.output(t)
			pending += data
			for {
				l, rest, ok := strings.Cut(pending, "\n")
				if !ok {
					break
				}
				pending = rest
				f := strings.Fields(l)
				printed, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					t.Fatalf("stdout line %q", l)
				}
				delays = append(delays, ev.at.Sub(time.Unix(0, int64(printed*1e9))))
			}
		}
		for i, l := range outLines {
			if !strings.HasPrefix(l, fmt.Sprintf("line %d ", i)) {
				t.Fatalf("stdout line %d: %q", i, l)
			}
		}
		// The job prints for 4 s: its first line comes long before its end.
		if result.Sub(firstOut) < 2*time.Second {
			t.Errorf("the first line came %s before the result: output was held back", result.Sub(firstOut))
		}
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		t.Logf("print to event on the other node, %d lines: p50 %s, p99 %s, max %s",
			len(delays), delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1])

		// The result event is the same JSON as /jobs/{id}/result.
		var fromEvent map[string]any
		for _, ev := range evs {
			if ev.name == "result" {
				fromEvent = ev.object(t)
			}
		}
		if fromResult := b.result(t, id); !reflect.DeepEqual(fromEvent, fromResult) {
			t.Errorf("result event:\n%v\n/jobs/%s/result:\n%v", fromEvent, id, fromResult)
		}
		if fromEvent["stdout"] != stdout || fromEvent["stderr"] != stderr {
			t.Errorf("the record's output differs from the streamed output")
		}
	})

	t.Run("a reconnect with Last-Event-ID gets the rest exactly once", func(t *testing.T) {
		id := submit(t, printer(15, 200*time.Millisecond))
		first := openStream(t, streamRequest(t, b, id, ""))
		var before []sseEvent
		for strings.Count(streamText(t, before, "stdout", 0), "\n") < 4 {
			before = append(before, first.next(t, 2*time.Minute))
		}
		first.close()
		last := before[len(before)-1]
		_, off, data := last.output(t)
		seenOut := off + int64(len(data))
		seenErr := int64(len(streamText(t, before, "stderr", 0)))

		rest := openStream(t, streamRequest(t, b, id, last.id)).all(t, 2*time.Minute)
		if names(rest)[0] == "queued" || names(rest)[0] == "started" {
			t.Errorf("the resumed stream starts over: %v", names(rest))
		}
		record := b.result(t, id)
		out := streamText(t, before, "stdout", 0) + streamText(t, rest, "stdout", seenOut)
		errs := streamText(t, before, "stderr", 0) + streamText(t, rest, "stderr", seenErr)
		if out != record["stdout"] || errs != record["stderr"] {
			t.Errorf("before and after the reconnect: stdout %q stderr %q; the record: %q %q", out, errs, record["stdout"], record["stderr"])
		}

		// After the job ended, its output log is gone: the same id
		// resumes from the record, still exactly once.
		late := openStream(t, streamRequest(t, b, id, last.id)).all(t, time.Minute)
		if out := streamText(t, before, "stdout", 0) + streamText(t, late, "stdout", seenOut); out != record["stdout"] {
			t.Errorf("a late resume: stdout %q, the record %q", out, record["stdout"])
		}
		if got := names(late); !reflect.DeepEqual(got[len(got)-2:], []string{"result", "done"}) {
			t.Errorf("a late resume: %v", got)
		}
		// A resume past the result sends done only.
		var resultID string
		for _, ev := range late {
			if ev.name == "result" {
				resultID = ev.id
			}
		}
		if got := names(openStream(t, streamRequest(t, b, id, resultID)).all(t, time.Minute)); !reflect.DeepEqual(got, []string{"done"}) {
			t.Errorf("resumed after the result: %v", got)
		}
		req := streamRequest(t, b, id, "not-an-id")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("a bad Last-Event-ID: %d", resp.StatusCode)
		}
	})

	t.Run("a flood is truncated with a truncated event", func(t *testing.T) {
		id := submit(t, `import sys, time
sys.stdout.write("x" * 300000)
sys.stdout.flush()
time.sleep(1)
print("after")`)
		evs := openStream(t, streamRequest(t, b, id, "")).all(t, 2*time.Minute)
		var truncated []string
		for _, ev := range evs {
			if ev.name == "truncated" {
				truncated = append(truncated, fmt.Sprint(ev.object(t)["stream"]))
			}
		}
		record := b.result(t, id)
		out := streamText(t, evs, "stdout", 0)
		if !reflect.DeepEqual(truncated, []string{"stdout"}) || record["stdout_truncated"] != true || out != record["stdout"] || len(out) != 65536 {
			t.Errorf("truncated events %v, %d bytes streamed; the record: truncated %v, %d bytes", truncated, len(out), record["stdout_truncated"], len(fmt.Sprint(record["stdout"])))
		}
	})

	t.Run("POST /execute with Accept: text/event-stream runs and streams at once", func(t *testing.T) {
		for _, path := range []string{"/execute", "/execute/async"} {
			body, _ := json.Marshal(map[string]any{"code": printer(3, 300*time.Millisecond), "job_type": "live"})
			req, err := http.NewRequest(http.MethodPost, a.url+path, strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			s := openStream(t, req)
			evs := s.all(t, 2*time.Minute)
			if got := names(evs); got[0] != "queued" || got[1] != "started" || !reflect.DeepEqual(got[len(got)-2:], []string{"result", "done"}) {
				t.Errorf("%s: events %v", path, got)
			}
			id := s.resp.Header.Get("X-Tako-Job-Id")
			if id == "" || evs[0].object(t)["job_id"] != id {
				t.Fatalf("%s: X-Tako-Job-Id %q, queued %v", path, id, evs[0].data)
			}
			if fromResult := b.result(t, id); !reflect.DeepEqual(evs[len(evs)-2].object(t), fromResult) {
				t.Errorf("%s: the result event differs from /jobs/%s/result", path, id)
			}
			if n := strings.Count(streamText(t, evs, "stdout", 0), "\n"); n != 3 {
				t.Errorf("%s: %d lines streamed", path, n)
			}
		}
	})

	t.Run("a failed job ends with result, error, done", func(t *testing.T) {
		id := submit(t, `raise ValueError("boom")`)
		evs := openStream(t, streamRequest(t, b, id, "")).all(t, 2*time.Minute)
		got := names(evs)
		if !reflect.DeepEqual(got[len(got)-3:], []string{"result", "error", "done"}) {
			t.Fatalf("events: %v", got)
		}
		if e := evs[len(evs)-2].object(t); !strings.Contains(fmt.Sprint(e["message"]), "boom") || e["type"] == "" {
			t.Errorf("error event: %v", e)
		}
		if d := evs[len(evs)-1].object(t); d["job_id"] != id || d["status"] != "failed" {
			t.Errorf("done event: %v", d)
		}
	})

	t.Run("a quiet stream gets a ping every 15 s, and a node past streaming.max_streams answers 503", func(t *testing.T) {
		id := submit(t, "import time; time.sleep(17); print('late')")
		var open []*eventStream
		for range 3 {
			open = append(open, openStream(t, streamRequest(t, b, id, "")))
		}
		resp, err := http.DefaultClient.Do(streamRequest(t, b, id, ""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("a fourth stream on a node with streaming.max_streams 3: %d %v", resp.StatusCode, resp.Header)
		}
		evs := open[0].all(t, 2*time.Minute)
		if open[0].pings.Load() < 1 || streamText(t, evs, "stdout", 0) != "late\n" {
			t.Errorf("after 17 s of silence: %d pings, stdout %q", open[0].pings.Load(), streamText(t, evs, "stdout", 0))
		}
		for _, s := range open {
			s.close()
		}
	})

	t.Run("streams are counted in the metrics", func(t *testing.T) {
		_, raw, err := getRaw(b.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		v := string(raw)
		if !metricAtLeast(v, `tako_event_streams_total{result="opened"}`, 4) || !metricAtLeast(v, `tako_event_streams_total{result="rejected"}`, 1) ||
			!strings.Contains(v, "tako_event_streams_open ") {
			t.Errorf("B's stream metrics:\n%s", grepLines(v, "tako_event_streams"))
		}
	})
}

// metricAtLeast reports whether the exposition text has series with a
// value of at least min.
func metricAtLeast(text, series string, min float64) bool {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f >= min
		}
	}
	return false
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
