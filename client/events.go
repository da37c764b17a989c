package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
)

// The event types of a job's stream, in the order they come.
const (
	EventQueued    = "queued"    // always first
	EventStarted   = "started"   // it got a container
	EventStdout    = "stdout"    // output: Text
	EventStderr    = "stderr"    // output: Text
	EventTruncated = "truncated" // a stream reached its cap
	EventResult    = "result"    // it ended: Result
	EventError     = "error"     // it failed: Error
	EventDone      = "done"      // always last: Status
)

// maxEventBytes bounds one event (a "result" carries the whole record).
const maxEventBytes = 32 << 20

// Event is one Server-Sent Event of a job's stream. Data is its JSON; the
// other fields are decoded from it for the types they belong to.
type Event struct {
	ID   string          // pass the last one to Stream to resume after it
	Type string          // one of the Event* constants
	Data json.RawMessage // the event's JSON data

	Text   string     // stdout and stderr: the output
	Result *Execution // result: the full record
	Error  *ExecError // error: the job's error
	Status Status     // done: the job's final status
}

// Stream follows job id's events (GET /jobs/{id}/events), from the start,
// or after lastEventID when it is not empty. The sequence ends after the
// "done" event, when ctx ends, or after an error, which it yields last.
// When the connection drops, or the server ends the stream early, Stream
// reconnects with Last-Event-ID, so no event is lost or repeated; it gives
// up after the Client's retries fail in a row without an event.
// Breaking out of the loop closes the connection.
func (c *Client) Stream(ctx context.Context, id, lastEventID string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		last, failures := lastEventID, 0
		for {
			opened, done, progressed, err := c.streamOnce(ctx, id, last, func(ev Event) bool {
				last = ev.ID
				return yield(ev, nil)
			})
			switch {
			case done:
				return
			case ctx.Err() != nil:
				yield(Event{}, fmt.Errorf("stream job %s: %w", id, ctx.Err()))
				return
			case !opened:
				yield(Event{}, err) // send has retried what may be retried
				return
			}
			if progressed {
				failures = 0
			} else if failures++; failures > c.retries {
				if err == nil {
					err = errors.New("the stream ended before its done event")
				}
				yield(Event{}, fmt.Errorf("stream job %s: %w", id, err))
				return
			}
		}
	}
}

// ExecuteStream runs req and follows it in the same request (POST
// /execute with Accept: text/event-stream): its events, from "queued" to
// "done", as Stream yields them. The sequence ends after the "done"
// event, when ctx ends, or after an error, which it yields last; an
// answer of 400 or more is an *APIError. The POST is retried only when no
// connection could be made. When the stream drops after the "queued"
// event and the Client has retries, it resumes through Stream with the
// last event's id, so no event is lost or repeated; with WithRetries(0)
// the drop is the error. Breaking out of the loop closes the connection;
// the job goes on.
func (c *Client) ExecuteStream(ctx context.Context, req Request) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		h := http.Header{"Accept": {"text/event-stream"}}
		resp, err := c.send(ctx, call{method: http.MethodPost, path: "/execute", body: req.wire(""), header: h, retry: retryDial})
		if err != nil {
			yield(Event{}, err)
			return
		}
		var id, last string
		over := false // the caller stopped, or the done event came
		err = func() error {
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				return &BadAnswerError{Method: http.MethodPost, Path: "/execute", Status: resp.StatusCode, Err: fmt.Errorf("answer is %q, not text/event-stream", ct)}
			}
			return readEvents(resp.Body, func(ev Event) bool {
				if ev.Type == EventError && ev.Error != nil && ev.Error.Type == "stream_error" {
					return true // it broke off on the server's side: resume below
				}
				if ev.Type == EventQueued {
					var d struct {
						JobID string `json:"job_id"`
					}
					json.Unmarshal(ev.Data, &d)
					id = d.JobID
				}
				last = ev.ID
				if !yield(ev, nil) || ev.Type == EventDone {
					over = true
					return false
				}
				return true
			})
		}()
		switch {
		case over:
			return
		case ctx.Err() != nil:
			yield(Event{}, fmt.Errorf("execute: %w", ctx.Err()))
			return
		case id == "" || c.retries == 0:
			if err == nil || err == io.EOF {
				err = errors.New("the stream ended before its done event")
			}
			yield(Event{}, fmt.Errorf("execute: %w", err))
			return
		}
		for ev, err := range c.Stream(ctx, id, last) {
			if !yield(ev, err) {
				return
			}
		}
	}
}

