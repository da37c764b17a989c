package dispatch

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/jobs/postgres"
)

// The output log's flush triggers: whichever comes first.
const (
	// flushEvery is the longest a kept byte waits before it is written.
	flushEvery = 50 * time.Millisecond
	// flushBytes written at once are not held back any longer.
	flushBytes = 16 << 10
	// startedEvery is the longest the started row waits for output to go
	// with: a job that prints nothing (or only at its end, as most quick
	// jobs do) then writes no row before its record.
	startedEvery = 250 * time.Millisecond
)

// outputStore is where an output log goes; *postgres.Store is one.
type outputStore interface {
	AppendOutput(ctx context.Context, id string, chunks []jobs.Chunk) error
}

// outputLog follows one running execution for the runner (it is a
// runner.Output) and writes what it sees to the database in chunks, so
// that event streams on any node can follow the execution: output at most
// flushEvery after it was kept, or at once when flushBytes wait; the
// started row with the first output, or after startedEvery. A job that
// ends before its first flush writes nothing: its record, written next,
// holds it all. Neither does its end: streams read the rest from the
// record, unless the log is kept (streaming.keep_chunks), and then it is
// written whole.
//
// Offsets count bytes of stored text (postgres.CleanText), and a chunk
// never splits a character, so the chunks of a stream add up to the
// output its record stores.
type outputLog struct {
	store  outputStore
	id     string
	node   string
	keep   bool // streaming.keep_chunks: the log is written whole
	logger *slog.Logger

	mu      sync.Mutex
	pending []jobs.Chunk                // rows not yet written, in order
	held    map[jobs.ChunkKind][]byte   // a stream's unfinished character
	offset  map[jobs.ChunkKind]int64    // stored text of each stream so far
	bytes   int                         // data in pending
	seq     int                         // the last row's seq
	wrote   bool                        // some row reached the database
	wake    chan struct{}               // data arrived
	stop    chan struct{}               // close was called
	done    chan struct{}               // the flusher has stopped
	cut     map[jobs.ChunkKind]struct{} // streams that reached their cap
}

// newOutputLog starts the log of execution id, run on node; keep writes
// its end too.
func newOutputLog(store outputStore, id, node string, keep bool, logger *slog.Logger) *outputLog {
	l := &outputLog{
		store: store, id: id, node: node, keep: keep, logger: logger,
		held:   map[jobs.ChunkKind][]byte{},
		offset: map[jobs.ChunkKind]int64{},
		cut:    map[jobs.ChunkKind]struct{}{},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go l.flusher()
	return l
}

// Started implements runner.Output.
func (l *outputLog) Started(start jobs.Start) {
	data, _ := json.Marshal(jobs.StartedInfo{Node: l.node, Start: start})
	l.mu.Lock()
	l.add(jobs.ChunkStarted, 0, string(data))
	l.mu.Unlock()
	l.signal()
}

// Write implements runner.Output.
func (l *outputLog) Write(kind jobs.ChunkKind, p []byte) {
	l.mu.Lock()
	buf := append(l.held[kind], p...)
	n := completeRunes(buf)
	l.text(kind, buf[:n])
	l.held[kind] = append(l.held[kind][:0:0], buf[n:]...)
	big := l.bytes >= flushBytes
	l.mu.Unlock()
	l.signal()
	if big {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// Truncated implements runner.Output.
func (l *outputLog) Truncated(kind jobs.ChunkKind) {
	l.mu.Lock()
	l.text(kind, l.held[kind])
	delete(l.held, kind)
	l.cut[kind] = struct{}{}
	l.add(jobs.ChunkTruncated, 0, string(kind))
	l.mu.Unlock()
	l.signal()
}

// text adds raw output b of stream kind, which ends where a character
// does, as stored text. l.mu is held.
func (l *outputLog) text(kind jobs.ChunkKind, b []byte) {
	if len(b) == 0 {
		return
	}
	t := postgres.CleanText(string(b))
	// Output that follows output of the same stream joins its row, up to
	// flushBytes a row.
	if last := len(l.pending) - 1; last >= 0 && l.pending[last].Kind == kind && len(l.pending[last].Data)+len(t) <= flushBytes {
		l.pending[last].Data += t
	} else {
		l.add(kind, l.offset[kind], t)
	}
	l.offset[kind] += int64(len(t))
	l.bytes += len(t)
}

// add appends a new row. l.mu is held.
func (l *outputLog) add(kind jobs.ChunkKind, offset int64, data string) {
	l.seq++
	l.pending = append(l.pending, jobs.Chunk{Seq: l.seq, Kind: kind, Offset: offset, Data: data})
}

// signal tells the flusher that rows wait.
func (l *outputLog) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// flusher writes the pending rows when they are due (see outputLog), until
// close.
func (l *outputLog) flusher() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var due <-chan time.Time
	var dueAt time.Time
	for {
		select {
		case <-l.wake:
			l.mu.Lock()
			rows, output := len(l.pending), l.bytes
			l.mu.Unlock()
			wait := startedEvery
			switch {
			case output >= flushBytes:
				l.flush(false)
				continue
			case output > 0:
				wait = flushEvery
			case rows == 0:
				continue
			}
			if at := time.Now().Add(wait); due == nil || at.Before(dueAt) {
				timer.Reset(wait)
				due, dueAt = timer.C, at
			}
		case <-due:
			due = nil
			l.flush(false)
		case <-l.stop:
			timer.Stop()
			return
		}
	}
}

// flush writes the pending rows; final adds the characters held back,
// complete or not. A failed write keeps the rows for the next flush.
func (l *outputLog) flush(final bool) {
	l.mu.Lock()
	if final {
		for _, kind := range []jobs.ChunkKind{jobs.ChunkStdout, jobs.ChunkStderr} {
			l.text(kind, l.held[kind])
			delete(l.held, kind)
		}
	}
	rows := l.pending
	l.pending, l.bytes = nil, 0
	l.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.store.AppendOutput(ctx, l.id, rows); err != nil {
		l.logger.Warn("write live output", "error", err)
		l.mu.Lock()
		l.pending = append(rows, l.pending...)
		for _, r := range rows {
			l.bytes += len(r.Data)
		}
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	l.wrote = true
	l.mu.Unlock()
}

// close stops the flusher once the program has ended. A kept log that has
// rows gets the rest, so it is whole; otherwise nothing more is written,
// and the record holds the output. It reports whether the log has rows in
// the database.
func (l *outputLog) close() bool {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	wrote := l.wrote
	l.mu.Unlock()
	if wrote && l.keep {
		l.flush(true)
	}
	return wrote
}

// completeRunes returns the length of the longest prefix of b that does
// not end inside a character: what may be cleaned now without changing
// how the bytes after it decode.
func completeRunes(b []byte) int {
	// A character is at most utf8.UTFMax bytes: only the last few can be
	// an unfinished one.
	for i := max(len(b)-utf8.UTFMax+1, 0); i < len(b); i++ {
		if utf8.RuneStart(b[i]) && !utf8.FullRune(b[i:]) {
			return i
		}
	}
	return len(b)
}
