package dispatch

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// rowsStore keeps what an output log appends.
type rowsStore struct {
	mu   sync.Mutex
	rows []jobs.Chunk
}

func (s *rowsStore) AppendOutput(_ context.Context, _ string, chunks []jobs.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, chunks...)
	return nil
}

func (s *rowsStore) snapshot() []jobs.Chunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]jobs.Chunk(nil), s.rows...)
}

// waitRows waits until rows were written: within flushEvery, or longer on
// a loaded machine.
func (s *rowsStore) waitRows(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(s.snapshot()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no rows written within 10 s")
		}
	}
}

func TestOutputLogWritesNothingForAQuickJob(t *testing.T) {
	t.Parallel()
	st := &rowsStore{}
	l := newOutputLog(st, "id", "n1", false, slog.New(slog.DiscardHandler))
	l.Started(jobs.StartWarm)
	l.Write(jobs.ChunkStdout, []byte("hello\n"))
	if l.close() || len(st.snapshot()) != 0 {
		t.Errorf("a job that ended before the first flush wrote %v", st.snapshot())
	}
}

func TestOutputLogWithoutKeepWritesNoEnd(t *testing.T) {
	t.Parallel()
	st := &rowsStore{}
	l := newOutputLog(st, "id", "n1", false, slog.New(slog.DiscardHandler))
	l.Started(jobs.StartWarm)
	l.Write(jobs.ChunkStdout, []byte("first\n"))
	st.waitRows(t)
	l.Write(jobs.ChunkStdout, []byte("last\n"))
	if !l.close() {
		t.Fatal("close: no rows written")
	}
	var out string
	for _, r := range st.snapshot() {
		out += r.Data
	}
	if !strings.Contains(out, "first\n") || strings.Contains(out, "last") {
		t.Errorf("rows: %+v; the end goes to the record only", st.snapshot())
	}
}

func TestOutputLogRows(t *testing.T) {
	t.Parallel()
	st := &rowsStore{}
	l := newOutputLog(st, "id", "n1", true, slog.New(slog.DiscardHandler))
	l.Started(jobs.StartCold)
	euro := []byte("€")
	// A character split across writes, bytes PostgreSQL cannot store, and
	// more than flushBytes at once.
	l.Write(jobs.ChunkStdout, []byte("a"))
	l.Write(jobs.ChunkStdout, euro[:1])
	l.Write(jobs.ChunkStderr, []byte("err\x00"))
	l.Write(jobs.ChunkStdout, euro[1:])
	big := strings.Repeat("x", flushBytes+10)
	l.Write(jobs.ChunkStdout, []byte(big))
	// The flusher writes within flushEvery; a loaded machine gets longer.
	st.waitRows(t)
	l.Write(jobs.ChunkStdout, []byte{0xff})
	l.Truncated(jobs.ChunkStdout)
	l.Write(jobs.ChunkStderr, euro[:2]) // unfinished when the job ends
	if !l.close() {
		t.Fatal("close: no rows written")
	}
	rows := st.snapshot()
	if rows[0].Kind != jobs.ChunkStarted || rows[0].Seq != 1 || !strings.Contains(rows[0].Data, `"start":"cold"`) {
		t.Errorf("first row: %+v", rows[0])
	}
	text := map[jobs.ChunkKind]string{}
	var truncated []string
	for i, r := range rows {
		if r.Seq != i+1 {
			t.Fatalf("row %d has seq %d", i, r.Seq)
		}
		switch r.Kind {
		case jobs.ChunkStdout, jobs.ChunkStderr:
			if r.Offset != int64(len(text[r.Kind])) {
				t.Errorf("row %d: offset %d after %d bytes", r.Seq, r.Offset, len(text[r.Kind]))
			}
			text[r.Kind] += r.Data
		case jobs.ChunkTruncated:
			truncated = append(truncated, r.Data)
		}
	}
	wantOut := "a€" + big + "\xff"
	wantErr := "err\x00" + string(euro[:2])
	if text[jobs.ChunkStdout] != postgres.CleanText(wantOut) || text[jobs.ChunkStderr] != postgres.CleanText(wantErr) {
		t.Errorf("rows add up to %q / %q, want the record's %q / %q", text[jobs.ChunkStdout][:8], text[jobs.ChunkStderr], postgres.CleanText(wantOut)[:8], postgres.CleanText(wantErr))
	}
	if len(truncated) != 1 || truncated[0] != "stdout" {
		t.Errorf("truncated rows: %v", truncated)
	}
}

func TestCompleteRunes(t *testing.T) {
	t.Parallel()
	euro := []byte("€") // e2 82 ac
	for _, tt := range []struct {
		b    []byte
		want int
	}{
		{[]byte("abc"), 3},
		{append([]byte("ab"), euro[:1]...), 2},
		{append([]byte("ab"), euro[:2]...), 2},
		{append([]byte("ab"), euro...), 5},
		{[]byte{'a', 0xff}, 2},        // invalid, and decided
		{[]byte{'a', 0xe2, 'b'}, 3},   // an invalid lead byte, decided by what follows
		{[]byte{0xf0, 0x9f, 0x98}, 0}, // three bytes of four
	} {
		if got := completeRunes(tt.b); got != tt.want {
			t.Errorf("completeRunes(% x) = %d, want %d", tt.b, got, tt.want)
		}
	}
}