// streamOnce reads one connection's events into emit. opened is false when
// no stream could be opened (err says why); done is true when the stream
// is over for the caller: the done event came, or emit asked to stop.
// progressed says whether any event came.
func (c *Client) streamOnce(ctx context.Context, id, last string, emit func(Event) bool) (opened, done, progressed bool, err error) {
	h := http.Header{"Accept": {"text/event-stream"}}
	if last != "" {
		h.Set("Last-Event-ID", last)
	}
	resp, err := c.send(ctx, call{method: http.MethodGet, path: jobPath(id, "/events"), header: h, retry: retrySafe})
	if err != nil {
		return false, false, false, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, false, false, fmt.Errorf("stream job %s: answer is %q, not text/event-stream", id, ct)
	}
	err = readEvents(resp.Body, func(ev Event) bool {
		if ev.Type == EventError && ev.Error != nil && ev.Error.Type == "stream_error" {
			// The stream broke off on the server's side; reconnect.
			return true
		}
		progressed = true
		if !emit(ev) || ev.Type == EventDone {
			done = true
			return false
		}
		return true
	})
	return true, done, progressed, err
}

// readEvents parses text/event-stream from r and calls emit for each
// event until emit returns false or r ends. Comments and retry fields are
// skipped; an event without data is not dispatched, as the SSE
// specification says.
func readEvents(r io.Reader, emit func(Event) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		ev   Event
		data strings.Builder
		has  bool
	)
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if line == "" {
			if has {
				ev.Data = json.RawMessage(strings.TrimSuffix(data.String(), "\n"))
				decodeEvent(&ev)
				if !emit(ev) {
					return nil
				}
			}
			ev, has = Event{ID: ev.ID}, false
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment, such as ": ping"
		case "id":
			ev.ID = value
		case "event":
			ev.Type = value
		case "data":
			has = true
			data.WriteString(value)
			data.WriteByte('\n')
			if data.Len() > maxEventBytes {
				return fmt.Errorf("event over %d bytes", maxEventBytes)
			}
		}
	}
}

// readLine returns one line without its end (\n, \r\n or \r-less), or
// io.EOF after the last.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, err := br.ReadSlice('\n')
		b.Write(frag)
		if b.Len() > maxEventBytes {
			return "", fmt.Errorf("event line over %d bytes", maxEventBytes)
		}
		switch {
		case err == nil:
			return strings.TrimSuffix(strings.TrimSuffix(b.String(), "\n"), "\r"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && b.Len() > 0:
			return "", io.ErrUnexpectedEOF // a cut-off event is not dispatched
		default:
			return "", err
		}
	}
}

// decodeEvent fills the typed fields of ev from its Data. Data that does
// not decode leaves them empty; Data keeps it.
func decodeEvent(ev *Event) {
	if ev.Type == "" {
		ev.Type = "message"
	}
	switch ev.Type {
	case EventStdout, EventStderr:
		var d struct {
			Data string `json:"data"`
		}
		if json.Unmarshal(ev.Data, &d) == nil {
			ev.Text = d.Data
		}
	case EventResult:
		var x Execution
		if json.Unmarshal(ev.Data, &x) == nil {
			ev.Result = &x
		}
	case EventError:
		var e ExecError
		if json.Unmarshal(ev.Data, &e) == nil {
			ev.Error = &e
		}
	case EventDone:
		var d struct {
			Status Status `json:"status"`
		}
		if json.Unmarshal(ev.Data, &d) == nil {
			ev.Status = d.Status
		}
	}
}
