package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// cursor is where a client is in an execution's event stream, and the id
// of the event that brought it there. Offsets, not only the row's seq, are
// in it, so that a stream resumed after the job's output log was replaced
// by its record still sends exactly the bytes the client missed.
type cursor struct {
	fresh bool  // nothing seen: the stream starts with queued
	seq   int   // the last output log row seen (started is 1)
	out   int64 // stored text of stdout seen
	err   int64 // stored text of stderr seen
	cut   uint8 // truncated events seen: 1 stdout, 2 stderr
	stage uint8 // after the output: 1 result sent, 2 error sent, 3 done sent
}

// String renders c as an event id.
func (c cursor) String() string {
	return fmt.Sprintf("%d.%d.%d.%d.%d", c.seq, c.out, c.err, c.cut, c.stage)
}

// parseCursor reads a Last-Event-ID; "" starts from the beginning.
func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{fresh: true}, nil
	}
	parts := strings.Split(s, ".")
	bad := jobs.FieldErrorf("Last-Event-ID", "%q is not an event id of this stream", jobs.Truncate(s, 64))
	if len(parts) != 5 {
		return cursor{}, bad
	}
	var n [5]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return cursor{}, bad
		}
		n[i] = v
	}
	if n[0] > 1<<31 || n[3] > 3 || n[4] > 3 {
		return cursor{}, bad
	}
	return cursor{seq: int(n[0]), out: n[1], err: n[2], cut: uint8(n[3]), stage: uint8(n[4])}, nil
}

// eventRows is how many output log rows one read takes.
const eventRows = 256

// Events sends execution id's events to emit, as c may see them, from
// just after the event lastEventID names ("" for the start): queued,
// started, stdout and stderr as the node running it writes them, truncated,
// then result, error (when it failed) and done once it has ended, after
// which Events returns nil. It follows the job from any node, woken by the
// output log's and the record's notifications, and reads the record once
// the job has ended, so a stream resumed late still gets exactly what it
// missed. It returns when emit fails or ctx ends, with that error.
// ENOTFOUND when c may not see the execution; EINVALID for an id that is
// not one of the stream's.
func (s *Dispatcher) Events(ctx context.Context, c jobs.Caller, id, lastEventID string, emit func(jobs.Event) error) error {
	cur, err := parseCursor(lastEventID)
	if err != nil {
		return err
	}
	e, err := s.Get(ctx, c, id)
	if err != nil {
		return err
	}
	wake, unsubscribe := s.notifier.subscribe(id, postgres.NotifyChannel, postgres.OutputChannel)
	defer unsubscribe()
	if cur.fresh {
		cur.fresh = false
		if err := emit(jobs.Event{ID: cur.String(), Kind: jobs.EventQueued, Execution: e}); err != nil {
			return err
		}
	}
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		if e.Terminal() {
			return replayEnd(e, cur, emit)
		}
		for more := true; more; {
			rows, err := s.store.Output(ctx, c, id, cur.seq, eventRows)
			if err != nil {
				return s.dbError("read output", err)
			}
			for _, r := range rows {
				var ev *jobs.Event
				cur, ev = cur.apply(r)
				if ev == nil {
					continue
				}
				if err := emit(*ev); err != nil {
					return err
				}
			}
			more = len(rows) == eventRows
		}
		select {
		case <-wake:
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		st, err := s.store.Status(ctx, c, id)
		if err != nil {
			return s.dbError("read status", err)
		}
		if st.Terminal() {
			if e, err = s.Get(ctx, c, id); err != nil {
				return err
			}
		}
	}
}

// apply moves c past output log row r and returns the event r makes, nil
// when the client has seen all of it.
func (c cursor) apply(r jobs.Chunk) (cursor, *jobs.Event) {
	if r.Seq <= c.seq {
		return c, nil
	}
	c.seq = r.Seq
	switch r.Kind {
	case jobs.ChunkStarted:
		var info jobs.StartedInfo
		if json.Unmarshal([]byte(r.Data), &info) != nil {
			return c, nil
		}
		return c, &jobs.Event{ID: c.String(), Kind: jobs.EventStarted, Started: &info}
	case jobs.ChunkStdout, jobs.ChunkStderr:
		seen := &c.out
		kind := jobs.EventStdout
		if r.Kind == jobs.ChunkStderr {
			seen, kind = &c.err, jobs.EventStderr
		}
		end := r.Offset + int64(len(r.Data))
		if end <= *seen {
			return c, nil
		}
		if r.Offset < *seen {
			r.Data, r.Offset = r.Data[*seen-r.Offset:], *seen
		}
		*seen = end
		return c, &jobs.Event{ID: c.String(), Kind: kind, Chunk: &r}
	case jobs.ChunkTruncated:
		bit := truncatedBit(jobs.ChunkKind(r.Data))
		if bit == 0 || c.cut&bit != 0 {
			return c, nil
		}
		c.cut |= bit
		return c, &jobs.Event{ID: c.String(), Kind: jobs.EventTruncated, Stream: jobs.ChunkKind(r.Data)}
	}
	return c, nil
}

