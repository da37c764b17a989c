package dispatch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := cursor{seq: 12, out: 4096, err: 17, cut: 3, stage: 2}
	got, err := parseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("parse(%q) = %+v, %v", c.String(), got, err)
	}
	if c, err := parseCursor(""); err != nil || !c.fresh {
		t.Errorf(`parse("") = %+v, %v; want a fresh cursor`, c, err)
	}
	for _, bad := range []string{"x", "1.2.3.4", "1.2.3.4.5.6", "1.-2.3.0.0", "1.2.3.4.0", "1.2.3.0.9", "99999999999.0.0.0.0"} {
		if _, err := parseCursor(bad); jobs.ErrorCodeOf(err) != jobs.EINVALID || !strings.Contains(err.Error(), "Last-Event-ID") {
			t.Errorf("parse(%q): %v, want EINVALID naming Last-Event-ID", bad, err)
		}
	}
}

func TestCursorApply(t *testing.T) {
	t.Parallel()
	c := cursor{}
	rows := []jobs.Chunk{
		{Seq: 1, Kind: jobs.ChunkStarted, Data: `{"node":"n1","start":"warm"}`},
		{Seq: 2, Kind: jobs.ChunkStdout, Offset: 0, Data: "ab"},
		{Seq: 3, Kind: jobs.ChunkStderr, Offset: 0, Data: "E"},
		{Seq: 4, Kind: jobs.ChunkStdout, Offset: 2, Data: "cd"},
		{Seq: 5, Kind: jobs.ChunkTruncated, Data: "stdout"},
	}
	var kinds []string
	var out strings.Builder
	for _, r := range rows {
		var ev *jobs.Event
		c, ev = c.apply(r)
		if ev == nil {
			t.Fatalf("row %d made no event", r.Seq)
		}
		if ev.ID != c.String() {
			t.Errorf("event id %q, cursor %q", ev.ID, c.String())
		}
		kinds = append(kinds, string(ev.Kind))
		if ev.Kind == jobs.EventStdout {
			out.WriteString(ev.Chunk.Data)
		}
	}
	if strings.Join(kinds, ",") != "started,stdout,stderr,stdout,truncated" || out.String() != "abcd" {
		t.Errorf("events %v, stdout %q", kinds, out.String())
	}
	if c != (cursor{seq: 5, out: 4, err: 1, cut: 1}) {
		t.Errorf("cursor after the rows: %+v", c)
	}
	// Seen rows, and seen bytes of a row, are not sent again.
	if _, ev := c.apply(rows[3]); ev != nil {
		t.Errorf("a seen row made %+v", ev)
	}
	_, ev := c.apply(jobs.Chunk{Seq: 6, Kind: jobs.ChunkStdout, Offset: 2, Data: "cdef"})
	if ev == nil || ev.Chunk.Data != "ef" || ev.Chunk.Offset != 4 {
		t.Errorf("a row that overlaps what was seen: %+v", ev)
	}
}

func TestReplayEnd(t *testing.T) {
	t.Parallel()
	started, finished := time.Now(), time.Now()
	long := strings.Repeat("é", flushBytes) // 2 bytes each: several pieces
	e := &jobs.Execution{ID: "x", Node: "n1", StartedAt: &started, FinishedAt: &finished, Status: jobs.StatusFailed,
		Result: &jobs.Result{Status: jobs.StatusFailed, Start: jobs.StartCold, Stdout: long, Stderr: "boom\n", StdoutTruncated: true,
			Error: &jobs.ExecError{Type: "RuntimeError", Message: "boom"}}}
	collect := func(c cursor) ([]jobs.Event, string) {
		var evs []jobs.Event
		var out strings.Builder
		if err := replayEnd(e, c, func(ev jobs.Event) error {
			evs = append(evs, ev)
			if ev.Kind == jobs.EventStdout {
				out.WriteString(ev.Chunk.Data)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return evs, out.String()
	}
	evs, out := collect(cursor{})
	if out != long {
		t.Errorf("stdout replayed: %d bytes, want %d", len(out), len(long))
	}
	var kinds []string
	for _, ev := range evs {
		if ev.Kind == jobs.EventStdout && len(ev.Chunk.Data) > flushBytes {
			t.Errorf("a piece of %d bytes", len(ev.Chunk.Data))
		}
		if n := len(kinds); n == 0 || kinds[n-1] != string(ev.Kind) {
			kinds = append(kinds, string(ev.Kind))
		}
	}
	if got := strings.Join(kinds, ","); got != "started,stdout,truncated,stderr,result,error,done" {
		t.Errorf("events: %s", got)
	}
	// Resumed from any event, the rest adds up to the same.
	for i, ev := range evs {
		c, _ := parseCursor(ev.ID)
		rest, tail := collect(c)
		if len(rest) != len(evs)-i-1 {
			t.Fatalf("resumed after event %d (%s): %d events, want %d", i, ev.ID, len(rest), len(evs)-i-1)
		}
		if c.out+int64(len(tail)) != int64(len(long)) {
			t.Errorf("resumed after event %d: stdout from %d, %d bytes", i, c.out, len(tail))
		}
	}
	stop := errors.New("gone")
	if err := replayEnd(e, cursor{}, func(jobs.Event) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("emit's error: %v", err)
	}
}

func TestNextPiece(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 4, "abcd"},
		{"aéb", 2, "a"},  // never splits é
		{"€uro", 2, "€"}, // a first character longer than n goes whole
		{"ab€", 3, "ab"},
	} {
		if got := nextPiece(tt.s, tt.n); got != tt.want {
			t.Errorf("nextPiece(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
