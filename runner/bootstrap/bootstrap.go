// Package bootstrap holds the Python program that runs inside every job
// container, and the wire format of the markers it writes.
//
// The protocol: the container runs `python3 -u -c <Source> <preload...>`
// with the host's FIFOs stdout, stderr and trigger mounted in ControlDir.
// The bootstrap makes the first two its standard output and error, imports
// the preload modules, forks the process that will run the program (it
// waits), writes ReadyMarker on both streams, and reads one trigger line
// (TriggerLine) from the trigger FIFO. It then lets the program run
// /code/main.py as __main__ (from the source the trigger carries, when it
// does), waits for it, kills whatever it left running,
// and writes an end marker ("\x1eTAKO-END <nonce> <json>\x1e\n") on both
// streams before it exits. The program never learns the nonce, so it cannot
// write a marker that tako would take for the end.
package bootstrap

import (
	_ "embed"
	"encoding/json"
	"unicode/utf8"
)

// Source is the bootstrap's Python source.
//
//go:embed bootstrap.py
var Source string

// ControlDir is where the bootstrap finds its FIFOs inside the container.
const ControlDir = "/tako"

// The FIFOs in ControlDir.
const (
	StdoutFIFO  = "stdout"
	StderrFIFO  = "stderr"
	TriggerFIFO = "trigger"
)

// ReadyMarker is written on both streams once preloading is done; anything
// before it is not the user's output.
const ReadyMarker = "\x1eTAKO-READY\x1e\n"

// EndPrefix returns the bytes that start the end marker for nonce.
func EndPrefix(nonce string) string { return "\x1eTAKO-END " + nonce + " " }

// EndTerminator ends the end marker's JSON payload.
const EndTerminator = '\x1e'

// End is the payload of an end marker: how the user program finished.
type End struct {
	ExcType  string `json:"exc"`    // the uncaught exception's type name, "" when none (the program's own report)
	ExitCode int    `json:"exit"`   // the program's exit status, from waitpid: 128+N for signal N
	Message  string `json:"msg"`    // str() of the uncaught exception (the program's own report)
	Signal   int    `json:"signal"` // the signal that killed the program, 0 when it exited
}

// MaxTriggerLine bounds a trigger line that carries the program's source:
// half a FIFO's buffer, so that writing it never waits for the bootstrap
// to read.
const MaxTriggerLine = 32 << 10

// trigger is a trigger line's JSON.
type trigger struct {
	Nonce  string  `json:"nonce"`
	Source *string `json:"source,omitempty"` // nil: run /code/main.py
}

// TriggerLine returns the line that starts the user program in
// /code/main.py.
func TriggerLine(nonce string) []byte {
	b, _ := json.Marshal(trigger{Nonce: nonce})
	return append(b, '\n')
}

// SourceTriggerLine returns the line that starts the user program whose
// source, also in /code/main.py, it carries: the bootstrap compiles it
// without reading the file, which a gVisor sandbox reads through its
// gofer. When the line would not stay within MaxTriggerLine, or source is
// not valid UTF-8, it is TriggerLine(nonce).
func SourceTriggerLine(nonce, source string) []byte {
	if len(source) < MaxTriggerLine && utf8.ValidString(source) {
		if b, err := json.Marshal(trigger{nonce, &source}); err == nil && len(b) < MaxTriggerLine {
			return append(b, '\n')
		}
	}
	return TriggerLine(nonce)
}

// Command returns the container command that runs the bootstrap with the
// given preload modules.
func Command(preload []string) []string {
	return append([]string{"python3", "-u", "-c", Source}, preload...)
}

// FloorSource is the trigger floor's Python source: a bare interpreter that
// writes ReadyMarker on the stdout FIFO, then answers each TriggerLine read
// from the trigger FIFO with one end marker (EndPrefix of the line's nonce,
// an End of exit 0, EndTerminator and a newline), until the trigger FIFO
// ends. Its one argument is the directory of the FIFOs. It runs no
// program: tako bench --floors times the round trip.
//
//go:embed floor.py
var FloorSource string

// FloorCommand returns the container command of the trigger floor, run by
// the same interpreter, with the same flags, as the bootstrap; its FIFOs
// are in ControlDir.
func FloorCommand() []string {
	return []string{"python3", "-u", "-c", FloorSource, ControlDir}
}