// truncatedBit is the cursor's bit for a stream's truncated event.
func truncatedBit(stream jobs.ChunkKind) uint8 {
	switch stream {
	case jobs.ChunkStdout:
		return 1
	case jobs.ChunkStderr:
		return 2
	}
	return 0
}

// replayEnd sends what is left of the stream of e, which has ended, from
// its record: started when the client has not seen it, the output past
// its offsets, the truncations, then result, error and done.
func replayEnd(e *jobs.Execution, c cursor, emit func(jobs.Event) error) error {
	res := e.Result
	if res == nil {
		return errors.New("an ended execution has no result")
	}
	var evs []jobs.Event
	if c.seq < 1 && e.StartedAt != nil {
		c.seq = 1
		evs = append(evs, jobs.Event{ID: c.String(), Kind: jobs.EventStarted, Started: &jobs.StartedInfo{Node: e.Node, Start: res.Start}})
	}
	for _, st := range []struct {
		kind      jobs.ChunkKind
		event     jobs.EventKind
		text      string
		seen      *int64
		truncated bool
	}{
		{jobs.ChunkStdout, jobs.EventStdout, res.Stdout, &c.out, res.StdoutTruncated},
		{jobs.ChunkStderr, jobs.EventStderr, res.Stderr, &c.err, res.StderrTruncated},
	} {
		for *st.seen < int64(len(st.text)) {
			piece := nextPiece(st.text[*st.seen:], flushBytes)
			c.seq++
			ch := &jobs.Chunk{Seq: c.seq, Kind: st.kind, Offset: *st.seen, Data: piece}
			*st.seen += int64(len(piece))
			evs = append(evs, jobs.Event{ID: c.String(), Kind: st.event, Chunk: ch})
		}
		if bit := truncatedBit(st.kind); st.truncated && c.cut&bit == 0 {
			c.cut |= bit
			evs = append(evs, jobs.Event{ID: c.String(), Kind: jobs.EventTruncated, Stream: st.kind})
		}
	}
	if c.stage < 1 {
		c.stage = 1
		evs = append(evs, jobs.Event{ID: c.String(), Kind: jobs.EventResult, Execution: e})
	}
	if c.stage < 2 && res.Error != nil {
		c.stage = 2
		evs = append(evs, jobs.Event{ID: c.String(), Kind: jobs.EventError, Error: res.Error})
	}
	if c.stage < 3 {
		c.stage = 3
		evs = append(evs, jobs.Event{ID: c.String(), Kind: jobs.EventDone, Execution: e})
	}
	for _, ev := range evs {
		if err := emit(ev); err != nil {
			return err
		}
	}
	return nil
}

// nextPiece returns the first at most n bytes of s, ending where a
// character does (a whole character when the first is longer than n).
func nextPiece(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if i == 0 {
		_, size := utf8.DecodeRuneInString(s)
		i = size
	}
	return s[:i]
}

// OutputSoFar returns what running execution id has printed up to now,
// from its output log, as c may see it; empty when it has written none
// yet (or has ended: its record holds the output).
func (s *Dispatcher) OutputSoFar(ctx context.Context, c jobs.Caller, id string) (jobs.OutputSoFar, error) {
	var out jobs.OutputSoFar
	var stdout, stderr strings.Builder
	for after := 0; ; {
		rows, err := s.store.Output(ctx, c, id, after, eventRows)
		if err != nil {
			return out, s.dbError("read output", err)
		}
		for _, r := range rows {
			switch r.Kind {
			case jobs.ChunkStdout:
				stdout.WriteString(r.Data)
			case jobs.ChunkStderr:
				stderr.WriteString(r.Data)
			}
			after = r.Seq
		}
		if len(rows) < eventRows {
			break
		}
	}
	out.Stdout, out.Stderr = stdout.String(), stderr.String()
	return out, nil
}
