package runner

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/tako-run/tako/jobs"
	"github.com/tako-run/tako/runner/bootstrap"
)

// maxMarkerBytes bounds an end marker's JSON payload; a longer "marker" is
// user output that happens to start like one.
const maxMarkerBytes = 4096

// capture is the io.Writer for one of a container's output streams. It
// drops everything before the bootstrap's ready marker, keeps the user's
// output up to limit bytes (counting, but not keeping, the rest), and stops
// at the end marker carrying the job's nonce. Its memory use is bounded by
// limit plus a marker's length however much the program writes.
type capture struct {
	endPrefix []byte
	limit     int

	mu        sync.Mutex
	state     captureState
	pending   []byte // bytes held back: a possible marker start, or an unfinished marker
	kept      []byte
	total     int64
	end       *bootstrap.End
	readyCh   chan struct{}
	endCh     chan struct{}
	truncated bool

	// follower, when set, gets every kept byte as it is kept, and hears
	// once when output starts to be dropped.
	follower capturedStream
}

// capturedStream is one of a running program's streams as Output sees it.
type capturedStream struct {
	out  Output
	kind jobs.ChunkKind
}

type captureState int

const (
	waitingReady captureState = iota
	collecting
	finished
)

func newCapture(nonce string, limit int) *capture {
	return &capture{
		endPrefix: []byte(bootstrap.EndPrefix(nonce)),
		limit:     limit,
		readyCh:   make(chan struct{}),
		endCh:     make(chan struct{}),
	}
}

// Write implements io.Writer. It never fails, so a flood of output never
// blocks the stream it is copied from.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 && c.state != finished {
		p = c.step(p)
	}
	return n, nil
}

// step consumes as much of p as the current state allows and returns the rest.
func (c *capture) step(p []byte) []byte {
	data := append(c.pending, p...)
	c.pending = nil
	switch c.state {
	case waitingReady:
		ready := []byte(bootstrap.ReadyMarker)
		if i := bytes.Index(data, ready); i >= 0 {
			c.state = collecting
			close(c.readyCh)
			return data[i+len(ready):]
		}
		c.pending = tail(data, len(ready)-1)
		return nil
	case collecting:
		i := bytes.Index(data, c.endPrefix)
		if i < 0 {
			hold := partialPrefix(data, c.endPrefix)
			c.keep(data[:len(data)-hold])
			c.pending = append([]byte(nil), data[len(data)-hold:]...)
			return nil
		}
		c.keep(data[:i])
		rest := data[i+len(c.endPrefix):]
		j := bytes.IndexByte(rest, bootstrap.EndTerminator)
		if j < 0 {
			if len(rest) > maxMarkerBytes {
				// Not a marker after all: keep it as output and go on.
				c.keep(data[i : i+len(c.endPrefix)])
				return rest
			}
			c.pending = append([]byte(nil), data[i:]...)
			return nil
		}
		var end bootstrap.End
		if err := json.Unmarshal(rest[:j], &end); err != nil {
			c.keep(data[i : i+len(c.endPrefix)])
			return rest
		}
		c.end = &end
		c.state = finished
		close(c.endCh)
		return nil
	}
	return nil
}

// follow sends what c keeps from now on to out, as stream kind.
func (c *capture) follow(out Output, kind jobs.ChunkKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.follower = capturedStream{out: out, kind: kind}
}

// keep appends user output, up to the limit.
func (c *capture) keep(b []byte) {
	c.total += int64(len(b))
	room := c.limit - len(c.kept)
	if room <= 0 {
		if len(b) > 0 {
			c.truncate()
		}
		return
	}
	if len(b) > room {
		b = b[:room]
		defer c.truncate()
	}
	c.kept = append(c.kept, b...)
	if c.follower.out != nil && len(b) > 0 {
		c.follower.out.Write(c.follower.kind, b)
	}
}

// truncate marks the output as cut short, telling the follower once.
func (c *capture) truncate() {
	if !c.truncated && c.follower.out != nil {
		c.follower.out.Truncated(c.follower.kind)
	}
	c.truncated = true
}

// flush treats held-back bytes as output; it is called when the stream ends
// without an end marker.
func (c *capture) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == collecting && len(c.pending) > 0 {
		c.keep(c.pending)
		c.pending = nil
	}
}

// result returns the kept output, whether some was dropped, and the end
// marker's payload (nil when the program did not finish normally).
func (c *capture) result() ([]byte, bool, *bootstrap.End) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.kept...), c.truncated, c.end
}

// tail returns a copy of the last n bytes of b (all of b if shorter).
func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return append([]byte(nil), b...)
}

// partialPrefix returns the length of the longest suffix of data that is a
// proper prefix of marker: bytes that may be the start of a marker split
// across writes.
func partialPrefix(data, marker []byte) int {
	n := len(marker) - 1
	if n > len(data) {
		n = len(data)
	}
	for ; n > 0; n-- {
		if bytes.HasPrefix(marker, data[len(data)-n:]) {
			return n
		}
	}
	return 0
}
