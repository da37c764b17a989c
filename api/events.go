package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tako-run/tako/jobs"
)

// pingEvery is how often an open event stream gets a comment, so proxies
// keep it open and a client that went away is noticed.
const pingEvery = 15 * time.Second

// followFunc sends one execution's events to emit until they end (nil),
// emit fails or ctx ends; an error before the first event is an answer of
// its own (404, 422).
type followFunc func(ctx context.Context, emit func(jobs.Event) error) error

// streamSlots counts the event streams this node serves, up to its cap
// (streaming.max_streams).
type streamSlots struct {
	open atomic.Int64
	max  int64
}

// acquire takes a slot; false when all are taken.
func (s *streamSlots) acquire() bool {
	if s.open.Add(1) > s.max {
		s.open.Add(-1)
		return false
	}
	return true
}

// release gives a slot back.
func (s *streamSlots) release() { s.open.Add(-1) }

// wantsEvents reports whether the request asks for Server-Sent Events.
func wantsEvents(c *fiber.Ctx) bool {
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream")
}

// acquireStream takes one of this node's stream slots, or answers 503.
func (s *Server) acquireStream() error {
	if !s.streams.acquire() {
		s.metrics.StreamRejected()
		return &jobs.Error{Code: jobs.EUNAVAILABLE, Message: fmt.Sprintf("this node serves its most event streams (%d); try again shortly", s.streams.max), RetryAfter: 5}
	}
	return nil
}

// handleEvents is GET /jobs/:id/events: the job's events as Server-Sent
// Events, from any node, resumed after Last-Event-ID when the client
// sends one.
func (s *Server) handleEvents(c *fiber.Ctx) error {
	id, err := pathID(c, jobNotFound)
	if err != nil {
		return err
	}
	if err := s.acquireStream(); err != nil {
		return err
	}
	caller, last := callerOf(c), c.Get("Last-Event-ID")
	return s.serveEvents(c, func(ctx context.Context, emit func(jobs.Event) error) error {
		err := s.service.Events(ctx, caller, id, last, emit)
		if jobs.ErrorCodeOf(err) == jobs.ENOTFOUND {
			return &jobs.Error{Code: jobs.ENOTFOUND, Message: jobNotFound}
		}
		return err
	})
}

// serveEvents answers with the events follow sends, as Server-Sent
// Events. It holds a stream slot, which it gives back when the stream
// ends. It waits for the first event before it answers, so a follow that
// fails at once (no such job) gets its own status instead of a stream.
func (s *Server) serveEvents(c *fiber.Ctx, follow followFunc) error {
	ctx, cancel := context.WithCancel(s.streamsCtx)
	events, ended := make(chan jobs.Event, 16), make(chan error, 1)
	go func() {
		ended <- follow(ctx, func(ev jobs.Event) error {
			select {
			case events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(events)
	}()
	first, ok := <-events
	if !ok {
		cancel()
		s.streams.release()
		if err := <-ended; err != nil {
			return err
		}
		return jobs.Errorf(jobs.EINTERNAL, "the event stream ended before its first event")
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if first.Execution != nil {
		c.Set("X-Tako-Job-Id", first.Execution.ID)
	}
	conn := c.Context().Conn()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.streams.release()
		defer cancel()
		defer s.metrics.StreamOpened()()
		s.writeEvents(w, conn, first, events, ended)
	})
	return nil
}

// writeEvents writes first and then the events that follow until the
// feed ends, the client goes or the server stops streaming, with a ping
// every pingEvery.
func (s *Server) writeEvents(w *bufio.Writer, conn net.Conn, first jobs.Event, events <-chan jobs.Event, ended <-chan error) {
	send := func(write func() error) bool {
		// The write deadline fasthttp set for the answer would cut a long
		// stream: each write gets its own.
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if write() != nil {
			return false
		}
		return w.Flush() == nil
	}
	if !send(func() error { return writeEvent(w, first) }) {
		return
	}
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if err := <-ended; err != nil && s.streamsCtx.Err() == nil {
					s.logger.Warn("event stream ended early", "error", err)
					send(func() error { return writeStreamError(w, err) })
				}
				return
			}
			if !send(func() error { return writeEvent(w, ev) }) {
				return
			}
		case <-ping.C:
			if !send(func() error { _, err := w.WriteString(": ping\n\n"); return err }) {
				return
			}
		case <-s.streamsCtx.Done():
			return
		}
	}
}

// writeEvent writes one event in the text/event-stream format: its id,
// its name and its data, one JSON document on one line.
func writeEvent(w *bufio.Writer, ev jobs.Event) error {
	data, err := json.Marshal(eventData(ev))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Kind, data)
	return err
}

// writeStreamError tells the client that the stream broke off for a
// reason of tako's own; it may reconnect with the last id it got.
func writeStreamError(w *bufio.Writer, err error) error {
	detail := internalDetail
	if e, ok := err.(*jobs.Error); ok && e.Code != jobs.EINTERNAL {
		detail = e.Message
	}
	data, _ := json.Marshal(EventErrorData{Type: "stream_error", Message: detail})
	_, werr := fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
	return werr
}

// The data of each event, as the stream's JSON.
type (
	// EventQueuedData is the data of a queued event.
	EventQueuedData struct {
		JobID     string      `json:"job_id"`
		Status    jobs.Status `json:"status"`
		JobType   string      `json:"job_type"`
		CreatedAt string      `json:"created_at"`
	}
	// EventStartedData is the data of a started event: the node that runs
	// the job, and whether its container was warm or cold.
	EventStartedData struct {
		Node  string     `json:"node"`
		Start jobs.Start `json:"start"`
	}
	// EventOutputData is the data of a stdout or stderr event: the
	// per-job sequence number and the byte offset of Data in its stream.
	EventOutputData struct {
		Seq    int    `json:"seq"`
		Offset int64  `json:"offset"`
		Data   string `json:"data"`
	}
	// EventTruncatedData is the data of a truncated event: the stream
	// that reached its cap.
	EventTruncatedData struct {
		Stream string `json:"stream"`
	}
	// EventErrorData is the data of an error event: the job's error, or
	// type stream_error when the stream itself broke off.
	EventErrorData struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	// EventDoneData is the data of the last event.
	EventDoneData struct {
		JobID  string      `json:"job_id"`
		Status jobs.Status `json:"status"`
	}
)

// eventData is the JSON data of ev.
func eventData(ev jobs.Event) any {
	switch ev.Kind {
	case jobs.EventQueued:
		e := ev.Execution
		return EventQueuedData{JobID: e.ID, Status: e.Status, JobType: e.JobType, CreatedAt: timestamp(e.CreatedAt)}
	case jobs.EventStarted:
		return EventStartedData{Node: ev.Started.Node, Start: ev.Started.Start}
	case jobs.EventStdout, jobs.EventStderr:
		return EventOutputData{Seq: ev.Chunk.Seq, Offset: ev.Chunk.Offset, Data: ev.Chunk.Data}
	case jobs.EventTruncated:
		return EventTruncatedData{Stream: string(ev.Stream)}
	case jobs.EventResult:
		return newExecutionResponse(ev.Execution)
	case jobs.EventError:
		return EventErrorData{Type: string(ev.Error.Type), Message: ev.Error.Message}
	default: // done
		return EventDoneData{JobID: ev.Execution.ID, Status: ev.Execution.Status}
	}
}

// ResultJSON is the JSON of GET /jobs/{id}/result for an ended execution:
// the body of its webhook.
func ResultJSON(exec *jobs.Execution) ([]byte, error) {
	return json.Marshal(newExecutionResponse(exec))
}
