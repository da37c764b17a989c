package jobs

// ChunkKind is what one row of a running job's output log holds.
type ChunkKind string

// The kinds of output log rows.
const (
	// ChunkStarted says the job got its container; its data is a
	// StartedInfo in JSON.
	ChunkStarted ChunkKind = "started"
	// ChunkStdout and ChunkStderr hold output of that stream.
	ChunkStdout ChunkKind = "stdout"
	ChunkStderr ChunkKind = "stderr"
	// ChunkTruncated says a stream reached its cap; its data names the
	// stream ("stdout" or "stderr").
	ChunkTruncated ChunkKind = "truncated"
)

// Chunk is one row of a running job's output log, which the node running
// the job appends to while it runs so that any node can stream it.
type Chunk struct {
	// Seq orders the rows of one job, from 1.
	Seq int
	// Kind says what the row holds.
	Kind ChunkKind
	// Offset is where Data starts within its stream, in bytes of stored
	// text (see postgres.CleanText); 0 for rows that are not output.
	Offset int64
	// Data is the output, or what Kind says it holds.
	Data string
}

// StartedInfo is the data of a started row and event: where and how the
// job got its container.
type StartedInfo struct {
	Node  string `json:"node"`
	Start Start  `json:"start"`
}

// OutputSoFar is what a running job has printed up to now.
type OutputSoFar struct {
	Stdout, Stderr string
}

// EventKind names an event of an execution's event stream.
type EventKind string

// The events of an execution's stream, in the order they come.
const (
	EventQueued    EventKind = "queued"    // always first: the execution exists
	EventStarted   EventKind = "started"   // it got a container (StartedInfo)
	EventStdout    EventKind = "stdout"    // output (Chunk)
	EventStderr    EventKind = "stderr"    // output (Chunk)
	EventTruncated EventKind = "truncated" // a stream reached its cap (Stream)
	EventResult    EventKind = "result"    // it ended (Execution, with its Result)
	EventError     EventKind = "error"     // it ended with an error (Error)
	EventDone      EventKind = "done"      // always last
)

// Event is one event of an execution's stream. ID resumes the stream
// right after the event (Last-Event-ID); the other fields are set as Kind
// says.
type Event struct {
	ID        string
	Kind      EventKind
	Execution *Execution   // queued, result, done
	Started   *StartedInfo // started
	Chunk     *Chunk       // stdout, stderr
	Stream    ChunkKind    // truncated
	Error     *ExecError   // error
}
