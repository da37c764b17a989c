package images

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// progress is the human-readable account of image work: "==>" headlines and
// the indented output of the tools doing the work. It is safe for concurrent
// use; every line is written whole, so lines of concurrent builds interleave
// but never mix.
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w}
}

// printf writes one line.
func (p *progress) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, strings.TrimRight(line, "\n")+"\n")
}

// lines returns a writer that forwards what it is given to p line by line,
// each line behind prefix, and remembers the output of the current build
// step for error messages. Call flush when done.
func (p *progress) lines(prefix string) *lineWriter {
	return &lineWriter{p: p, prefix: prefix}
}

// ansiEscape matches ANSI terminal escape sequences (colours, cursor moves).
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// tailLines is how many lines of a failing step's output are kept.
const tailLines = 40

// lineWriter splits a stream into lines (on '\n' and '\r'), writes each to
// the progress writer and keeps the tail of the current step: the lines
// since the last Dockerfile "Step N/M :" line.
type lineWriter struct {
	p       *progress
	prefix  string
	partial []byte
	step    string
	tail    []string
}

// Write implements io.Writer; it never fails.
func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			w.partial = append(w.partial, b...)
			break
		}
		w.partial = append(w.partial, b[:i]...)
		w.line(string(w.partial))
		w.partial = w.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

// flush emits a last line that did not end in a newline.
func (w *lineWriter) flush() {
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = w.partial[:0]
	}
}

func (w *lineWriter) line(s string) {
	// The legacy builder colours a step's stderr with ANSI escapes.
	s = strings.TrimRight(ansiEscape.ReplaceAllString(s, ""), " \t")
	if s == "" {
		return
	}
	if strings.HasPrefix(s, "Step ") && strings.Contains(s, " : ") {
		_, w.step, _ = strings.Cut(s, " : ")
		w.tail = w.tail[:0]
	} else if !isBuilderChatter(s) {
		if len(w.tail) == tailLines {
			w.tail = append(w.tail[:0], w.tail[1:]...)
		}
		w.tail = append(w.tail, s)
	}
	w.p.printf("%s%s", w.prefix, s)
}

// isBuilderChatter reports lines the legacy builder prints about its own
// bookkeeping, which never explain a failure.
func isBuilderChatter(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "---> ") || strings.HasPrefix(s, "Removing intermediate container")
}

// failure describes why the current step failed, naming the tool and quoting
// its own message: "pip install failed: ERROR: No matching distribution
// found for x". Without a recognisable message it quotes the last lines,
// and without output it quotes engineMsg, the engine's own error.
func (w *lineWriter) failure(engineMsg string) string {
	w.flush()
	what, marker := "step failed", ""
	switch {
	case strings.Contains(w.step, "pip install"):
		what, marker = "pip install failed", "ERROR:"
	case strings.Contains(w.step, "apt-get"):
		what, marker = "apt-get install failed", "E:"
	case w.step != "":
		what = fmt.Sprintf("step %q failed", shorten(w.step, 60))
	}
	if marker != "" {
		for i := len(w.tail) - 1; i >= 0; i-- {
			if strings.HasPrefix(w.tail[i], marker) {
				return what + ": " + w.tail[i]
			}
		}
	}
	if len(w.tail) == 0 {
		return what + ": " + engineMsg
	}
	return what + ": " + lastLines(w.tail, 5)
}

// lastLines joins the last n lines of tail on one line; tool output that is
// not recognised is quoted this way in errors.
func lastLines(tail []string, n int) string {
	if len(tail) > n {
		tail = tail[len(tail)-n:]
	}
	return strings.Join(tail, " | ")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// seconds renders a duration the way progress lines show it: "42.1s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}
